"""A large routing request solved as several small ones, within one time limit for them all.

One OR-Tools model over a chain's whole day (a thousand loads, eighty trucks) does not fit a time
limit of seconds: building it and finding a first solution alone take minutes. So the local engine
splits the request into problems the search handles well and solves them one after another, each
with its share of the limit:

- by depot: each vehicle belongs to the depot it starts from, each load (most valuable first) to
  the depot with the shortest round trip whose vehicles can carry it and still have shift time for
  it (a distribution centre's orders to that centre);
- a depot with more than `max_shipments` loads is cut into sectors around it (by the bearing of
  the delivery, equal numbers of loads), its vehicles shared out in proportion to the units each
  sector must carry;
- when a problem's vehicles cannot drive all of its loads in their shifts (an estimate: a round
  trip from the depot per load, at the request's speed), the most valuable loads are offered first
  and the rest are left out up front with their value, so the search works on what the fleet can
  carry instead of all of it being dropped. `slack` offers somewhat more than the estimate, so the
  solver, not the estimate, decides at the margin;
- a problem gets at most one vehicle per load it offers, from the depots nearest its loads and of
  every size (`_fleet_for`): the search's model grows with its vehicles.

The problems' responses are merged into one `OptimizeToursResponse` of the whole request (vehicle
and shipment indices of the whole request), so the tables and artifacts do not change; each
problem's size, time limit and solve time are reported (`ProblemReport`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from itertools import zip_longest
from typing import Callable

from google.maps import routeoptimization_v1 as ro

from retailopt.routing.model import EARTH_RADIUS_M

# Loads per problem: about 2 × this many visits, where first solutions stay well under a second.
MAX_SHIPMENTS = 120
# Offer up to this much more driving than the fleet's shifts hold, by the estimate.
SLACK = 1.5
# Speed for the estimate when the request has none (the API plans on roads): 35 km/h.
DEFAULT_SPEED_MPS = 35 / 3.6


@dataclass
class ProblemReport:
    """One problem the request was split into, and how its solve went."""

    name: str  # depot location id (its first vehicle's display name) and sector
    shipments: int  # loads assigned to the problem
    offered: int  # loads given to the solver (the rest did not fit the estimate)
    vehicles: int
    time_limit_s: float
    solve_s: float
    routed: int  # loads on a route
    vehicles_used: int

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class PartsResult:
    response: ro.OptimizeToursResponse
    problems: list[ProblemReport]


def _haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    y = math.sin(lng2 - lng1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lng2 - lng1)
    return math.atan2(y, x)


def _latlng(visit) -> tuple[float, float] | None:
    if visit.HasField("arrival_location"):
        return (visit.arrival_location.latitude, visit.arrival_location.longitude)
    return None


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


@dataclass
class _Load:
    index: int
    pickup: tuple[float, float] | None
    delivery: tuple[float, float] | None
    units: int
    demand: dict[str, int]
    value: float
    service_s: float


@dataclass
class _Vehicle:
    index: int
    depot: tuple[float, float] | None
    shift_s: float
    limits: dict[str, int]

    def carries(self, load: "_Load") -> bool:
        return all(amount <= self.limits.get(t, amount) for t, amount in load.demand.items())

    @property
    def size(self) -> int:
        return max(self.limits.values(), default=0)


def _loads(model) -> list[_Load]:
    out = []
    for i, s in enumerate(model.shipments):
        pickup = _latlng(s.pickups[0]) if s.pickups else None
        delivery = _latlng(s.deliveries[0]) if s.deliveries else None
        service = sum(v.duration.seconds for v in (*s.pickups[:1], *s.deliveries[:1]))
        demand = {t: int(load.amount) for t, load in s.load_demands.items()}
        units = max(demand.values(), default=0)
        out.append(_Load(i, pickup, delivery, units, demand,
                         float(s.penalty_cost) if s.HasField("penalty_cost") else math.inf, float(service)))
    return out


def _vehicles(model) -> list[_Vehicle]:
    day = _seconds(model.global_end_time) - _seconds(model.global_start_time) if model.HasField(
        "global_end_time") else 24 * 3600.0
    out = []
    for i, v in enumerate(model.vehicles):
        depot = (v.start_location.latitude, v.start_location.longitude) if v.HasField("start_location") else None
        shift = day
        if v.start_time_windows and v.end_time_windows:
            first, last = v.start_time_windows[0], v.end_time_windows[-1]
            if first.HasField("start_time") and last.HasField("end_time"):
                shift = _seconds(last.end_time) - _seconds(first.start_time)
        if v.HasField("route_duration_limit") and v.route_duration_limit.HasField("max_duration"):
            shift = min(shift, float(v.route_duration_limit.max_duration.seconds))
        limits = {t: int(limit.max_load) for t, limit in v.load_limits.items() if limit.max_load > 0}
        out.append(_Vehicle(i, depot, max(0.0, shift), limits))
    return out


def split_request(request: ro.OptimizeToursRequest, *, max_shipments: int = MAX_SHIPMENTS,
                  slack: float = SLACK) -> list[tuple[str, list[int], list[int], list[int]]]:
    """The problems: (name, vehicle indices, offered shipment indices, left-out shipment indices).

    Pure: depends only on the request. Shipments no vehicle's depot can be matched with (no
    vehicle, or no coordinates) stay in one problem with every vehicle.
    """
    pb = ro.OptimizeToursRequest.pb(request)
    model = pb.model
    loads, vehicles = _loads(model), _vehicles(model)
    # Travel by road or by matrix: the estimate still uses straight lines, at a city speed.
    speed = pb.geodesic_meters_per_second if pb.geodesic_meters_per_second > 0 else DEFAULT_SPEED_MPS
    depots: list[tuple[float, float]] = []
    depot_of: dict[int, int] = {}
    for v in vehicles:
        if v.depot is None:
            continue
        key = next((k for k, d in enumerate(depots) if _haversine(d, v.depot) < 1.0), None)
        if key is None:
            depots.append(v.depot)
            key = len(depots) - 1
        depot_of[v.index] = key
    if not depots or any(ld.pickup is None and ld.delivery is None for ld in loads) \
            or len(depot_of) < len(vehicles):
        return [("all", [v.index for v in vehicles], [ld.index for ld in loads], [])]
    if len(loads) <= max_shipments:  # small enough for one search: any vehicle may take any load
        offered, left = _by_value(loads, vehicles, speed, slack)
        fleet = _fleet_for([loads[i] for i in offered], vehicles, speed)
        return [("all", [v.index for v in fleet], offered, left)]
    names = {}
    for v in vehicles:
        names.setdefault(depot_of[v.index], model.vehicles[v.index].display_name or f"depot{depot_of[v.index]}")

    groups = _by_depot(loads, vehicles, depots, depot_of, speed, slack)

    problems = []
    for k, depot in enumerate(depots):
        fleet = [v for v in vehicles if depot_of[v.index] == k]
        group = groups[k]
        if not group:
            problems.append((names[k], [v.index for v in fleet], [], []))
            continue
        sectors = min(len(fleet), math.ceil(len(group) / max_shipments))
        group.sort(key=lambda ld: (_bearing(depot, ld.delivery or ld.pickup), ld.index))
        size = math.ceil(len(group) / sectors)
        parts = [group[i:i + size] for i in range(0, len(group), size)]
        shares = _share_vehicles(fleet, [sum(ld.units for ld in part) for part in parts])
        for j, (part, part_fleet) in enumerate(zip(parts, shares)):
            offered, left = _by_value(part, part_fleet, speed, slack)
            name = names[k] if len(parts) == 1 else f"{names[k]} sector {j + 1}/{len(parts)}"
            part_fleet = _fleet_for([loads[i] for i in offered], part_fleet, speed)
            problems.append((name, [v.index for v in part_fleet], offered, left))
    return problems


def _fleet_for(offered: list[_Load], fleet: list[_Vehicle], speed: float) -> list[_Vehicle]:
    """At most one vehicle per offered load: no solution uses more, and the search's model grows
    with the vehicles (each has its own start and end node; a day's 119 transfer trips offered
    to a chain's 2,220 vehicles built a model of over 14 GB). Each load, most valuable first,
    takes the next vehicle able to carry it from the depot nearest to it (by round trip), the
    depot's vehicles taken by turns over their sizes, so the search keeps a choice of depots and
    sizes. A fleet no larger than the loads is kept whole."""
    if len(fleet) <= len(offered) or not offered:
        return fleet
    depots: dict[tuple[float, float] | None, list[_Vehicle]] = {}
    for v in fleet:
        depots.setdefault(v.depot, []).append(v)
    for key, members in depots.items():
        by_size: dict[int, list[_Vehicle]] = {}
        for v in sorted(members, key=lambda v: v.index):
            by_size.setdefault(v.size, []).append(v)
        turns = [by_size[size] for size in sorted(by_size, reverse=True)]
        depots[key] = [v for round_ in zip_longest(*turns) for v in round_ if v is not None]
    taken: set[int] = set()
    for ld in sorted(offered, key=lambda x: (-x.value, x.index)):
        order = sorted(depots, key=lambda d: (math.inf if d is None else _trip_s(ld, d, speed), str(d)))
        pick = next((v for d in order for v in depots[d] if v.index not in taken and v.carries(ld)), None)
        if pick is None:  # no vehicle left carries it: the solver reports it skipped with its reason
            pick = next((v for d in order for v in depots[d] if v.index not in taken), None)
        if pick is not None:
            taken.add(pick.index)
    return [v for v in fleet if v.index in taken] or fleet[:1]


def _trip_s(ld: _Load, depot: tuple[float, float], speed: float) -> float:
    """A round trip from `depot` to carry `ld`: to its pickup, its delivery and back, plus the visits."""
    a, b = ld.pickup or depot, ld.delivery or depot
    return (_haversine(depot, a) + _haversine(a, b) + _haversine(b, depot)) / speed + ld.service_s


def _by_depot(loads: list[_Load], vehicles: list[_Vehicle], depots: list[tuple[float, float]],
              depot_of: dict[int, int], speed: float, slack: float) -> dict[int, list[_Load]]:
    """Each load to the depot with the shortest round trip among those whose vehicles can carry it
    and still have shift time for it (most valuable loads first), else to the nearest depot that
    can carry it: a store's one van does not get every transfer around it while the centre's
    fleet has room."""
    left_s = {k: slack * sum(v.shift_s for v in vehicles if depot_of[v.index] == k) for k in range(len(depots))}
    groups: dict[int, list[_Load]] = {k: [] for k in range(len(depots))}
    # A depot's vehicles by their distinct limits: thousands of vehicles are a few types per depot.
    types: dict[int, list[_Vehicle]] = {}
    for v in vehicles:
        kinds = types.setdefault(depot_of[v.index], [])
        if all(v.limits != t.limits for t in kinds):
            kinds.append(v)
    for ld in sorted(loads, key=lambda x: (-x.value, x.index)):
        capable = sorted(k for k, kinds in types.items() if any(t.carries(ld) for t in kinds)) \
            or list(range(len(depots)))
        trips = {k: _trip_s(ld, depots[k], speed) for k in capable}
        ranked = sorted(capable, key=lambda k: (trips[k], k))
        k = next((k for k in ranked if trips[k] <= left_s[k]), ranked[0])
        left_s[k] -= trips[k]
        groups[k].append(ld)
    return groups


def _share_vehicles(fleet: list[_Vehicle], units: list[int]) -> list[list[_Vehicle]]:
    """Vehicles per sector in proportion to its units (largest remainder, at least one each; the
    fleet has at least one vehicle per sector), large and small vehicles spread over the sectors."""
    n, total = len(fleet), sum(units) or 1
    quota = [max(1.0, n * u / total) for u in units]
    counts = [int(q) for q in quota]
    while sum(counts) > n:
        j = max((i for i in range(len(counts)) if counts[i] > 1), key=lambda i: (counts[i] - quota[i], -i))
        counts[j] -= 1
    for j in sorted(range(len(counts)), key=lambda i: (counts[i] - quota[i], i))[: n - sum(counts)]:
        counts[j] += 1
    out: list[list[_Vehicle]] = [[] for _ in units]
    # Largest first, each to the sector furthest below its count: every sector gets its share of trucks.
    for v in sorted(fleet, key=lambda v: (-v.size, v.index)):
        j = min((i for i in range(len(out)) if len(out[i]) < counts[i]),
                key=lambda i: (len(out[i]) / counts[i], i))
        out[j].append(v)
    return [sorted(part, key=lambda v: v.index) for part in out]


def _by_value(part: list[_Load], fleet: list[_Vehicle], speed: float, slack: float
              ) -> tuple[list[int], list[int]]:
    """The loads offered to the solver: most valuable first, each charged a round trip from the
    vehicle's depot to the capable vehicle with the most shift time left (`slack` × its shift); a load no
    vehicle has time left for is left out. A load no vehicle can carry is offered (the solver
    reports it skipped with its capacity reason)."""
    left_s = [slack * v.shift_s for v in fleet]

    offered, left = [], []
    for ld in sorted(part, key=lambda x: (-x.value, x.index)):
        capable = [k for k, v in enumerate(fleet) if v.carries(ld)]
        if not capable:
            offered.append(ld.index)
            continue
        k = max(capable, key=lambda k: (left_s[k], -k))
        need = _trip_s(ld, fleet[k].depot, speed)
        if need <= left_s[k]:
            left_s[k] -= need
            offered.append(ld.index)
        else:
            left.append(ld.index)
    return sorted(offered), sorted(left)


def solve_in_parts(request: ro.OptimizeToursRequest, *, time_limit_s: float,
                   solve: Callable[..., ro.OptimizeToursResponse],
                   max_shipments: int = MAX_SHIPMENTS, slack: float = SLACK) -> PartsResult:
    """Solve each problem of `split_request` with `solve(sub_request, time_limit_s=...)` within
    `time_limit_s` for them all (each gets the time left in proportion to its offered loads), and
    merge the responses into one for the whole request."""
    if time_limit_s <= 0:
        raise ValueError("time_limit_s must be > 0")
    deadline = time.monotonic() + time_limit_s
    pb = ro.OptimizeToursRequest.pb(request)
    problems = split_request(request, max_shipments=max_shipments, slack=slack)
    merged = ro.OptimizeToursResponse.pb(ro.OptimizeToursResponse())
    reports: list[ProblemReport] = []
    routes: dict[int, object] = {}
    weights = [len(offered) for _, _, offered, _ in problems]
    for n, (name, vehicle_ix, offered, left) in enumerate(problems):
        for s in left:
            _skip(merged, pb.model.shipments[s], s)
        if not offered or not vehicle_ix:
            for s in offered:
                _skip(merged, pb.model.shipments[s], s)
            reports.append(ProblemReport(name, len(offered) + len(left), 0 if not vehicle_ix else len(offered),
                                         len(vehicle_ix), 0.0, 0.0, 0, 0))
            continue
        remaining = max(0.05, deadline - time.monotonic())
        limit = max(0.05, remaining * weights[n] / max(1, sum(weights[n:])))
        sub = _sub_request(pb, vehicle_ix, offered, limit)
        started = time.monotonic()
        response = ro.OptimizeToursResponse.pb(solve(ro.OptimizeToursRequest.wrap(sub), time_limit_s=limit))
        spent = time.monotonic() - started
        routed = _merge(merged, response, vehicle_ix, offered, routes)
        used = sum(1 for r in response.routes if r.visits)
        reports.append(ProblemReport(name, len(offered) + len(left), len(offered), len(vehicle_ix), limit, spent,
                                     routed, used))
    for v in range(len(pb.model.vehicles)):
        route = routes.get(v)
        if route is None:
            route = ro.OptimizeToursResponse.pb(ro.OptimizeToursResponse()).routes.add()
            route.vehicle_index = v
            route.vehicle_label = pb.model.vehicles[v].label
        merged.routes.add().CopyFrom(route)
    merged.skipped_shipments.sort(key=lambda sk: sk.index)
    merged.metrics.total_cost = sum(merged.metrics.costs.values())
    return PartsResult(ro.OptimizeToursResponse.wrap(merged), reports)


def _sub_request(pb, vehicle_ix: list[int], shipment_ix: list[int], limit: float):
    sub = type(pb)()
    sub.CopyFrom(pb)
    del sub.model.shipments[:]
    del sub.model.vehicles[:]
    sub.model.shipments.extend(pb.model.shipments[s] for s in shipment_ix)
    sub.model.vehicles.extend(pb.model.vehicles[v] for v in vehicle_ix)
    # Injected routes name the request's vehicles and shipments: renumbered, others' visits left out.
    del sub.injected_first_solution_routes[:]
    new_vehicle = {v: k for k, v in enumerate(vehicle_ix)}
    new_shipment = {s: k for k, s in enumerate(shipment_ix)}
    for route in pb.injected_first_solution_routes:
        if route.vehicle_index not in new_vehicle:
            continue
        kept = sub.injected_first_solution_routes.add()
        kept.vehicle_index = new_vehicle[route.vehicle_index]
        for visit in route.visits:
            if visit.shipment_index in new_shipment:
                v = kept.visits.add()
                v.CopyFrom(visit)
                v.shipment_index = new_shipment[visit.shipment_index]
    whole = math.floor(limit)
    sub.timeout.seconds, sub.timeout.nanos = int(whole), int((limit - whole) * 1e9)
    return sub


def _skip(merged, shipment, index: int) -> None:
    """A load left out before the search: skipped with its penalty (value), no reason code, as the
    API reports a shipment it drops because serving it costs more than its penalty."""
    sk = merged.skipped_shipments.add()
    sk.index = index
    sk.label = shipment.label
    if shipment.HasField("penalty_cost"):
        sk.penalty_cost = shipment.penalty_cost
        merged.metrics.costs["model.shipments.penalty_cost"] = (
            merged.metrics.costs.get("model.shipments.penalty_cost", 0.0) + shipment.penalty_cost)
    else:
        merged.metrics.skipped_mandatory_shipment_count += 1


def _merge(merged, response, vehicle_ix: list[int], shipment_ix: list[int], routes: dict[int, object]) -> int:
    """Add a problem's response, its indices mapped to the whole request's; the loads it routed."""
    for route in response.routes:
        route.vehicle_index = vehicle_ix[route.vehicle_index]
        for visit in route.visits:
            visit.shipment_index = shipment_ix[visit.shipment_index]
        routes[route.vehicle_index] = route
    for sk in response.skipped_shipments:
        new = merged.skipped_shipments.add()
        new.CopyFrom(sk)
        new.index = shipment_ix[sk.index]
        for reason in new.reasons:
            if reason.HasField("example_vehicle_index"):
                reason.example_vehicle_index = vehicle_ix[reason.example_vehicle_index]
            mapped = [vehicle_ix[i] for i in reason.example_vehicle_indices]
            del reason.example_vehicle_indices[:]
            reason.example_vehicle_indices.extend(mapped)
    m, a, b = merged.metrics, merged.metrics.aggregated_route_metrics, response.metrics.aggregated_route_metrics
    a.performed_shipment_count += b.performed_shipment_count
    for name in ("travel_duration", "wait_duration", "visit_duration", "total_duration", "delay_duration",
                 "break_duration"):
        total = getattr(a, name)
        add = getattr(b, name)
        nanos = total.nanos + add.nanos
        total.seconds += add.seconds + nanos // 1_000_000_000
        total.nanos = nanos % 1_000_000_000
    a.travel_distance_meters += b.travel_distance_meters
    for t, load in b.max_loads.items():
        a.max_loads[t].amount = max(a.max_loads[t].amount, load.amount)
    m.used_vehicle_count += response.metrics.used_vehicle_count
    m.skipped_mandatory_shipment_count += response.metrics.skipped_mandatory_shipment_count
    for stamp, pick in (("earliest_vehicle_start_time", min), ("latest_vehicle_end_time", max)):
        if response.metrics.HasField(stamp):
            theirs = getattr(response.metrics, stamp)
            if not m.HasField(stamp) or pick(_seconds(theirs), _seconds(getattr(m, stamp))) == _seconds(theirs):
                getattr(m, stamp).CopyFrom(theirs)
    for key, value in response.metrics.costs.items():
        m.costs[key] = m.costs.get(key, 0.0) + value
    return response.metrics.aggregated_route_metrics.performed_shipment_count
