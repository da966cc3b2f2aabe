"""Transfers priced by the routes that carry them (issue 14 item 4).

The transfer plan's per-unit moving cost (handling + transport_cost_per_unit_km x km) knows
nothing of vans: a trip of a few units still needs a van to drive to the sender, wait, drive to
the receiver. Vans carrying only transfers cost about 2.7 times what that proxy assumed. So the
plan is priced by routes actually solved:

1. plan the transfers (`rebalance.plan_transfers`) with the prices known so far;
2. route exactly those transfers on their delivery day with the run's fleet (the same request
   builder and engine as the planning run's routes, shorter time limit): each trip (store pair)
   gets its marginal cost (what the routes save without it, `routing.shares.route_costs`) and its
   share of the routes' cost (`allocate_route_cost`: marginal cost plus the cost no trip causes
   alone, in proportion to what each trip can bear; a route's shares add up to its cost);
3. a trip is forbidden when no vehicle carried it, when its value less handling does not cover
   its marginal cost by min_transfer_value, or when it is the weakest trip of a route whose trips
   together do not cover the route's cost; every other trip is priced by its share, a cost fixed
   per trip (the van drives whatever it carries: more units on a trip that goes anyway cost only
   their handling), which the plan's trip-value rule weighs; trips no route priced yet are
   estimated at the average share of a trip carried;
4. again from 1 until no trip is forbidden anew (at most `PRICING_ROUNDS`); trips still weak
   then are dropped and the rest routed again until none is, so the plan's `cost` is handling
   plus the share from routes that carry exactly the plan.

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
    """Trips (store pairs) of a set of transfers as routed: their cost in the routes solved."""

    # from_store_id, to_store_id, units, value, marginal (what the routes save without the trip),
    # route_cost (its share of its routes' cost, `allocate_route_cost`), routed (every load on a route)
    trips: pd.DataFrame
    # Per load: shipment_id, from_store_id, to_store_id, units, value, route (vehicle index; -1: none),
    # marginal, routed
    loads: pd.DataFrame
    route_cost: float  # the routes' cost, all trips together
    vehicles: int
    solve_s: float


def route_trips(transfers: pd.DataFrame, stores: pd.DataFrame, dcs: pd.DataFrame, fleet: pd.DataFrame,
                products: pd.DataFrame, *, day: date, settings: Settings) -> TripRoutes:
    """Route exactly `transfers` on `day` with `fleet`: each trip's marginal cost and its share of
    the routes' cost (handling_cost_per_unit is what a unit costs besides the route)."""
    from retailopt.routing.engine import solve_routes_by_problem
    from retailopt.routing.loads import assign_shipments
    from retailopt.routing.request import build_request
    from retailopt.routing.shares import route_costs

    packed, _ = assign_shipments(transfers, transfers.iloc[:0], fleet, products)
    request = build_request(packed, pd.DataFrame(), stores, dcs, fleet, products, run_date=day, settings=settings)
    quick = settings.replace(routing_time_limit_s=min(settings.routing_time_limit_s, PRICING_TIME_LIMIT_S))
    started = time.perf_counter()
    response = solve_routes_by_problem(request, settings=quick).response
    solve_s = time.perf_counter() - started
    costs = route_costs(request, response, settings.speed_kmh)
    loads = packed.groupby("shipment_id", as_index=False).agg(
        from_store_id=("from_store_id", "first"), to_store_id=("to_store_id", "first"),
        units=("quantity", "sum"), value=("value", "sum"))
    label = loads["shipment_id"].astype(str)
    loads["routed"] = label.isin(costs.keys())
    loads["route"] = label.map(lambda x: costs[x].route if x in costs else -1).astype(np.int64)
    loads["marginal"] = label.map(lambda x: costs[x].marginal if x in costs else 0.0).astype(np.float64)
    route_total = {}
    for cost in costs.values():  # a route's shares add up to its cost
        route_total[cost.route] = route_total.get(cost.route, 0.0) + cost.share
    loads["route_cost"] = allocate_route_cost(loads, route_total, settings.handling_cost_per_unit)
    trips = loads.groupby(["from_store_id", "to_store_id"], as_index=False).agg(
        units=("units", "sum"), value=("value", "sum"), marginal=("marginal", "sum"),
        route_cost=("route_cost", "sum"), routed=("routed", "all"))
    used = sum(1 for r in response.routes if len(r.visits))
    return TripRoutes(trips=trips, loads=loads, route_cost=float(sum(route_total.values())), vehicles=used,
                      solve_s=solve_s)


