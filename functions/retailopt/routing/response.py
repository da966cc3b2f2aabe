"""Turn visit sequences into an `OptimizeToursResponse` filled the way the API fills it."""

from __future__ import annotations

from dataclasses import dataclass

from google.maps import routeoptimization_v1 as ro
from google.protobuf import duration_pb2, timestamp_pb2

from retailopt.routing.model import MM, MS, Problem, Reason, earliest_in

@dataclass
class Schedule:
    path: list[int]  # start node, visits, end node
    times: list[int]  # visit start (ms from global start); first = vehicle start, last = vehicle end
    travel: list[int]  # per transition, ms
    dist: list[int]  # per transition, mm
    wait: list[int]  # per transition, ms


def _latest_in(windows: list[tuple[int, int]], t: int) -> int | None:
    if not windows:
        return t
    for lo, hi in reversed(windows):
        if lo <= t:
            return min(t, hi)
    return None


def schedule(problem: Problem, v: int, seq: list[int]) -> Schedule | None:
    """Visit times of a route: the latest feasible departure, then every visit as early as possible.

    Leaving as late as the route allows removes waiting before the first stop, which the vehicle's
    cost per hour would otherwise pay for. None if the sequence breaks a time window.
    """
    g = problem.travel_group[v]
    tm, dm = problem.travel_ms[g], problem.dist_mm[g]
    path = [problem.start_nodes[v], *seq, problem.end_nodes[v]]
    starts, ends = problem.vehicle_windows[v]
    wins = [starts] + [problem.nodes[n].windows for n in seq] + [ends]
    h = problem.horizon_ms
    svc = [problem.nodes[n].service_ms for n in path]
    leg = [int(tm[a, b]) for a, b in zip(path, path[1:])]

    def forward(t0: int) -> list[int] | None:
        out = [t0]
        for k in range(1, len(path)):
            t = earliest_in(wins[k], out[-1] + svc[k - 1] + leg[k - 1], h)
            if t is None or t > h:
                return None
            out.append(t)
        return out

    t0 = earliest_in(starts, 0, h)
    if t0 is None:
        return None
    early = forward(t0)
    if early is None:
        return None
    latest = _latest_in(ends, h) if ends else h
    if latest is None:
        return None
    for k in range(len(path) - 2, -1, -1):
        latest = _latest_in(wins[k], min(latest - svc[k] - leg[k], h))
        if latest is None:
            break
    times = early
    if latest is not None and latest > t0:
        later = forward(latest)
        if later is not None:
            times = later
    wait = [times[k + 1] - (times[k] + svc[k] + leg[k]) for k in range(len(path) - 1)]
    return Schedule(path, times, leg, [int(dm[a, b]) for a, b in zip(path, path[1:])], wait)


def route_cost(problem: Problem, v: int, seq: list[int], sched: Schedule) -> dict[str, float]:
    """The route's costs under the API's cost names (only those that apply)."""
    if not seq and not problem.used_if_empty[v]:
        return {}
    km = sum(sched.dist) / (1000 * MM)
    travel_h = sum(sched.travel) / (3600 * MS)
    span_h = (sched.times[-1] - sched.times[0]) / (3600 * MS)
    costs = {
        "model.vehicles.fixed_cost": problem.fixed_cost[v],
        "model.vehicles.cost_per_kilometer": problem.cost_per_km[v] * km,
        "model.vehicles.cost_per_traveled_hour": problem.cost_per_traveled_hour[v] * travel_h,
        "model.vehicles.cost_per_hour": problem.cost_per_hour[v] * span_h,
        "model.shipments.pickups.cost": sum(problem.nodes[n].cost for n in seq if problem.nodes[n].is_pickup),
        "model.shipments.deliveries.cost": sum(problem.nodes[n].cost for n in seq
                                               if not problem.nodes[n].is_pickup),
    }
    return {k: c for k, c in costs.items() if c}


