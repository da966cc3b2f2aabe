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

import logging
import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from retailopt.config import Settings
from retailopt.rebalance import ORDER_COLUMNS, TRANSFER_COLUMNS, delivery_day, plan_orders, plan_transfers

log = logging.getLogger(__name__)

# Rounds of plan -> routes -> prices; each is one routing solve.
PRICING_ROUNDS = 4
# Seconds per pricing solve at most (and at most routing_time_limit_s): a plan's transfers and the
# day's other loads are a few hundred loads at most, which the local engine routes well within this.
PRICING_TIME_LIMIT_S = 4.0
# The shortest solve (even past the time budget): the first answer of the local search, which
# needs longer for more loads (a search stopped before its first answer carries nothing).
MIN_SOLVE_S = 0.4
MIN_SOLVE_PER_LOAD_S = 0.01


def shortest_solve_s(loads: int) -> float:
    """The shortest pricing solve for a problem of `loads` vehicle loads."""
    return min(PRICING_TIME_LIMIT_S, max(MIN_SOLVE_S, MIN_SOLVE_PER_LOAD_S * loads))
# A solve takes this share of the pricing time left; the rest pays for re-planning and later rounds.
SOLVE_SHARE = 0.7
# A solve beside the day's other loads lasts at least this long (see `solve_limit`).
FINAL_SOLVE_S = 2.0
# The final plan's solve beside the day's other loads, the one its charge comes from, lasts at
# least this long (at most routing_time_limit_s), past the time budget if need be: the charge is
# the difference of two searches, and on the sample chain a 2 s search charged the transfers
# twice their marginal cost in the delivery day's 10 s search, a 5 s one 0.92 times.
CHARGE_SOLVE_S = 5.0
# The day's routes without the transfers take this share of the time left (solved once; a day of
# orders alone settles fast).
BASE_SHARE = 0.15


@dataclass
class TransferPricing:
    """What pricing did: the routes solved for the final plan and the trips it forbade."""

    route_cost: float = 0.0  # what the final plan's transfers add to the day's routes (their shares add up to it)
    marginal_cost: float = 0.0  # the kept trips' marginal costs, each alone
    day_route_cost: float = 0.0  # the day's routes as solved for the final plan, other loads included
    background_loads: int = 0  # the day's other loads the transfers were routed beside
    elapsed_s: float = 0.0  # the pricing's time, planning included
    out_of_time: bool = False  # rounds ended by transfer_pricing_time_s with trips still to forbid
    proxy_cost: float = 0.0  # what the per-unit proxy (handling + per-unit-km) would have charged the plan
    handling_cost: float = 0.0
    vehicles: int = 0
    rounds: int = 0
    solve_s: float = 0.0
    forbidden: list[dict] = field(default_factory=list)  # from_store_id, to_store_id, reason, round

    def as_dict(self) -> dict:
        return {"route_cost": round(self.route_cost, 2), "proxy_cost": round(self.proxy_cost, 2),
                "handling_cost": round(self.handling_cost, 2), "vehicles": self.vehicles, "rounds": self.rounds,
                "solve_s": round(self.solve_s, 2), "elapsed_s": round(self.elapsed_s, 2),
                "trips_forbidden": len(self.forbidden), "marginal_cost": round(self.marginal_cost, 2),
                "day_route_cost": round(self.day_route_cost, 2), "background_loads": self.background_loads,
                "out_of_time": self.out_of_time}


@dataclass
class TripRoutes:
    """Trips (store pairs) of a set of transfers as routed: their cost in the routes solved."""

    # from_store_id, to_store_id, units, value, marginal (what the routes save without the trip),
    # route_cost (its share of its routes' cost, `allocate_route_cost`), routed (every load on a route)
    trips: pd.DataFrame
    # Per load: shipment_id, from_store_id, to_store_id, units, value, route (vehicle index; -1: none),
    # marginal, routed
    loads: pd.DataFrame
    route_cost: float  # what the trips add to the routes, all together (the routes' cost without background)
    vehicles: int
    solve_s: float
    day_cost: float = 0.0  # the cost of the day's routes, the background's loads included
    time_limit_s: float = 0.0  # the solve's time limit


