"""`retailopt bench-routing`: the local solver on Li & Lim PDPTW instances, against OR-Tools and VROOM.

Each instance becomes an `OptimizeToursRequest` (one shipment per pickup-delivery pair, a matrix of
Euclidean distances in double precision, times scaled by TIME_SCALE so nothing is rounded away) and
goes through `solve_local`, the solver's public interface. The same instances are solved by the
OR-Tools routing solver in its default configuration and by VROOM, at the same time limit. Every
solution is re-checked in double precision (time windows, capacity, pairing) before it is scored:
vehicles first, then distance, gap to the best known. `--scale` measures the planner on a synthetic
day of 500 shipments and 30 vehicles instead.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from google.maps import routeoptimization_v1 as ro
from google.protobuf import duration_pb2, timestamp_pb2

DEFAULT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "benchmarks" / "lilim100"
TIME_SCALE = 1000  # instance time unit -> seconds in the request
FIXED_COST = 100_000.0  # per vehicle: more than any distance, so vehicles are minimised first
SOLVERS = ("local", "ortools_default", "vroom")
TOLERANCE = 1e-6


@dataclass
class Instance:
    name: str
    vehicles: int
    capacity: int
    xy: np.ndarray  # (n, 2)
    demand: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    service: np.ndarray
    pairs: list[tuple[int | None, int]]  # (pickup task, delivery task); no pickup in Solomon VRPTW

    @property
    def dist(self) -> np.ndarray:
        d = self.xy[:, None, :] - self.xy[None, :, :]
        return np.sqrt((d ** 2).sum(axis=2))


def read_instance(path: Path) -> Instance:
    """A Li & Lim PDPTW file, or a Solomon VRPTW file (customers become delivery-only shipments)."""
    text = path.read_text()
    if "CUSTOMER" in text.upper():
        return _read_solomon(path, text)
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    k, q = int(lines[0][0]), int(lines[0][1])
    rows = np.array([[float(x) for x in ln[:9]] for ln in lines[1:]])
    if rows[0, 0] != 0:
        raise ValueError(f"{path}: task 0 (the depot) must come first")
    pairs = [(int(r[0]), int(r[8])) for r in rows if r[7] == 0 and r[8] > 0]
    return Instance(path.stem, k, q, rows[:, 1:3], rows[:, 3].astype(int), rows[:, 4], rows[:, 5],
                    rows[:, 6], pairs)


def _read_solomon(path: Path, text: str) -> Instance:
    numeric = [ln.split() for ln in text.splitlines()
               if ln.split() and all(_is_number(x) for x in ln.split())]
    k, q = int(float(numeric[0][0])), int(float(numeric[0][1]))
    rows = np.array([[float(x) for x in ln[:7]] for ln in numeric[1:] if len(ln) >= 7])
    if rows[0, 0] != 0:
        raise ValueError(f"{path}: customer 0 (the depot) must come first")
    pairs = [(None, int(r[0])) for r in rows[1:]]
    return Instance(path.stem, k, q, rows[:, 1:3], rows[:, 3].astype(int), rows[:, 4], rows[:, 5],
                    rows[:, 6], pairs)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dur(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    nanos = int(round((seconds - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return duration_pb2.Duration(seconds=int(whole), nanos=nanos)


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    d = _dur(seconds)
    return timestamp_pb2.Timestamp(seconds=d.seconds, nanos=d.nanos)


def to_request(inst: Instance) -> ro.OptimizeToursRequest:
    """The instance as the API would receive it: tags index a duration/distance matrix."""
    tags = [f"t{i}" for i in range(len(inst.xy))]
    dist = inst.dist
    rows = [ro.ShipmentModel.DurationDistanceMatrix.Row(
        durations=[_dur(x * TIME_SCALE) for x in dist[i]], meters=[x * 1000.0 for x in dist[i]])
        for i in range(len(tags))]

    def visit(i: int) -> ro.Shipment.VisitRequest:
        return ro.Shipment.VisitRequest(
            tags=[tags[i]], duration=_dur(inst.service[i] * TIME_SCALE),
            time_windows=[ro.TimeWindow(start_time=_ts(inst.ready[i] * TIME_SCALE),
                                        end_time=_ts(inst.due[i] * TIME_SCALE))])

    shipments = [ro.Shipment(label=f"{p}-{d}", pickups=[visit(p)], deliveries=[visit(d)],
                             load_demands={"load": ro.Shipment.Load(amount=int(inst.demand[p]))})
                 if p is not None else
                 ro.Shipment(label=str(d), deliveries=[visit(d)],
                             load_demands={"load": ro.Shipment.Load(amount=int(inst.demand[d]))})
                 for p, d in inst.pairs]
    depot_window = ro.TimeWindow(start_time=_ts(inst.ready[0] * TIME_SCALE), end_time=_ts(inst.due[0] * TIME_SCALE))
    vehicles = [ro.Vehicle(label=f"v{k}", start_tags=[tags[0]], end_tags=[tags[0]],
                           start_time_windows=[depot_window], end_time_windows=[depot_window],
                           load_limits={"load": ro.Vehicle.LoadLimit(max_load=inst.capacity)},
                           cost_per_kilometer=1.0, fixed_cost=FIXED_COST) for k in range(inst.vehicles)]
    model = ro.ShipmentModel(
        shipments=shipments, vehicles=vehicles, duration_distance_matrices=[
            ro.ShipmentModel.DurationDistanceMatrix(rows=rows)],
        duration_distance_matrix_src_tags=tags, duration_distance_matrix_dst_tags=tags,
        global_start_time=_ts(0), global_end_time=_ts(inst.due[0] * TIME_SCALE))
    return ro.OptimizeToursRequest(model=model, label=inst.name)


def check_routes(inst: Instance, routes: list[list[int]]) -> tuple[bool, str, float]:
    """Feasibility in double precision and total distance; routes are task sequences without depot."""
    dist = inst.dist
    where: dict[int, tuple[int, int]] = {}
    total = 0.0
    delivery_only = {d for p, d in inst.pairs if p is None}
    for r, seq in enumerate(routes):
        # Solomon customers are delivered from what the vehicle loaded at the depot.
        t, prev = inst.ready[0], 0
        load = sum(int(inst.demand[x]) for x in seq if x in delivery_only)
        if load > inst.capacity:
            return False, f"load {load} leaving the depot on route {r}", math.inf
        for pos, task in enumerate(seq):
            if task in where:
                return False, f"task {task} visited twice", math.inf
            where[task] = (r, pos)
            t = max(t + inst.service[prev] + dist[prev, task], inst.ready[task])
            if t > inst.due[task] + TOLERANCE:
                return False, f"task {task} late by {t - inst.due[task]:.6f}", math.inf
            load += -inst.demand[task] if task in delivery_only else inst.demand[task]
            if load > inst.capacity or load < 0:
                return False, f"load {load} at task {task}", math.inf
            total += dist[prev, task]
            prev = task
        if seq:
            t += inst.service[prev] + dist[prev, 0]
            total += dist[prev, 0]
            if t > inst.due[0] + TOLERANCE:
                return False, f"route {r} returns late", math.inf
    for p, d in inst.pairs:
        if d not in where or (p is not None and p not in where):
            return False, f"pair {p}-{d} not served", math.inf
        if p is not None and (where[p][0] != where[d][0] or where[p][1] > where[d][1]):
            return False, f"pair {p}-{d} not on one route in order", math.inf
    return True, "", total


def solve_with_local(inst: Instance, time_limit_s: float) -> list[list[int]]:
    from retailopt.routing.local_solver import solve_local

    request = to_request(inst)
    response = solve_local(request, time_limit_s=time_limit_s)
    routes = []
    for route in response.routes:
        seq = []
        for v in route.visits:
            p, d = inst.pairs[v.shipment_index]
            seq.append(p if v.is_pickup else d)
        if seq:
            routes.append(seq)
    return routes


def solve_with_ortools_default(inst: Instance, time_limit_s: float) -> list[list[int]]:
    """The textbook OR-Tools PDPTW model with default search parameters and a time limit."""
    from ortools.constraint_solver import pywrapcp

    n = len(inst.xy)
    scale = 1000 * TIME_SCALE
    dist = np.rint(inst.dist * scale).astype(np.int64)
    service = np.rint(inst.service * scale).astype(np.int64)
    manager = pywrapcp.RoutingIndexManager(n, inst.vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)
    dist_cb = routing.RegisterTransitMatrix(dist.tolist())
    time_cb = routing.RegisterTransitMatrix((dist + service[:, None]).tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)
    routing.SetFixedCostOfAllVehicles(int(FIXED_COST * scale))
    horizon = int(round(inst.due[0] * scale))
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for i in range(1, n):
        tdim.CumulVar(manager.NodeToIndex(i)).SetRange(int(round(inst.ready[i] * scale)),
                                                       int(round(inst.due[i] * scale)))
    # Solomon deliveries add up like pickups: the same capacity check on what leaves the depot.
    demand_cb = routing.RegisterUnaryTransitVector([abs(int(x)) if inst.pairs[0][0] is None else int(x)
                                                   for x in inst.demand])
    routing.AddDimensionWithVehicleCapacity(demand_cb, 0, [inst.capacity] * inst.vehicles, True, "load")
    solver = routing.solver()
    for p, d in inst.pairs:
        if p is None:
            continue
        pi, di = manager.NodeToIndex(p), manager.NodeToIndex(d)
        routing.AddPickupAndDelivery(pi, di)
        solver.Add(routing.VehicleVar(pi) == routing.VehicleVar(di))
        solver.Add(tdim.CumulVar(pi) <= tdim.CumulVar(di))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.time_limit.FromMilliseconds(int(time_limit_s * 1000))
    sol = routing.SolveWithParameters(params)
    if sol is None:
        return []
    routes = []
    for v in range(inst.vehicles):
        idx = sol.Value(routing.NextVar(routing.Start(v)))
        seq = []
        while not routing.IsEnd(idx):
            seq.append(manager.IndexToNode(idx))
            idx = sol.Value(routing.NextVar(idx))
        if seq:
            routes.append(seq)
    return routes


def solve_with_vroom(inst: Instance, time_limit_s: float) -> list[list[int]]:
    import vroom

    # VROOM works on 32-bit costs: times are scaled by 1000 only and rounded up, so a VROOM-feasible
    # schedule stays feasible in double precision.
    scale = 1000
    dur = np.ceil(inst.dist * scale).astype(np.int64)
    problem = vroom.Input()
    problem.set_durations_matrix("car", dur.tolist())
    problem.set_costs_matrix("car", np.rint(inst.dist * scale).astype(np.int64).tolist())
    tw = vroom.TimeWindow(int(inst.ready[0] * scale), int(inst.due[0] * scale))
    for k in range(inst.vehicles):
        problem.add_vehicle(vroom.Vehicle(k + 1, start=0, end=0, capacity=[inst.capacity], time_window=tw,
                                          costs=vroom.VehicleCosts(fixed=int(FIXED_COST * scale))))
    for p, d in inst.pairs:
        if p is None:
            problem.add_job(vroom.Job(id=d, location=d, default_service=int(round(inst.service[d] * scale)),
                                      delivery=vroom.Amount([int(inst.demand[d])]),
                                      time_windows=[vroom.TimeWindow(int(math.ceil(inst.ready[d] * scale)),
                                                                     int(math.floor(inst.due[d] * scale)))]))
            continue

        def step(i: int) -> vroom.ShipmentStep:
            return vroom.ShipmentStep(id=i, location=i, default_service=int(round(inst.service[i] * scale)),
                                      time_windows=[vroom.TimeWindow(int(math.ceil(inst.ready[i] * scale)),
                                                                     int(math.floor(inst.due[i] * scale)))])
        problem.add_shipment(step(p), step(d), amount=vroom.Amount([int(inst.demand[p])]))
    solution = problem.solve(exploration_level=5, nb_threads=1, timeout=timedelta(seconds=time_limit_s))
    frame = solution.routes
    routes = []
    for _, group in frame.groupby("vehicle_id", sort=True):
        seq = [int(i) for t, i in zip(group["type"], group["id"]) if t in ("pickup", "delivery", "job")]
        if seq:
            routes.append(seq)
    return routes


RUNNERS = {"local": solve_with_local, "ortools_default": solve_with_ortools_default, "vroom": solve_with_vroom}


@dataclass
class Result:
    instance: str
    solver: str
    vehicles: int
    distance: float
    feasible: bool
    problem: str
    seconds: float
    best_vehicles: int | None = None
    best_distance: float | None = None

    @property
    def gap_pct(self) -> float | None:
        if not self.feasible or not self.best_distance:
            return None
        return 100.0 * (self.distance - self.best_distance) / self.best_distance


def _run(task: tuple[str, str, float]) -> Result:
    path, solver, limit = task
    inst = read_instance(Path(path))
    t0 = time.monotonic()
    try:
        routes = RUNNERS[solver](inst, limit)
        ok, why, dist = check_routes(inst, routes)
    except Exception as exc:  # a peer's failure is a result, not the end of the benchmark
        routes, ok, why, dist = [], False, f"{type(exc).__name__}: {exc}", math.inf
    return Result(inst.name, solver, len(routes), dist, ok, why, time.monotonic() - t0)


def read_best_known(directory: Path) -> dict[str, tuple[int, float]]:
    path = directory / "best_known.csv"
    if not path.exists():
        return {}
    with path.open() as fh:
        return {row["instance"]: (int(row["vehicles"]), float(row["distance_4dp"])) for row in csv.DictReader(fh)}


def _summary(results: list[Result]) -> dict[str, dict]:
    out = {}
    for solver in sorted({r.solver for r in results}):
        mine = [r for r in results if r.solver == solver]
        gaps = [r.gap_pct for r in mine if r.gap_pct is not None]
        out[solver] = {
            "instances": len(mine),
            "feasible": sum(r.feasible for r in mine),
            "vehicles_equal_best": sum(r.feasible and r.vehicles == r.best_vehicles for r in mine),
            "vehicles_total": sum(r.vehicles for r in mine if r.feasible),
            "mean_gap_pct": float(np.mean(gaps)) if gaps else None,
            "mean_gap_pct_same_vehicles": float(np.mean(
                [r.gap_pct for r in mine if r.gap_pct is not None and r.vehicles == r.best_vehicles]
                or [np.nan])),
        }
    return out


def run_lilim(directory: Path, names: list[str] | None, solvers: list[str], limit: float,
              jobs: int) -> list[Result]:
    best = read_best_known(directory)
    files = sorted(directory.glob("*.txt"))
    if names:
        wanted = set(names)
        files = [f for f in files if f.stem in wanted]
        missing = wanted - {f.stem for f in files}
        if missing:
            raise SystemExit(f"unknown instance(s): {', '.join(sorted(missing))}")
    tasks = [(str(f), s, limit) for f in files for s in solvers]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_run, tasks))
    else:
        results = [_run(t) for t in tasks]
    for r in results:
        if r.instance in best:
            r.best_vehicles, r.best_distance = best[r.instance]
    return results


def _print_lilim(results: list[Result], summary: dict) -> None:
    print(f"{'instance':<9} {'solver':<16} {'veh':>4} {'best':>4} {'distance':>11} {'best':>10} {'gap%':>7} "
          f"{'sec':>6}  note")
    for r in results:
        gap = f"{r.gap_pct:7.2f}" if r.gap_pct is not None else "      -"
        dist = f"{r.distance:11.4f}" if r.feasible else "          -"
        print(f"{r.instance:<9} {r.solver:<16} {r.vehicles:>4} {r.best_vehicles or 0:>4} {dist} "
              f"{r.best_distance or 0:10.4f} {gap} {r.seconds:6.1f}  {r.problem}")
    print()
    for solver, s in summary.items():
        gap = f"{s['mean_gap_pct']:.2f}%" if s["mean_gap_pct"] is not None else "-"
        print(f"{solver:<16} feasible {s['feasible']}/{s['instances']}, vehicles = best on "
              f"{s['vehicles_equal_best']}, total vehicles {s['vehicles_total']}, mean distance gap {gap}")


def scale_request(shipments: int = 500, vehicles: int = 30, seed: int = 7) -> ro.OptimizeToursRequest:
    """A synthetic planning day: stores around Chicago, one DC, store hours, vans with shifts."""
    rng = np.random.default_rng(seed)
    n_sites = max(40, shipments // 4)
    lat = 41.85 + rng.normal(0, 0.12, n_sites)
    lng = -87.75 + rng.normal(0, 0.15, n_sites)
    day = 1_719_810_000  # 2024-07-01T05:00:00Z, midnight in Chicago

    def hours(a: float, b: float) -> ro.TimeWindow:
        return ro.TimeWindow(start_time=_ts(day + a * 3600), end_time=_ts(day + b * 3600))

    opens = rng.choice([5, 6, 7, 8], n_sites)
    ships = []
    for k in range(shipments):
        a, b = rng.choice(n_sites, 2, replace=False)
        if rng.random() < 0.3:
            a = 0  # from the distribution centre
        visit = duration_pb2.Duration(seconds=600)

        def vr(site: int) -> ro.Shipment.VisitRequest:
            return ro.Shipment.VisitRequest(
                arrival_location={"latitude": float(lat[site]), "longitude": float(lng[site])}, duration=visit,
                time_windows=[hours(float(opens[site]), float(opens[site]) + 9)])
        ships.append(ro.Shipment(label=f"s{k}", pickups=[vr(a)], deliveries=[vr(b)],
                                 load_demands={"units": ro.Shipment.Load(amount=int(rng.integers(5, 80)))},
                                 penalty_cost=float(rng.uniform(50, 800))))
    fleet = [ro.Vehicle(label=f"V{k:02d}", start_location={"latitude": float(lat[0]), "longitude": float(lng[0])},
                        end_location={"latitude": float(lat[0]), "longitude": float(lng[0])},
                        start_time_windows=[hours(5, 19)], end_time_windows=[hours(5, 19)],
                        load_limits={"units": ro.Vehicle.LoadLimit(max_load=int(rng.choice([600, 1000])))},
                        cost_per_kilometer=0.75, cost_per_hour=32.0, fixed_cost=100.0,
                        route_duration_limit=ro.Vehicle.DurationLimit(max_duration=duration_pb2.Duration(
                            seconds=10 * 3600)))
             for k in range(vehicles)]
    return ro.OptimizeToursRequest(
        model=ro.ShipmentModel(shipments=ships, vehicles=fleet, global_start_time=_ts(day),
                               global_end_time=_ts(day + 86400)),
        use_geodesic_distances=True, geodesic_meters_per_second=35 / 3.6, label="scale")


def run_scale(shipments: int, vehicles: int, limit: float) -> dict:
    from retailopt.routing.local_solver import solve_local

    request = scale_request(shipments, vehicles)
    t0 = time.monotonic()
    response = solve_local(request, time_limit_s=limit)
    seconds = time.monotonic() - t0
    m = response.metrics
    return {"shipments": shipments, "vehicles": vehicles, "time_limit_s": limit, "seconds": round(seconds, 2),
            "performed": m.aggregated_route_metrics.performed_shipment_count,
            "skipped": len(response.skipped_shipments), "used_vehicles": m.used_vehicle_count,
            "distance_km": round(m.aggregated_route_metrics.travel_distance_meters / 1000, 1),
            "total_cost": round(m.total_cost, 2), "feasible_plan": seconds <= limit + 5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt bench-routing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="Li & Lim instance directory")
    parser.add_argument("--instances", nargs="*", help="instance names (default: all in --dir)")
    parser.add_argument("--solvers", nargs="*", default=list(SOLVERS), choices=SOLVERS)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance and solver")
    parser.add_argument("--jobs", type=int, default=1, help="instances solved in parallel")
    parser.add_argument("--scale", action="store_true", help="500 shipments x 30 vehicles instead")
    parser.add_argument("--shipments", type=int, default=500)
    parser.add_argument("--vehicles", type=int, default=30)
    parser.add_argument("--output", type=Path, default=Path("bench-routing.json"), help="JSON of the figures")
    args = parser.parse_args(argv)
    if args.time_limit <= 0 or args.jobs < 1:
        parser.error("--time-limit must be > 0 and --jobs >= 1")
    if args.scale:
        figures = {"scale": run_scale(args.shipments, args.vehicles, args.time_limit)}
        for key, value in figures["scale"].items():
            print(f"{key:>14}: {value}")
    else:
        results = run_lilim(args.dir, args.instances, args.solvers, args.time_limit, args.jobs)
        summary = _summary(results)
        _print_lilim(results, summary)
        figures = {"time_limit_s": args.time_limit, "cpus": os.cpu_count(), "jobs": args.jobs,
                   "results": [asdict(r) | {"gap_pct": r.gap_pct} for r in results], "summary": summary}
    args.output.write_text(json.dumps(figures, indent=1, default=str))
    print(f"figures written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