def _stamp(problem: Problem, ms: int) -> timestamp_pb2.Timestamp:
    total_ns = int(round(problem.start_s * 1e9)) + ms * 1_000_000
    return timestamp_pb2.Timestamp(seconds=total_ns // 1_000_000_000, nanos=total_ns % 1_000_000_000)


def _dur(ms: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def build_response(problem: Problem, routes: dict[int, list[int]] | None) -> ro.OptimizeToursResponse:
    """Routes, visits, transitions, metrics, costs and skipped shipments; validation errors only when
    `routes` is None (VALIDATE_ONLY)."""
    resp = ro.OptimizeToursResponse.pb()()
    resp.request_label = problem.request.label
    for path, message in problem.validation_errors:
        err = resp.validation_errors.add()
        err.display_name = "LOCATION_MISSING"
        err.error_message = message
        _field_ref(err.fields.add(), path)
    if routes is None:
        return ro.OptimizeToursResponse.wrap(resp)

    totals = {"travel": 0, "wait": 0, "visit": 0, "total": 0, "dist": 0.0, "performed": 0}
    max_loads: dict[str, int] = {}
    costs: dict[str, float] = {}
    used = 0
    first_start, last_end = None, None
    performed: set[int] = set()
    for v in range(problem.vehicle_count):
        seq = routes.get(v, [])
        r = resp.routes.add()
        r.vehicle_index = v
        r.vehicle_label = problem.vehicle_labels[v]
        if not seq and not problem.used_if_empty[v]:
            continue
        sched = schedule(problem, v, seq)
        if sched is None:
            raise RuntimeError(f"internal error: route of vehicle {v} breaks a time window")
        used += 1
        r.vehicle_start_time.CopyFrom(_stamp(problem, sched.times[0]))
        r.vehicle_end_time.CopyFrom(_stamp(problem, sched.times[-1]))
        first_start = sched.times[0] if first_start is None else min(first_start, sched.times[0])
        last_end = sched.times[-1] if last_end is None else max(last_end, sched.times[-1])
        load = _start_load(problem, seq)
        route_max = dict(load)
        visit_ms = 0
        for k in range(len(sched.path) - 1):
            tr = r.transitions.add()
            tr.travel_duration.CopyFrom(_dur(sched.travel[k]))
            tr.travel_distance_meters = sched.dist[k] / MM
            tr.wait_duration.CopyFrom(_dur(sched.wait[k]))
            tr.total_duration.CopyFrom(_dur(sched.travel[k] + sched.wait[k]))
            depart = sched.times[k] + problem.nodes[sched.path[k]].service_ms
            tr.start_time.CopyFrom(_stamp(problem, depart))
            for t, amount in load.items():
                tr.vehicle_loads[t].amount = amount
            if k + 1 < len(sched.path) - 1:
                node = problem.nodes[sched.path[k + 1]]
                vis = r.visits.add()
                vis.shipment_index = node.shipment
                vis.is_pickup = node.is_pickup
                vis.visit_request_index = 0
                vis.start_time.CopyFrom(_stamp(problem, sched.times[k + 1]))
                vis.shipment_label = problem.shipment_labels[node.shipment]
                for t, amount in node.demand.items():
                    vis.load_demands[t].amount = amount
                    load[t] = load.get(t, 0) + amount
                    route_max[t] = max(route_max.get(t, 0), load[t])
                visit_ms += node.service_ms
                if node.is_pickup or problem.shipment_nodes[node.shipment][0] is None:
                    performed.add(node.shipment)
        travel, wait = sum(sched.travel), sum(sched.wait)
        m = r.metrics
        n_done = len({problem.nodes[n].shipment for n in seq})
        m.performed_shipment_count = n_done
        m.performed_mandatory_shipment_count = sum(
            1 for s in {problem.nodes[n].shipment for n in seq} if problem.penalties[s] is None)
        m.travel_duration.CopyFrom(_dur(travel))
        m.wait_duration.CopyFrom(_dur(wait))
        m.visit_duration.CopyFrom(_dur(visit_ms))
        m.total_duration.CopyFrom(_dur(sched.times[-1] - sched.times[0]))
        m.travel_distance_meters = sum(sched.dist) / MM
        for t, amount in route_max.items():
            m.max_loads[t].amount = amount
            max_loads[t] = max(max_loads.get(t, 0), amount)
        rc = route_cost(problem, v, seq, sched)
        for key, value in rc.items():
            r.route_costs[key] = value
            costs[key] = costs.get(key, 0.0) + value
        r.route_total_cost = sum(rc.values())
        totals["travel"] += travel
        totals["wait"] += wait
        totals["visit"] += visit_ms
        totals["total"] += sched.times[-1] - sched.times[0]
        totals["dist"] += sum(sched.dist) / MM
        totals["performed"] += n_done

    skipped_mandatory = 0
    penalty = 0.0
    for s in range(len(problem.shipment_nodes)):
        if s in performed:
            continue
        sk = resp.skipped_shipments.add()
        sk.index = s
        sk.label = problem.shipment_labels[s]
        reasons = problem.skip_reasons.get(s)
        ignored = reasons is not None and any(code == Reason.SHIPMENT_IGNORED for code, _, _ in reasons)
        if problem.penalties[s] is None and not ignored:
            skipped_mandatory += 1
        elif problem.penalties[s] is not None and not ignored:
            sk.penalty_cost = problem.penalties[s]
            penalty += problem.penalties[s]
        for code, vehicle, capacity_type in reasons or []:
            reason = sk.reasons.add()
            reason.code = code
            if vehicle is not None:
                reason.example_vehicle_index = vehicle
                reason.example_vehicle_indices.append(vehicle)
            if code == Reason.DEMAND_EXCEEDS_VEHICLE_CAPACITY and capacity_type:
                reason.example_exceeded_capacity_type = capacity_type
    if penalty:
        costs["model.shipments.penalty_cost"] = penalty

    met = resp.metrics
    agg = met.aggregated_route_metrics
    agg.performed_shipment_count = totals["performed"]
    agg.travel_duration.CopyFrom(_dur(totals["travel"]))
    agg.wait_duration.CopyFrom(_dur(totals["wait"]))
    agg.visit_duration.CopyFrom(_dur(totals["visit"]))
    agg.total_duration.CopyFrom(_dur(totals["total"]))
    agg.travel_distance_meters = totals["dist"]
    for t, amount in max_loads.items():
        agg.max_loads[t].amount = amount
    met.skipped_mandatory_shipment_count = skipped_mandatory
    met.used_vehicle_count = used
    if first_start is not None:
        met.earliest_vehicle_start_time.CopyFrom(_stamp(problem, first_start))
        met.latest_vehicle_end_time.CopyFrom(_stamp(problem, last_end))
    for key, value in costs.items():
        met.costs[key] = value
    met.total_cost = sum(costs.values())
    return ro.OptimizeToursResponse.wrap(resp)


def _start_load(problem: Problem, seq: list[int]) -> dict[str, int]:
    """Load on board at the start: the delivery-only shipments of the route."""
    load: dict[str, int] = {t: 0 for t in problem.load_types}
    for n in seq:
        node = problem.nodes[n]
        if not node.is_pickup and problem.shipment_nodes[node.shipment][0] is None:
            for t, amount in node.demand.items():
                load[t] = load.get(t, 0) - amount
    return load


def _field_ref(ref, path: str) -> None:
    """Fill an OptimizeToursValidationError.FieldReference chain from 'a.b[3].c'."""
    parts = path.split(".")
    for k, part in enumerate(parts):
        name, _, rest = part.partition("[")
        ref.name = name
        if rest:
            key = rest.rstrip("]")
            if key.isdigit():
                ref.index = int(key)
            else:
                ref.key = key
        if k + 1 < len(parts):
            ref = ref.sub_field
