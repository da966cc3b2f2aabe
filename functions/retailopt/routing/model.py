"""Read an `OptimizeToursRequest` into the arrays the local solver works on.

Every field the local solver does not implement is refused with an error naming it, so a request is
never solved with part of it silently dropped. Problems confined to one shipment (no location, a
load no vehicle can carry, windows that cannot be met) do not fail the request: the shipment is
marked to be skipped with a reason, as the API does.

Internal units are integers: milliseconds from the model's global start, millimetres, and costs
scaled by COST_SCALE, so OR-Tools works on exact integers and nothing material is rounded away.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from google.maps import routeoptimization_v1 as ro
from google.protobuf import message as pb_message

MS = 1000  # internal time units per second
MM = 1000  # internal distance units per metre
COST_SCALE = 10**8  # internal cost units per cost unit
EARTH_RADIUS_M = 6_371_000.0
DEFAULT_GLOBAL_END_S = 365 * 24 * 3600  # API default: 1971-01-01T00:00:00Z
Reason = ro.SkippedShipment.Reason.Code
IMPOSSIBLE = ((-1, -1),)  # window list no time can meet


class RequestError(ValueError):
    """The request is malformed or uses a field the local solver does not implement."""

    def __init__(self, field_path: str, message: str):
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path


# Fields the local solver implements, by message path. Anything else that is set is refused.
_SUPPORTED: dict[str, set[str]] = {
    "request": {"parent", "timeout", "model", "solving_mode", "search_mode", "use_geodesic_distances",
                "geodesic_meters_per_second", "label", "max_validation_errors",
                "allow_large_deadline_despite_interruption_risk", "injected_first_solution_routes"},
    "model": {"shipments", "vehicles", "global_start_time", "global_end_time",
              "global_duration_cost_per_hour", "duration_distance_matrices",
              "duration_distance_matrix_src_tags", "duration_distance_matrix_dst_tags"},
    "matrix": {"rows", "vehicle_start_tag"},
    "row": {"durations", "meters"},
    "shipment": {"display_name", "pickups", "deliveries", "load_demands", "penalty_cost",
                 "allowed_vehicle_indices", "label", "ignore"},
    "visit": {"arrival_location", "arrival_waypoint", "tags", "time_windows", "duration", "cost",
              "load_demands", "label"},
    "waypoint": {"location"},
    "location": {"lat_lng"},
    "time_window": {"start_time", "end_time"},
    "vehicle": {"display_name", "travel_mode", "start_location", "start_waypoint", "end_location",
                "end_waypoint", "start_tags", "end_tags", "start_time_windows", "end_time_windows",
                "travel_duration_multiple", "load_limits", "cost_per_hour", "cost_per_traveled_hour",
                "cost_per_kilometer", "fixed_cost", "used_if_route_is_empty", "route_duration_limit",
                "route_distance_limit", "label"},
    "load_limit": {"max_load"},
    "duration_limit": {"max_duration"},
    "distance_limit": {"max_meters"},
}


def _check_fields(msg: pb_message.Message, kind: str, path: str) -> None:
    allowed = _SUPPORTED[kind]
    for desc, _ in msg.ListFields():
        if desc.name not in allowed:
            raise RequestError(f"{path}.{desc.name}", "not supported by the local solver")


@dataclass
class Node:
    lat: float | None = None
    lng: float | None = None
    tags: tuple[str, ...] = ()
    service_ms: int = 0
    windows: list[tuple[int, int]] = field(default_factory=list)  # empty: whole horizon
    demand: dict[str, int] = field(default_factory=dict)  # signed: + pickup, - delivery
    cost: float = 0.0
    shipment: int = -1
    is_pickup: bool = False
    path: str = ""


@dataclass
class Problem:
    request: ro.OptimizeToursRequest
    start_s: float  # global start, Unix seconds
    horizon_ms: int
    nodes: list[Node]
    vehicle_count: int
    start_nodes: list[int]
    end_nodes: list[int]
    shipment_nodes: list[tuple[int | None, int | None]]  # (pickup node, delivery node)
    shipment_labels: list[str]
    penalties: list[float | None]  # None = mandatory
    allowed: list[list[int] | None]
    load_types: list[str]
    capacities: dict[str, list[int | None]]  # load type -> per vehicle max (None = unlimited)
    vehicle_windows: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]
    max_duration_ms: list[int | None]
    max_distance_mm: list[int | None]
    cost_per_km: list[float]
    cost_per_hour: list[float]
    cost_per_traveled_hour: list[float]
    fixed_cost: list[float]
    used_if_empty: list[bool]
    vehicle_labels: list[str]
    travel_group: list[int]  # vehicle -> index into travel_ms/dist_mm
    travel_ms: list[np.ndarray] = field(default_factory=list)
    dist_mm: list[np.ndarray] = field(default_factory=list)
    skip_reasons: dict[int, list[tuple[int, int | None, str]]] = field(default_factory=dict)
    validation_errors: list[tuple[str, str]] = field(default_factory=list)  # (field path, message)
    # The request's injected_first_solution_routes: vehicle -> its visits' nodes in order, where
    # the search starts (the API's guide to a first solution similar to a previous one).
    injected: dict[int, list[int]] = field(default_factory=dict)


def _injected_routes(pb, shipment_nodes: list[tuple[int | None, int | None]], vehicles: int
                     ) -> dict[int, list[int]]:
    """`injected_first_solution_routes` as vehicle -> nodes; an index out of range is refused."""
    out: dict[int, list[int]] = {}
    for r, route in enumerate(pb.injected_first_solution_routes):
        path = f"request.injected_first_solution_routes[{r}]"
        if not 0 <= route.vehicle_index < vehicles:
            raise RequestError(f"{path}.vehicle_index", f"no vehicle {route.vehicle_index}")
        seq = out.setdefault(route.vehicle_index, [])
        for k, visit in enumerate(route.visits):
            if not 0 <= visit.shipment_index < len(shipment_nodes):
                raise RequestError(f"{path}.visits[{k}].shipment_index", f"no shipment {visit.shipment_index}")
            node = shipment_nodes[visit.shipment_index][0 if visit.is_pickup else 1]
            if node is not None:
                seq.append(node)
    return out


def _ts_seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def _dur_ms(d) -> int:
    return int(round(d.seconds * MS + d.nanos / 1e6))


def load_problem(request: ro.OptimizeToursRequest) -> Problem:
    """Validate the request and turn it into integer arrays; raises RequestError naming the field."""
    pb = ro.OptimizeToursRequest.pb(request)
    _check_fields(pb, "request", "request")
    if pb.solving_mode not in (0, 1):
        raise RequestError("request.solving_mode", f"{ro.OptimizeToursRequest.SolvingMode(pb.solving_mode).name} "
                                                   "is not supported by the local solver")
    m = pb.model
    _check_fields(m, "model", "model")
    start_s = _ts_seconds(m.global_start_time) if m.HasField("global_start_time") else 0.0
    end_s = _ts_seconds(m.global_end_time) if m.HasField("global_end_time") else DEFAULT_GLOBAL_END_S
    if end_s <= start_s:
        raise RequestError("model.global_end_time", "must be after model.global_start_time")
    horizon_ms = int(round((end_s - start_s) * MS))
    if not m.vehicles:
        raise RequestError("model.vehicles", "at least one vehicle is required")
    use_matrix = len(m.duration_distance_matrices) > 0
    if pb.use_geodesic_distances and use_matrix:
        raise RequestError("request.use_geodesic_distances", "cannot be combined with "
                                                             "model.duration_distance_matrices")
    if pb.use_geodesic_distances and pb.geodesic_meters_per_second < 1.0:
        raise RequestError("request.geodesic_meters_per_second", "must be >= 1.0 with "
                                                                 "use_geodesic_distances")

    def to_ms(ts, path: str) -> int:
        value = int(round((_ts_seconds(ts) - start_s) * MS))
        return value

    def windows(tws, path: str) -> list[tuple[int, int]]:
        out = []
        for k, tw in enumerate(tws):
            _check_fields(tw, "time_window", f"{path}[{k}]")
            lo = to_ms(tw.start_time, path) if tw.HasField("start_time") else 0
            hi = to_ms(tw.end_time, path) if tw.HasField("end_time") else horizon_ms
            if hi < lo:
                raise RequestError(f"{path}[{k}]", "end_time is before start_time")
            lo, hi = max(lo, 0), min(hi, horizon_ms)
            if lo <= hi:
                out.append((lo, hi))
        if tws and not out:
            return list(IMPOSSIBLE)  # every window lies outside the global time frame
        out.sort()
        return out

    def location(msg, loc_field: str, wp_field: str, path: str) -> tuple[float | None, float | None]:
        if msg.HasField(loc_field):
            ll = getattr(msg, loc_field)
        elif msg.HasField(wp_field):
            wp = getattr(msg, wp_field)
            _check_fields(wp, "waypoint", f"{path}.{wp_field}")
            _check_fields(wp.location, "location", f"{path}.{wp_field}.location")
            if not wp.location.HasField("lat_lng"):
                return None, None
            ll = wp.location.lat_lng
        else:
            return None, None
        if not (-90 <= ll.latitude <= 90 and -180 <= ll.longitude <= 180):
            raise RequestError(f"{path}.{loc_field}", f"latitude/longitude out of range: "
                                                     f"{ll.latitude}, {ll.longitude}")
        return ll.latitude, ll.longitude

    nodes: list[Node] = []
    load_types: set[str] = set()
    shipment_nodes: list[tuple[int | None, int | None]] = []
    labels, penalties, allowed = [], [], []
    skip: dict[int, list[tuple[int, int | None, str]]] = {}
    verrors: list[tuple[str, str]] = []
    nv = len(m.vehicles)
    for s, sh in enumerate(m.shipments):
        spath = f"model.shipments[{s}]"
        _check_fields(sh, "shipment", spath)
        for kind in ("pickups", "deliveries"):
            if len(getattr(sh, kind)) > 1:
                raise RequestError(f"{spath}.{kind}", "alternative visit requests (more than one) are "
                                                      "not supported by the local solver")
        if not sh.pickups and not sh.deliveries:
            raise RequestError(spath, "a shipment needs a pickup or a delivery")
        if sh.penalty_cost < 0:
            raise RequestError(f"{spath}.penalty_cost", "must be >= 0")
        demand = {}
        for key, load in sh.load_demands.items():
            if load.amount < 0:
                raise RequestError(f"{spath}.load_demands[{key}].amount", "must be >= 0")
            demand[key] = load.amount
        pair: list[int | None] = [None, None]
        for slot, kind in enumerate(("pickups", "deliveries")):
            if not getattr(sh, kind):
                continue
            vr = getattr(sh, kind)[0]
            vpath = f"{spath}.{kind}[0]"
            _check_fields(vr, "visit", vpath)
            lat, lng = location(vr, "arrival_location", "arrival_waypoint", vpath)
            if vr.duration.seconds < 0 or vr.duration.nanos < 0:
                raise RequestError(f"{vpath}.duration", "must be >= 0")
            sign = 1 if slot == 0 else -1
            node_demand = {k: sign * a for k, a in demand.items()}
            for key, load in vr.load_demands.items():
                if load.amount < 0:
                    raise RequestError(f"{vpath}.load_demands[{key}].amount", "must be >= 0")
                node_demand[key] = node_demand.get(key, 0) + sign * load.amount
            load_types.update(node_demand)
            node = Node(lat=lat, lng=lng, tags=tuple(vr.tags), service_ms=_dur_ms(vr.duration),
                        windows=windows(vr.time_windows, f"{vpath}.time_windows"),
                        demand=node_demand, cost=vr.cost, shipment=s, is_pickup=slot == 0, path=vpath)
            if lat is None and not (use_matrix and vr.tags):
                what = "tags" if use_matrix else "arrival_location"
                verrors.append((f"{vpath}.{what}", "the visit has no location"))
                skip.setdefault(s, []).append((Reason.CODE_UNSPECIFIED, None,
                                               f"{vpath} has no location and no tag"))
            pair[slot] = len(nodes)
            nodes.append(node)
        shipment_nodes.append((pair[0], pair[1]))
        labels.append(sh.label)
        penalties.append(sh.penalty_cost if sh.HasField("penalty_cost") else None)
        idx = list(sh.allowed_vehicle_indices)
        for v in idx:
            if not 0 <= v < nv:
                raise RequestError(f"{spath}.allowed_vehicle_indices", f"vehicle index {v} out of range")
        allowed.append(sorted(set(idx)) or None)
        if sh.ignore:
            skip.setdefault(s, []).append((Reason.SHIPMENT_IGNORED, None, "ignored"))

    start_nodes, end_nodes = [], []
    vwin, maxdur, maxdist = [], [], []
    cpk, cph, cpth, fixed, used_empty, vlabels = [], [], [], [], [], []
    multiples = []
    limits: dict[str, list[int | None]] = {}
    for v, veh in enumerate(m.vehicles):
        vpath = f"model.vehicles[{v}]"
        _check_fields(veh, "vehicle", vpath)
        if veh.travel_mode not in (0, 1):
            raise RequestError(f"{vpath}.travel_mode", "only DRIVING is supported by the local solver")
        for name in ("cost_per_hour", "cost_per_traveled_hour", "cost_per_kilometer", "fixed_cost"):
            if getattr(veh, name) < 0:
                raise RequestError(f"{vpath}.{name}", "must be >= 0")
        for which in ("start", "end"):
            lat, lng = location(veh, f"{which}_location", f"{which}_waypoint", vpath)
            tags = tuple(getattr(veh, f"{which}_tags"))
            node = Node(lat=lat, lng=lng, tags=tags, path=f"{vpath}.{which}")
            (start_nodes if which == "start" else end_nodes).append(len(nodes))
            nodes.append(node)
        vwin.append((windows(veh.start_time_windows, f"{vpath}.start_time_windows"),
                     windows(veh.end_time_windows, f"{vpath}.end_time_windows")))
        for key, lim in veh.load_limits.items():
            _check_fields(lim, "load_limit", f"{vpath}.load_limits[{key}]")
            if not lim.HasField("max_load"):
                continue
            if lim.max_load < 0:
                raise RequestError(f"{vpath}.load_limits[{key}].max_load", "must be >= 0")
            limits.setdefault(key, [None] * nv)[v] = lim.max_load
        if veh.HasField("route_duration_limit"):
            _check_fields(veh.route_duration_limit, "duration_limit", f"{vpath}.route_duration_limit")
            has = veh.route_duration_limit.HasField("max_duration")
            maxdur.append(_dur_ms(veh.route_duration_limit.max_duration) if has else None)
        else:
            maxdur.append(None)
        if veh.HasField("route_distance_limit"):
            _check_fields(veh.route_distance_limit, "distance_limit", f"{vpath}.route_distance_limit")
            has = veh.route_distance_limit.HasField("max_meters")
            maxdist.append(veh.route_distance_limit.max_meters * MM if has else None)
        else:
            maxdist.append(None)
        mult = veh.travel_duration_multiple if veh.HasField("travel_duration_multiple") else 1.0
        if mult <= 0:
            raise RequestError(f"{vpath}.travel_duration_multiple", "must be > 0")
        multiples.append(mult)
        cpk.append(veh.cost_per_kilometer)
        cph.append(veh.cost_per_hour + m.global_duration_cost_per_hour)
        cpth.append(veh.cost_per_traveled_hour)
        fixed.append(veh.fixed_cost)
        used_empty.append(veh.used_if_route_is_empty)
        vlabels.append(veh.label)
    for key in limits:
        load_types.add(key)

    problem = Problem(
        request=request, start_s=start_s, horizon_ms=horizon_ms, nodes=nodes, vehicle_count=nv,
        start_nodes=start_nodes, end_nodes=end_nodes, shipment_nodes=shipment_nodes,
        shipment_labels=labels, penalties=penalties, allowed=allowed, load_types=sorted(load_types),
        capacities=limits, vehicle_windows=vwin, max_duration_ms=maxdur, max_distance_mm=maxdist,
        cost_per_km=cpk, cost_per_hour=cph, cost_per_traveled_hour=cpth, fixed_cost=fixed,
        used_if_empty=used_empty, vehicle_labels=vlabels, travel_group=[0] * nv,
        skip_reasons=skip, validation_errors=verrors, injected=_injected_routes(pb, shipment_nodes, nv))
    if use_matrix:
        _matrix_travel(problem, m, multiples)
    else:
        if not pb.use_geodesic_distances:
            raise RequestError("request.use_geodesic_distances",
                               "the local solver has no road network: set use_geodesic_distances with "
                               "geodesic_meters_per_second, or give model.duration_distance_matrices")
        _geodesic_travel(problem, pb.geodesic_meters_per_second, multiples)
    _precheck(problem)
    return problem


def _geodesic_travel(problem: Problem, speed_mps: float, multiples: list[float]) -> None:
    nodes = problem.nodes
    known = np.array([nd.lat is not None for nd in nodes])
    lat = np.radians(np.array([nd.lat if nd.lat is not None else 0.0 for nd in nodes]))
    lng = np.radians(np.array([nd.lng if nd.lng is not None else 0.0 for nd in nodes]))
    dlat = lat[:, None] - lat[None, :]
    dlng = lng[:, None] - lng[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlng / 2) ** 2
    meters = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    # A vehicle without a start (end) location starts (ends) wherever its first (last) visit is.
    meters[~known, :] = 0.0
    meters[:, ~known] = 0.0
    seconds = meters / speed_mps
    groups: dict[float, int] = {}
    dist = np.rint(meters * MM).astype(np.int64)
    for v, mult in enumerate(multiples):
        if mult not in groups:
            groups[mult] = len(problem.travel_ms)
            problem.travel_ms.append(np.rint(seconds * mult * MS).astype(np.int64))
            problem.dist_mm.append(dist)
        problem.travel_group[v] = groups[mult]


def _matrix_travel(problem: Problem, m, multiples: list[float]) -> None:
    src = list(m.duration_distance_matrix_src_tags)
    dst = list(m.duration_distance_matrix_dst_tags)
    if len(set(src)) != len(src):
        raise RequestError("model.duration_distance_matrix_src_tags", "tags must be unique")
    if len(set(dst)) != len(dst):
        raise RequestError("model.duration_distance_matrix_dst_tags", "tags must be unique")
    mats = list(m.duration_distance_matrices)
    if len(mats) > 1 and any(not mat.vehicle_start_tag for mat in mats):
        raise RequestError("model.duration_distance_matrices",
                           "with several matrices each needs a vehicle_start_tag")
    full_ms, full_mm = [], []
    for k, mat in enumerate(mats):
        mpath = f"model.duration_distance_matrices[{k}]"
        _check_fields(mat, "matrix", mpath)
        if len(mat.rows) != len(src):
            raise RequestError(f"{mpath}.rows", f"has {len(mat.rows)} rows, expected {len(src)} "
                                                f"(one per src tag)")
        dur = np.zeros((len(src), len(dst)))
        met = np.zeros((len(src), len(dst)))
        for r, row in enumerate(mat.rows):
            _check_fields(row, "row", f"{mpath}.rows[{r}]")
            if len(row.durations) != len(dst):
                raise RequestError(f"{mpath}.rows[{r}].durations", f"has {len(row.durations)} values, "
                                                                   f"expected {len(dst)}")
            if len(row.meters) not in (0, len(dst)):
                raise RequestError(f"{mpath}.rows[{r}].meters", f"has {len(row.meters)} values, "
                                                                f"expected {len(dst)}")
            dur[r] = [d.seconds + d.nanos / 1e9 for d in row.durations]
            if row.meters:
                met[r] = list(row.meters)
        if (dur < 0).any() or (met < 0).any():
            raise RequestError(f"{mpath}.rows", "durations and meters must be >= 0")
        full_ms.append(dur)
        full_mm.append(met)
    src_idx = {t: i for i, t in enumerate(src)}
    dst_idx = {t: i for i, t in enumerate(dst)}
    nodes = problem.nodes
    rows = np.full(len(nodes), -1)
    cols = np.full(len(nodes), -1)
    for i, nd in enumerate(nodes):
        rs = [src_idx[t] for t in nd.tags if t in src_idx]
        cs = [dst_idx[t] for t in nd.tags if t in dst_idx]
        if len(rs) > 1 or len(cs) > 1:
            raise RequestError(f"{nd.path}.tags", "matches more than one matrix tag")
        rows[i] = rs[0] if rs else -1
        cols[i] = cs[0] if cs else -1
        is_visit = nd.shipment >= 0
        if is_visit and (not rs or not cs) and not any(r[0] == Reason.CODE_UNSPECIFIED
                                                       for r in problem.skip_reasons.get(nd.shipment, [])):
            problem.validation_errors.append((f"{nd.path}.tags", "no tag of the duration/distance matrix"))
            problem.skip_reasons.setdefault(nd.shipment, []).append(
                (Reason.CODE_UNSPECIFIED, None, f"{nd.path} has no location and no tag"))
    open_rows, open_cols = rows < 0, cols < 0
    r_safe, c_safe = np.where(open_rows, 0, rows), np.where(open_cols, 0, cols)
    by_tag = {mat.vehicle_start_tag: k for k, mat in enumerate(mats)}
    groups: dict[tuple[int, float], int] = {}
    for v, mult in enumerate(multiples):
        if len(mats) == 1 and not mats[0].vehicle_start_tag:
            k = 0
        else:
            hits = [by_tag[t] for t in nodes[problem.start_nodes[v]].tags if t in by_tag]
            if len(hits) != 1:
                raise RequestError(f"model.vehicles[{v}].start_tags",
                                   "must match exactly one matrix vehicle_start_tag")
            k = hits[0]
        key = (k, mult)
        if key not in groups:
            sec = full_ms[k][r_safe][:, c_safe]
            met = full_mm[k][r_safe][:, c_safe]
            sec[open_rows, :] = 0.0
            sec[:, open_cols] = 0.0
            met[open_rows, :] = 0.0
            met[:, open_cols] = 0.0
            groups[key] = len(problem.travel_ms)
            problem.travel_ms.append(np.rint(sec * mult * MS).astype(np.int64))
            problem.dist_mm.append(np.rint(met * MM).astype(np.int64))
        problem.travel_group[v] = groups[key]


def earliest_in(windows: list[tuple[int, int]], t: int, horizon: int) -> int | None:
    """Earliest time >= t inside one of the windows (None if none)."""
    if not windows:
        return t if t <= horizon else None
    for lo, hi in windows:
        if t <= hi:
            return max(t, lo)
    return None


def _precheck(problem: Problem) -> None:
    """Mark shipments no vehicle can serve even alone, with the API's reason codes."""
    for s, (p, d) in enumerate(problem.shipment_nodes):
        if s in problem.skip_reasons:
            continue
        vehicles = problem.allowed[s] or list(range(problem.vehicle_count))
        demand = {}
        for node in (p, d):
            if node is not None:
                for k, a in problem.nodes[node].demand.items():
                    demand[k] = max(demand.get(k, 0), abs(a))
        reasons: list[tuple[int, int | None, str]] = []
        for v in vehicles:
            over = [k for k, a in demand.items()
                    if problem.capacities.get(k, [None] * problem.vehicle_count)[v] is not None
                    and a > problem.capacities[k][v]]
            if over:
                reasons.append((Reason.DEMAND_EXCEEDS_VEHICLE_CAPACITY, v, over[0]))
                continue
            reason = _alone_feasible(problem, v, [x for x in (p, d) if x is not None])
            if reason is None:
                reasons = []
                break
            reasons.append((reason, v, ""))
        if reasons:
            # One reason per code, the first vehicle as the example, as the API reports them.
            seen: dict[int, tuple[int, int | None, str]] = {}
            for r in reasons:
                seen.setdefault(r[0], r)
            problem.skip_reasons[s] = list(seen.values())