@dataclass
class DayBackground:
    """The other loads on the transfers' delivery day: released lines of earlier runs due that day
    and this run's own distribution-centre orders arriving that day (estimated before the
    transfers are planned), in transfers / replenishment_orders columns. Packed once, labelled
    apart from the plan's own loads."""

    transfers: pd.DataFrame
    orders: pd.DataFrame
    _packed: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, repr=False)
    _base: float | None = field(default=None, repr=False)
    _routes: list[tuple[int, list[tuple[str, bool, int]]]] = field(default_factory=list, repr=False)
    base_solve_s: float = 0.0

    @property
    def empty(self) -> bool:
        return len(self.transfers) == 0 and len(self.orders) == 0

    def packed(self, fleet: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        from retailopt.routing.loads import assign_shipments

        if self._packed is None:
            t, o = assign_shipments(self.transfers, self.orders, fleet, products)
            # The plan's own loads between the same two stores are packed apart: their labels must differ.
            self._packed = (t.assign(shipment_id=BACKGROUND_PREFIX + t["shipment_id"].astype(str)) if len(t) else t,
                            o.assign(shipment_id=BACKGROUND_PREFIX + o["shipment_id"].astype(str)) if len(o) else o)
        return self._packed

    def base_cost(self, stores: pd.DataFrame, dcs: pd.DataFrame, fleet: pd.DataFrame, products: pd.DataFrame, *,
                  day: date, settings: Settings, time_limit_s: float) -> float:
        """The day's routes without the plan's transfers: their cost plus the value of the loads
        they leave behind (their penalty), solved once (the background does not change between
        rounds)."""
        from retailopt.routing.engine import solve_routes_by_problem
        from retailopt.routing.request import build_request

        if self._base is None:
            t, o = self.packed(fleet, products)
            request = build_request(t, o, stores, dcs, fleet, products, run_date=day, settings=settings)
            loads_n = int(sum(f["shipment_id"].nunique() for f in (t, o) if len(f)))
            quick = settings.replace(routing_time_limit_s=min(settings.routing_time_limit_s,
                                                              max(time_limit_s, shortest_solve_s(loads_n))))
            started = time.perf_counter()
            response = solve_routes_by_problem(request, settings=quick).response
            self.base_solve_s = time.perf_counter() - started
            self._routes = _labelled_routes(request, response)
            self._base = (sum(float(r.route_total_cost) for r in response.routes if len(r.visits))
                          + sum(float(s.penalty_cost) for s in response.skipped_shipments))
        return self._base

    def inject_into(self, request) -> None:
        """Start `request`'s search from the day's routes without the transfers (solved by
        `base_cost`): the search then inserts the transfers into vans laid out for the day, as a
        longer search would, instead of laying the whole day out again in a short time."""
        from google.maps import routeoptimization_v1 as ro

        index = {s.label: k for k, s in enumerate(request.model.shipments)}
        routes = []
        for vehicle, visits in self._routes:
            kept = [ro.ShipmentRoute.Visit(shipment_index=index[label], is_pickup=pickup, visit_request_index=vr)
                    for label, pickup, vr in visits if label in index]
            if kept:
                routes.append(ro.ShipmentRoute(vehicle_index=vehicle, visits=kept))
        request.injected_first_solution_routes = routes


def _labelled_routes(request, response) -> list[tuple[int, list[tuple[str, bool, int]]]]:
    """A response's routes as (vehicle index, [(shipment label, is pickup, visit request index)])."""
    labels = [s.label for s in request.model.shipments]
    return [(int(r.vehicle_index), [(labels[v.shipment_index], bool(v.is_pickup), int(v.visit_request_index))
                                    for v in r.visits]) for r in response.routes if len(r.visits)]


BACKGROUND_PREFIX = "day:"


def route_trips(transfers: pd.DataFrame, stores: pd.DataFrame, dcs: pd.DataFrame, fleet: pd.DataFrame,
                products: pd.DataFrame, *, day: date, settings: Settings,
                background: DayBackground | None = None, base_cost: float | None = None,
                time_limit_s: float | None = None) -> TripRoutes:
    """Route `transfers` on `day` with `fleet`, beside the day's other loads (`background`): each
    trip's marginal cost and its share of what the transfers add to the routes
    (handling_cost_per_unit is what a unit costs besides the route).

    What the transfers add to a route is what it saves without all of them
    (`group_removal_costs`): the whole route where it carries transfers only, their detours where
    it also carries the day's orders (the van drives anyway). That is shared out by
    `allocate_route_cost`, so each trip pays its marginal cost plus a part of what the transfers
    cause together and no single one alone, never the orders' route. `base_cost`: the day's routes
    solved without the transfers (`DayBackground.base_cost`), with the value of the loads they left
    behind."""
    from retailopt.routing.engine import solve_routes_by_problem
    from retailopt.routing.loads import assign_shipments
    from retailopt.routing.request import build_request
    from retailopt.routing.shares import group_removal_costs, route_costs

    packed, _ = assign_shipments(transfers, transfers.iloc[:0], fleet, products)
    own_packed = packed
    other_orders = pd.DataFrame()
    if background is not None and not background.empty:
        other_t, other_orders = background.packed(fleet, products)
        if len(other_t):
            packed = pd.concat([packed, other_t], ignore_index=True)
    request = build_request(packed, other_orders, stores, dcs, fleet, products, run_date=day, settings=settings)
    if base_cost is not None and background is not None:
        background.inject_into(request)
    limit = min(settings.routing_time_limit_s, PRICING_TIME_LIMIT_S if time_limit_s is None else time_limit_s)
    loads_n = int(packed["shipment_id"].nunique()) + (int(other_orders["shipment_id"].nunique())
                                                      if len(other_orders) else 0)
    quick = settings.replace(routing_time_limit_s=max(limit, shortest_solve_s(loads_n)))
    started = time.perf_counter()
    response = solve_routes_by_problem(request, settings=quick).response
    solve_s = time.perf_counter() - started
    costs = route_costs(request, response, settings.speed_kmh)
    loads = own_packed.groupby("shipment_id", as_index=False).agg(
        from_store_id=("from_store_id", "first"), to_store_id=("to_store_id", "first"),
        units=("quantity", "sum"), value=("value", "sum"))
    label = loads["shipment_id"].astype(str)
    loads["routed"] = label.isin(costs.keys())
    loads["route"] = label.map(lambda x: costs[x].route if x in costs else -1).astype(np.int64)
    loads["marginal"] = label.map(lambda x: costs[x].marginal if x in costs else 0.0).astype(np.float64)
    # What the plan's transfers add to each route that carries one of them (a route's shares add up to it).
    route_total = group_removal_costs(request, response, settings.speed_kmh, set(label[loads["routed"]]))
    day_cost = sum(float(r.route_total_cost) for r in response.routes if len(r.visits))
    left_behind = sum(float(s.penalty_cost) for s in response.skipped_shipments
                      if s.label.startswith(BACKGROUND_PREFIX))
    if base_cost is not None and route_total:
        # Taking the transfers off the routes solved with them keeps the other loads on the vans
        # laid out for all (an extra van the transfers brought keeps orders on it); the day solved
        # without them can cost less. What the transfers add is the larger of the two, spread over
        # the routes in proportion to what each saves without them.
        added = max(sum(route_total.values()), day_cost + left_behind - base_cost)
        log.info("transfer pricing: %d loads beside the day's, limit %.2f s: day %.2f (+%.2f left behind), "
                 "without them %.2f, their detours %.2f: charged %.2f", loads["shipment_id"].nunique(),
                 quick.routing_time_limit_s, day_cost, left_behind, base_cost, sum(route_total.values()), added)
        scale = added / sum(route_total.values()) if sum(route_total.values()) > 0 else 0.0
        route_total = {r: c * scale for r, c in route_total.items()}
    loads["route_cost"] = allocate_route_cost(loads, route_total, settings.handling_cost_per_unit)
    trips = loads.groupby(["from_store_id", "to_store_id"], as_index=False).agg(
        units=("units", "sum"), value=("value", "sum"), marginal=("marginal", "sum"),
        route_cost=("route_cost", "sum"), routed=("routed", "all"))
    used = sum(1 for r in response.routes if len(r.visits))
    return TripRoutes(trips=trips, loads=loads, route_cost=float(sum(route_total.values())), vehicles=used,
                      solve_s=solve_s, day_cost=day_cost, time_limit_s=quick.routing_time_limit_s)


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
                          rounds: int = PRICING_ROUNDS, background: DayBackground | None = None
                          ) -> tuple[pd.DataFrame, TransferPricing]:
    """Transfers worth their place on the routes that carry them, with `cost` = handling + their
    share of what they add to those routes, solved beside the delivery day's other loads
    (`background`). Without a fleet there is no route to price by: the per-unit proxy stands.
    `reprice=False` plans with the proxy only and still charges the routes solved (how the plan
    without route pricing fares on real routes).

    The rounds share `settings.transfer_pricing_time_s` (planning and solving): each solve takes
    SOLVE_SHARE of the time left (at most PRICING_TIME_LIMIT_S; at least MIN_SOLVE_S, or
    FINAL_SOLVE_S beside other loads), and no round starts that the time left cannot pay for (the
    last plan's duration and two shortest solves). The first plan and solve always run, and so
    does the solve of the final plan when a trip was dropped, so the charge always comes from
    routes that carry exactly the plan; beside other loads that solve lasts CHARGE_SOLVE_S."""
    info = TransferPricing()
    prices = pd.DataFrame(columns=["from_store_id", "to_store_id", "route_cost"])
    handling = settings.handling_cost_per_unit
    day = delivery_day(run_date, settings.transfer_lead_days)
    estimate: float | None = None  # a trip's route cost where no route priced it yet
    started = time.perf_counter()

    def left() -> float:
        return settings.transfer_pricing_time_s - (time.perf_counter() - started)

    beside = background is not None and not background.empty

    def solve_limit() -> float:
        # Beside the day's other loads the charge is the difference of two searches, and a short
        # one lays the vans out far worse than the delivery day's plan will (on the sample chain a
        # 1.5 s search's day cost 45 % more than a 10 s one, a 2 s search's 2 % more): its
        # difference would charge the transfers double and forbid good trips.
        shortest = FINAL_SOLVE_S if beside else MIN_SOLVE_S
        return min(max(PRICING_TIME_LIMIT_S, shortest), max(shortest, left() * SOLVE_SHARE))

    if background is not None:
        info.background_loads = _load_count(background, fleet, products)
    plan_s = 0.0
    for k in range(1, (rounds if reprice else 1) + 1):
        planning = time.perf_counter()
        transfers = plan_transfers(policy, protection, products, stores, settings=settings, run_date=run_date,
                                   inventory=inventory, value_horizon=value_horizon,
                                   trip_prices=prices if len(prices) else None, unpriced_trip_cost=estimate)
        plan_s = time.perf_counter() - planning
        log.info("transfer pricing round %d: %d transfers planned in %.2f s, %.2f s left", k, len(transfers),
                 plan_s, left())
        info.rounds = k
        if fleet is None or len(fleet) == 0 or transfers.empty:
            info.proxy_cost = info.handling_cost = 0.0
            if len(transfers):
                info.proxy_cost = float(transfers["cost"].sum())
                info.handling_cost = float(transfers["quantity"].sum() * handling)
            info.elapsed_s = time.perf_counter() - started
            return transfers, info
        base = None
        if background is not None and not background.empty:
            fresh_base = background.base_solve_s == 0.0
            base = background.base_cost(stores, dcs, fleet, products, day=day, settings=settings,
                                        time_limit_s=min(PRICING_TIME_LIMIT_S, left() * BASE_SHARE))
            info.solve_s += background.base_solve_s if fresh_base else 0.0
        routed = route_trips(transfers, stores, dcs, fleet, products, day=day, settings=settings,
                             background=background, base_cost=base, time_limit_s=solve_limit())
        info.solve_s += routed.solve_s
        trips = routed.trips
        unrouted = ~trips["routed"].astype(bool)
        # Without repricing only the trips no vehicle carries go (they would not travel; the rest of
        # the routes stays as solved); with it, also those not worth their cost on the routes.
        weak = unrouted if not reprice else weak_trips(routed, handling, settings.min_transfer_value)
        # Another round costs a plan and a solve; the final plan's solve is kept for the end.
        no_time = left() < plan_s + 2 * (FINAL_SOLVE_S if beside else MIN_SOLVE_S)
        if not reprice or not weak.any() or k == rounds or no_time:
            info.out_of_time = bool(no_time and reprice and weak.any() and k < rounds)
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
    for again in range(rounds):
        if not weak.any() or (again and left() <= 0):
            # Out of time after one solve of the plan without them: the trips still weak are left
            # out below and the rest charged by the routes solved last.
            break
        for row in trips[weak].itertuples(index=False):
            info.forbidden.append({"from_store_id": str(row.from_store_id), "to_store_id": str(row.to_store_id),
                                   "round": info.rounds, "reason": "no vehicle carried it" if not row.routed
                                   else "not worth its route after the last pricing round"})
        transfers = transfers[~_trip_index(transfers).isin(_trip_index(trips[weak]))].reset_index(drop=True)
        if transfers.empty:
            info.elapsed_s = time.perf_counter() - started
            return transfers[TRANSFER_COLUMNS], info
        routed = route_trips(transfers, stores, dcs, fleet, products, day=day, settings=settings,
                             background=background, base_cost=base, time_limit_s=solve_limit())
        info.solve_s += routed.solve_s
        trips = routed.trips
        unrouted = ~trips["routed"].astype(bool)
        weak = unrouted if not reprice else weak_trips(routed, handling, settings.min_transfer_value)
    kept = trips[~weak]
    if weak.any():  # out of time or rounds: what the routes charge the trips kept (the rest travels on no plan)
        for row in trips[weak].itertuples(index=False):
            info.forbidden.append({"from_store_id": str(row.from_store_id), "to_store_id": str(row.to_store_id),
                                   "round": info.rounds, "reason": "still not worth its route when the pricing's "
                                   "rounds or time ran out"})
        transfers = transfers[_trip_index(transfers).isin(_trip_index(kept))].reset_index(drop=True)
    if beside and len(transfers) and routed.time_limit_s < CHARGE_SOLVE_S:
        # The charge is the difference of two searches; the rounds' short ones decide which trips
        # go, the final plan's is solved for at least CHARGE_SOLVE_S (see the constant).
        again = route_trips(transfers, stores, dcs, fleet, products, day=day, settings=settings,
                            background=background, base_cost=base, time_limit_s=CHARGE_SOLVE_S)
        info.solve_s += again.solve_s
        if again.trips["routed"].all():  # else the routes solved before, which carry every trip kept
            routed, kept = again, again.trips
    info.proxy_cost = float(transfers["quantity"].sum() * handling + (transfers["distance_km"] * transfers["quantity"])
                            .sum() * settings.transport_cost_per_unit_km)
    info.route_cost = float(kept["route_cost"].sum())
    info.marginal_cost = float(kept["marginal"].sum())
    info.day_route_cost = routed.day_cost
    info.vehicles = routed.vehicles
    info.handling_cost = float(transfers["quantity"].sum() * handling)
    info.elapsed_s = time.perf_counter() - started
    return _charge(transfers, kept, handling), info


