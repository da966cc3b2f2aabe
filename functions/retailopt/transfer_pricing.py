"""Transfers priced by the routes that carry them (issue 14 item 4).

The transfer plan's per-unit moving cost (handling + transport_cost_per_unit_km x km) knows
nothing of vans: a trip of a few units still needs a van to drive to the sender, wait, drive to
the receiver. Vans carrying only transfers cost about 2.7 times what that proxy assumed. So the
plan is priced by routes actually solved:

1. plan the transfers (`rebalance.plan_transfers`) with the prices known so far;
2. route exactly those transfers on their delivery day with the run's fleet (the same request
   builder and engine as the planning run's routes, shorter time limit) and give each trip
   (store pair) its share of the route cost (`routing.shares`: the route's cost shared by
   removal cost, so the shares add up to the routes' cost);
3. a trip whose value less handling does not cover its route share by min_transfer_value, or
   that no vehicle carried, is forbidden; every trip routed is priced by its route share, a cost
   fixed per trip (the van drives whatever it carries: more units on a trip that goes anyway
   cost only their handling), which the plan's trip-value rule weighs;
4. again from 1 until no trip is forbidden anew (at most `PRICING_ROUNDS`), then the plan's `cost`
   is handling plus the route share from the last solve, which routed exactly the plan.

A forbidden trip's receiver is planned again by the distribution-centre order, which the caller
plans after the transfers (`rebalance.plan_orders`): a dropped transfer gives its receiver back
its order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from retailopt.config import Settings
from retailopt.rebalance import TRANSFER_COLUMNS, delivery_day, plan_transfers

# Rounds of plan -> routes -> prices; each is one routing solve.
PRICING_ROUNDS = 4
# Seconds per pricing solve (at most routing_time_limit_s): a plan's transfers are a few hundred
# loads at most, which the local engine routes well within this.
PRICING_TIME_LIMIT_S = 4.0


@dataclass
class TransferPricing:
    """What pricing did: the routes solved for the final plan and the trips it forbade."""

    route_cost: float = 0.0  # cost of the routes that carry exactly the final plan's transfers
    proxy_cost: float = 0.0  # what the per-unit proxy (handling + per-unit-km) would have charged the plan
    handling_cost: float = 0.0
    vehicles: int = 0
    rounds: int = 0
    solve_s: float = 0.0
    forbidden: list[dict] = field(default_factory=list)  # from_store_id, to_store_id, reason, round

    def as_dict(self) -> dict:
        return {"route_cost": round(self.route_cost, 2), "proxy_cost": round(self.proxy_cost, 2),
                "handling_cost": round(self.handling_cost, 2), "vehicles": self.vehicles, "rounds": self.rounds,
                "solve_s": round(self.solve_s, 2), "trips_forbidden": len(self.forbidden)}


@dataclass
class TripRoutes:
    """Trips (store pairs) of a set of transfers as routed: route cost share, units, carried."""

    trips: pd.DataFrame  # from_store_id, to_store_id, units, value, route_cost, routed
    route_cost: float
    vehicles: int
    solve_s: float


def route_trips(transfers: pd.DataFrame, stores: pd.DataFrame, dcs: pd.DataFrame, fleet: pd.DataFrame,
                products: pd.DataFrame, *, day: date, settings: Settings) -> TripRoutes:
    """Route exactly `transfers` on `day` with `fleet` and share the routes' cost by trip."""
    from retailopt.routing.engine import solve_routes_by_problem
    from retailopt.routing.loads import assign_shipments
    from retailopt.routing.request import build_request
    from retailopt.routing.shares import route_shares

    packed, _ = assign_shipments(transfers, transfers.iloc[:0], fleet, products)
    request = build_request(packed, pd.DataFrame(), stores, dcs, fleet, products, run_date=day, settings=settings)
    quick = settings.replace(routing_time_limit_s=min(settings.routing_time_limit_s, PRICING_TIME_LIMIT_S))
    started = time.perf_counter()
    response = solve_routes_by_problem(request, settings=quick).response
    solve_s = time.perf_counter() - started
    shares = route_shares(request, response, settings.speed_kmh)
    load = packed.groupby("shipment_id").agg(from_store_id=("from_store_id", "first"),
                                             to_store_id=("to_store_id", "first"))
    load["route_cost"] = load.index.map(lambda label: shares.get(str(label), 0.0))
    load["routed"] = load.index.map(lambda label: str(label) in shares)
    trips = packed.groupby(["from_store_id", "to_store_id"], as_index=False).agg(
        units=("quantity", "sum"), value=("value", "sum"))
    by_trip = load.groupby(["from_store_id", "to_store_id"], as_index=False).agg(
        route_cost=("route_cost", "sum"), routed=("routed", "all"))
    trips = trips.merge(by_trip, on=["from_store_id", "to_store_id"], how="left")
    used = sum(1 for r in response.routes if len(r.visits))
    return TripRoutes(trips=trips, route_cost=float(sum(shares.values())), vehicles=used, solve_s=solve_s)