def _alone_feasible(problem: Problem, v: int, seq: list[int]) -> int | None:
    g = problem.travel_group[v]
    tm, dm = problem.travel_ms[g], problem.dist_mm[g]
    start, end = problem.start_nodes[v], problem.end_nodes[v]
    starts, ends = problem.vehicle_windows[v]
    t0 = earliest_in(starts, 0, problem.horizon_ms)
    if t0 is None:
        return Reason.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
    # Start as late as the first visit allows so waiting does not count against the duration limit.
    t, prev, dist = t0, start, 0
    first_visit = None
    for node in seq:
        arrive = t + problem.nodes[prev].service_ms + tm[prev, node]
        begin = earliest_in(problem.nodes[node].windows, arrive, problem.horizon_ms)
        if begin is None:
            return Reason.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
        if first_visit is None:
            first_visit = begin - tm[start, node]
        dist += dm[prev, node]
        t, prev = begin, node
    finish = earliest_in(ends, t + problem.nodes[prev].service_ms + tm[prev, end], problem.horizon_ms)
    dist += dm[prev, end]
    if finish is None:
        return Reason.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS
    latest_start = max(t0, min(first_visit if first_visit is not None else t0,
                               max((hi for _, hi in starts), default=problem.horizon_ms)))
    if problem.max_distance_mm[v] is not None and dist > problem.max_distance_mm[v]:
        return Reason.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT
    if problem.max_duration_ms[v] is not None and finish - latest_start > problem.max_duration_ms[v]:
        return Reason.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT
    return None