def _load_count(background: DayBackground, fleet: pd.DataFrame | None, products: pd.DataFrame) -> int:
    if fleet is None or len(fleet) == 0 or background.empty:
        return 0
    t, o = background.packed(fleet, products)
    return int(sum(f["shipment_id"].nunique() for f in (t, o) if len(f)))


def own_orders_due(policy: pd.DataFrame, products: pd.DataFrame, dcs: pd.DataFrame, stores: pd.DataFrame, *,
                   settings: Settings, run_date: date, inventory: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's own distribution-centre orders that will arrive on the transfers' delivery day,
    estimated before the transfers are planned (the orders as planned with no transfer: an upper
    bound, the transfers only cut orders). Empty, and nothing planned, when no centre's lead time
    is the transfers' lead time."""
    day = delivery_day(run_date, settings.transfer_lead_days)
    leads = pd.to_numeric(dcs["lead_time_days"], errors="coerce") if "lead_time_days" in dcs else pd.Series(dtype=float)
    if not (leads.dropna().astype(int) == int(settings.transfer_lead_days)).any():
        return pd.DataFrame(columns=ORDER_COLUMNS)
    orders = plan_orders(policy, pd.DataFrame(columns=TRANSFER_COLUMNS), products, dcs, stores, settings=settings,
                         run_date=run_date, inventory=inventory)
    if orders.empty:
        return orders
    return orders[pd.to_datetime(orders["expected_arrival"]).dt.date == day].reset_index(drop=True)


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