def allocate_route_cost(loads: pd.DataFrame, route_total: dict[int, float], handling: float) -> np.ndarray:
    """Each load's share of its route's cost: its marginal cost, plus the cost no single load
    causes (the route's cost less the loads' marginal costs: fixed cost, legs shared) in
    proportion to what each load's net value leaves over its marginal cost. So a route whose loads
    together cover its cost charges every load no more than its net value; a route that does not
    (the pricing forbids one of its trips) shares the rest by marginal cost. The shares of a route
    add up to its cost."""
    out = np.zeros(len(loads))
    routes = loads["route"].to_numpy()
    net = (loads["value"] - handling * loads["units"]).to_numpy(dtype=np.float64)
    marginal = loads["marginal"].to_numpy(dtype=np.float64)
    for route, total in route_total.items():
        on = np.flatnonzero(routes == route)
        m = marginal[on]
        common = total - m.sum()
        if common < 0 or len(on) == 1:  # marginal costs beyond the route's (rare geometry): scaled to it
            out[on] = total * m / m.sum() if m.sum() > 0 else total / len(on)
            continue
        room = np.maximum(net[on] - m, 0.0)
        weight = room if room.sum() > 0 else np.maximum(m, 1e-9)
        out[on] = m + common * weight / weight.sum()
    return out


def weak_trips(routed: TripRoutes, handling: float, min_value: float) -> pd.Series:
    """Trips to forbid (a mask on `routed.trips`): on no route; not worth their marginal cost (net
    value less what the routes save without them below min_value); and, on each route whose trips
    together do not cover its cost, the trip that leaves least over its marginal cost (one at a
    time: the others' shares fall once it is gone)."""
    trips = routed.trips
    key = _trip_index(trips)
    net = trips["value"] - handling * trips["units"]
    weak = ~trips["routed"].astype(bool) | (net - trips["marginal"] < min_value)
    loads = routed.loads[routed.loads["routed"].astype(bool)]
    if len(loads):
        load_key = _trip_index(loads)
        load_weak = load_key.isin(key[weak.to_numpy()])
        load_net = (loads["value"] - handling * loads["units"] - loads["route_cost"]).to_numpy()
        short = pd.Series(load_net).groupby(loads["route"].to_numpy()).sum()
        count = pd.Series(1, index=range(len(loads))).groupby(loads["route"].to_numpy()).sum()
        for route in short.index[(short < min_value * count).to_numpy()]:
            on = np.flatnonzero((loads["route"].to_numpy() == route) & ~load_weak)
            if len(on):
                left = (loads["value"] - handling * loads["units"] - loads["marginal"]).to_numpy()[on]
                worst = load_key[on[int(np.argmin(left))]]
                weak |= pd.Series(key.isin([worst]), index=trips.index)
    return weak