def plan_priced_transfers(policy: pd.DataFrame, protection: pd.DataFrame, products: pd.DataFrame,
                          stores: pd.DataFrame, dcs: pd.DataFrame, fleet: pd.DataFrame | None, *,
                          settings: Settings, run_date: date, inventory: pd.DataFrame | None = None,
                          value_horizon: str = "lead_time", reprice: bool = True,
                          rounds: int = PRICING_ROUNDS) -> tuple[pd.DataFrame, TransferPricing]:
    """Transfers whose value covers their share of the routes that carry them, with `cost` =
    handling + that share. Without a fleet there is no route to price by: the per-unit proxy
    stands. `reprice=False` plans with the proxy only and still charges the routes solved (how
    the plan without route pricing fares on real routes)."""
    info = TransferPricing()
    prices = pd.DataFrame(columns=["from_store_id", "to_store_id", "route_cost"])
    handling = settings.handling_cost_per_unit
    day = delivery_day(run_date, settings.transfer_lead_days)
    for k in range(1, (rounds if reprice else 1) + 1):
        transfers = plan_transfers(policy, protection, products, stores, settings=settings, run_date=run_date,
                                   inventory=inventory, value_horizon=value_horizon,
                                   trip_prices=prices if len(prices) else None)
        info.rounds = k
        if fleet is None or len(fleet) == 0 or transfers.empty:
            info.proxy_cost = info.handling_cost = 0.0
            if len(transfers):
                info.proxy_cost = float(transfers["cost"].sum())
                info.handling_cost = float(transfers["quantity"].sum() * handling)
            return transfers, info
        routed = route_trips(transfers, stores, dcs, fleet, products, day=day, settings=settings)
        info.solve_s += routed.solve_s
        trips = routed.trips
        net = trips["value"] - handling * trips["units"] - trips["route_cost"]
        unrouted = ~trips["routed"].astype(bool)
        # Without repricing only the trips no vehicle carries go (they would not travel; the rest of
        # the routes stays as solved); with it, also those not worth their route share.
        weak = unrouted if not reprice else unrouted | (net < settings.min_transfer_value)
        if not reprice or not weak.any() or k == rounds:
            break
        for row in trips[weak].itertuples(index=False):
            info.forbidden.append({"from_store_id": str(row.from_store_id), "to_store_id": str(row.to_store_id),
                                   "round": k, "reason": "no vehicle carried it" if not row.routed else
                                   f"value {row.value:.2f} less handling does not cover its route share "
                                   f"{row.route_cost:.2f}"})
        fresh = pd.DataFrame({"from_store_id": trips["from_store_id"].astype(str),
                              "to_store_id": trips["to_store_id"].astype(str),
                              "route_cost": np.where(weak, np.inf, trips["route_cost"])})
        # Forbidden trips stay forbidden (no cycling); the others take their latest price.
        old = prices[prices["route_cost"] == np.inf] if len(prices) else prices
        if len(old):
            fresh = pd.concat([old, fresh[~_trip_index(fresh).isin(_trip_index(old))]], ignore_index=True)
        prices = fresh
    proxy = float(transfers["quantity"].sum() * handling
                  + (transfers["distance_km"] * transfers["quantity"]).sum() * settings.transport_cost_per_unit_km)
    if weak.any():
        # Still weak after the last round, or (without repricing) on no route: dropped (stock stays
        # put, the receiver's order comes). A trip no vehicle carried leaves the routes as they are;
        # after other drops the rest is routed once more, so the cost charged is that of routes
        # that carry the plan.
        dropped = trips.loc[weak, ["from_store_id", "to_store_id"]]
        for row in trips[weak].itertuples(index=False):
            info.forbidden.append({"from_store_id": str(row.from_store_id), "to_store_id": str(row.to_store_id),
                                   "round": info.rounds, "reason": "no vehicle carried it" if not row.routed
                                   else "dropped after the last pricing round"})
        transfers = transfers[~_trip_index(transfers).isin(_trip_index(dropped))].reset_index(drop=True)
        proxy = float(transfers["quantity"].sum() * handling
                      + (transfers["distance_km"] * transfers["quantity"]).sum() * settings.transport_cost_per_unit_km)
        if transfers.empty:
            info.proxy_cost = 0.0
            return transfers[TRANSFER_COLUMNS], info
        if not (weak <= unrouted).all():
            routed = route_trips(transfers, stores, dcs, fleet, products, day=day, settings=settings)
            info.solve_s += routed.solve_s
        trips = routed.trips[routed.trips["routed"].astype(bool)] if (weak <= unrouted).all() else routed.trips
    info.proxy_cost = proxy
    info.route_cost = routed.route_cost
    info.vehicles = routed.vehicles
    info.handling_cost = float(transfers["quantity"].sum() * handling)
    return _charge(transfers, trips, handling), info


def _trip_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame["from_store_id"].astype(str), frame["to_store_id"].astype(str)])


def _charge(transfers: pd.DataFrame, trips: pd.DataFrame, handling: float) -> pd.DataFrame:
    """`cost` = handling + the trip's route share, spread over its lines by units."""
    t = transfers.merge(trips[["from_store_id", "to_store_id", "units", "route_cost"]],
                        on=["from_store_id", "to_store_id"], how="left")
    share = t["route_cost"].fillna(0.0) * t["quantity"] / t["units"].clip(lower=1)
    out = transfers.assign(cost=(transfers["quantity"] * handling).to_numpy() + share.to_numpy())
    return out[TRANSFER_COLUMNS]