def plan_priced_transfers(policy: pd.DataFrame, protection: pd.DataFrame, products: pd.DataFrame,
                          stores: pd.DataFrame, dcs: pd.DataFrame, fleet: pd.DataFrame | None, *,
                          settings: Settings, run_date: date, inventory: pd.DataFrame | None = None,
                          value_horizon: str = "lead_time", reprice: bool = True,
                          rounds: int = PRICING_ROUNDS) -> tuple[pd.DataFrame, TransferPricing]:
    """Transfers worth their place on the routes that carry them, with `cost` = handling + their
    share of those routes. Without a fleet there is no route to price by: the per-unit proxy
    stands. `reprice=False` plans with the proxy only and still charges the routes solved (how
    the plan without route pricing fares on real routes)."""
    info = TransferPricing()
    prices = pd.DataFrame(columns=["from_store_id", "to_store_id", "route_cost"])
    handling = settings.handling_cost_per_unit
    day = delivery_day(run_date, settings.transfer_lead_days)
    estimate: float | None = None  # a trip's route cost where no route priced it yet
    for k in range(1, (rounds if reprice else 1) + 1):
        transfers = plan_transfers(policy, protection, products, stores, settings=settings, run_date=run_date,
                                   inventory=inventory, value_horizon=value_horizon,
                                   trip_prices=prices if len(prices) else None, unpriced_trip_cost=estimate)
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
        unrouted = ~trips["routed"].astype(bool)
        # Without repricing only the trips no vehicle carries go (they would not travel; the rest of
        # the routes stays as solved); with it, also those not worth their cost on the routes.
        weak = unrouted if not reprice else weak_trips(routed, handling, settings.min_transfer_value)
        if not reprice or not weak.any() or k == rounds:
            break
        for row in trips[weak].itertuples(index=False):
            info.forbidden.append({"from_store_id": str(row.from_store_id), "to_store_id": str(row.to_store_id),
                                   "round": k, "reason": "no vehicle carried it" if not row.routed else
                                   f"value {row.value:.2f} less handling does not cover its marginal route "
                                   f"cost {row.marginal:.2f} (share {row.route_cost:.2f})"})
        fresh = pd.DataFrame({"from_store_id": trips["from_store_id"].astype(str),
                              "to_store_id": trips["to_store_id"].astype(str),
                              "route_cost": np.where(weak, np.inf, trips["route_cost"])})
        # Forbidden trips stay forbidden (no cycling); the others take their latest price.
        old = prices[prices["route_cost"] == np.inf] if len(prices) else prices
        if len(old):
            fresh = pd.concat([old, fresh[~_trip_index(fresh).isin(_trip_index(old))]], ignore_index=True)
        prices = fresh
        # A trip the routes have not priced yet is estimated at the average share of a trip carried:
        # the per-km proxy made every new pair look cheap, and each round found new ones to drop.
        carried = trips["routed"].astype(bool)
        if carried.any():
            estimate = float(trips.loc[carried, "route_cost"].mean())
    # Trips still weak after the last round, or (without repricing) on no route: dropped (stock
    # stays put, the receiver's order comes) and the rest routed again, until the routes carry
    # exactly the plan and every trip is worth its place on them (dropping only shrinks the plan).
    for _ in range(rounds):
        if not weak.any():
            break
        for row in trips[weak].itertuples(index=False):
            info.forbidden.append({"from_store_id": str(row.from_store_id), "to_store_id": str(row.to_store_id),
                                   "round": info.rounds, "reason": "no vehicle carried it" if not row.routed
                                   else "not worth its route after the last pricing round"})
        transfers = transfers[~_trip_index(transfers).isin(_trip_index(trips[weak]))].reset_index(drop=True)
        if transfers.empty:
            return transfers[TRANSFER_COLUMNS], info
        routed = route_trips(transfers, stores, dcs, fleet, products, day=day, settings=settings)
        info.solve_s += routed.solve_s
        trips = routed.trips
        unrouted = ~trips["routed"].astype(bool)
        weak = unrouted if not reprice else weak_trips(routed, handling, settings.min_transfer_value)
    kept = trips[~weak]
    if weak.any():  # rare: what the routes charge the trips kept (the rest travels on no plan)
        transfers = transfers[_trip_index(transfers).isin(_trip_index(kept))].reset_index(drop=True)
    info.proxy_cost = float(transfers["quantity"].sum() * handling + (transfers["distance_km"] * transfers["quantity"])
                            .sum() * settings.transport_cost_per_unit_km)
    info.route_cost = float(kept["route_cost"].sum())
    info.vehicles = routed.vehicles
    info.handling_cost = float(transfers["quantity"].sum() * handling)
    return _charge(transfers, kept, handling), info


def _trip_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame["from_store_id"].astype(str), frame["to_store_id"].astype(str)])


def _charge(transfers: pd.DataFrame, trips: pd.DataFrame, handling: float) -> pd.DataFrame:
    """`cost` = handling + the trip's route share, spread over its lines by value (by units where
    the trip's value is not positive): a trip that covers its share charges no line more than its
    line brings."""
    t = transfers.merge(trips[["from_store_id", "to_store_id", "units", "value", "route_cost"]]
                        .rename(columns={"value": "trip_value"}), on=["from_store_id", "to_store_id"], how="left")
    # By value only where every line of the trip has a value of at least 0 (the weights add up to 1).
    no_loss = (t["value"] >= 0).groupby([t["from_store_id"], t["to_store_id"]]).transform("all")
    by_value = (t["trip_value"] > 0) & no_loss
    weight = np.where(by_value, t["value"] / t["trip_value"].where(by_value, 1.0),
                      t["quantity"] / t["units"].clip(lower=1))
    share = t["route_cost"].fillna(0.0).to_numpy() * weight
    out = transfers.assign(cost=(transfers["quantity"] * handling).to_numpy() + share)
    return out[TRANSFER_COLUMNS]
