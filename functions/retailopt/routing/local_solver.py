"""Local solver: the same `OptimizeToursRequest` in, the same `OptimizeToursResponse` out, on OR-Tools.

Search: a first solution by parallel cheapest insertion, improved by iterated local search (ruin
and recreate with slack-induced string removals, simulated-annealing acceptance). When vehicles
carry a fixed cost the time is split in three: the whole fleet with its fixed costs (which already
empties routes), then route elimination (drop the smallest route and re-insert its shipments into
the remaining fleet, kept only if the true cost falls), then distance and time with the fleet found.
Settling the fleet first keeps a large fixed cost from trapping the distance search.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

import numpy as np
from google.maps import routeoptimization_v1 as ro
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.constraint_solver import routing_ils_pb2 as ils_pb

from retailopt.routing.model import COST_SCALE, IMPOSSIBLE, MM, MS, Problem, RequestError, load_problem
from retailopt.routing.response import build_response, route_cost, schedule

__all__ = ["solve_local", "RequestError"]

_INT_MAX = 2**62
# Shares of the time limit when vehicles have fixed costs: ruin and recreate over the whole fleet
# first, then route elimination for this share of what is left, then distance with the fleet found.
FIRST_SHARE = 0.65
ELIMINATION_SHARE = 0.7
RESPONSE_SHARE = 0.03
# Above this many visits the first solution considers only the nearest candidates for each insertion.
LARGE_VISITS = 300


@dataclass
class _Solution:
    routes: dict[int, list[int]]  # vehicle -> problem node ids (visits only)
    cost: float
    skipped_mandatory: int


def solve_local(request: ro.OptimizeToursRequest, *, time_limit_s: float,
                log: bool = False) -> ro.OptimizeToursResponse:
    """Solve `request` within `time_limit_s` seconds of wall time.

    Raises RequestError (naming the field) for a malformed request or a field the local solver does
    not implement; shipments that cannot be served are returned as skipped with reasons.
    """
    if time_limit_s <= 0:
        raise ValueError("time_limit_s must be > 0")
    if not isinstance(request, ro.OptimizeToursRequest):
        raise RequestError("request", f"expected OptimizeToursRequest, got {type(request).__name__}")
    # The limit covers reading the request and writing the response too.
    t_end = _time.monotonic() + time_limit_s * (1 - RESPONSE_SHARE)
    problem = load_problem(request)
    pb = ro.OptimizeToursRequest.pb(request)
    if pb.solving_mode == ro.OptimizeToursRequest.SolvingMode.VALIDATE_ONLY:
        return build_response(problem, None)
    fast = pb.search_mode == ro.OptimizeToursRequest.SearchMode.RETURN_FAST
    solution = _search(problem, t_end, fast=fast, log=log)
    return build_response(problem, solution.routes)


def _evaluate(problem: Problem, routes: dict[int, list[int]], active: list[int]) -> _Solution:
    performed = {problem.nodes[n].shipment for seq in routes.values() for n in seq}
    cost = 0.0
    for v, seq in routes.items():
        sched = schedule(problem, v, seq)
        if sched is None:  # should not happen: OR-Tools checked the same constraints
            return _Solution(routes, float("inf"), len(active))
        cost += sum(route_cost(problem, v, seq, sched).values())
    missed = 0
    for s in active:
        if s not in performed:
            if problem.penalties[s] is None:
                missed += 1
            else:
                cost += problem.penalties[s]
    return _Solution(routes, cost, missed)


def _better(a: _Solution, b: _Solution) -> bool:
    return (a.skipped_mandatory, a.cost) < (b.skipped_mandatory, b.cost - 1e-9)


def _search(problem: Problem, t_end: float, *, fast: bool, log: bool) -> _Solution:
    time_limit_s = max(0.05, t_end - _time.monotonic())
    active = [s for s in range(len(problem.shipment_nodes)) if s not in problem.skip_reasons]
    # A vehicle whose shift lies outside the global time frame cannot drive at all.
    vehicles = [v for v in range(problem.vehicle_count)
                if all(w[:1] != [IMPOSSIBLE[0]] for w in problem.vehicle_windows[v])]
    if not active or not vehicles:
        return _evaluate(problem, {}, active)

    def remaining() -> float:
        return t_end - _time.monotonic()

    has_fixed = any(c > 0 for c in problem.fixed_cost) and problem.vehicle_count > 1 and not fast
    # First solution: cheapest insertion and a descent to the first local optimum.
    first = _Model(problem, vehicles, active, use_fixed=True)
    # Injected routes (a previous solution) are where the first search starts, when feasible.
    best = first.solve(problem.injected or None, max(0.05, remaining() * (FIRST_SHARE if has_fixed else 1.0)),
                       guided=not fast)
    best = _evaluate(problem, best.routes if best is not None else {}, active)
    if log:
        print(f"{remaining():.1f}s left; first: vehicles={sum(1 for r in best.routes.values() if r)} cost={best.cost:.3f} "
              f"missed={best.skipped_mandatory}")
    if fast or not has_fixed:
        return best

    # Route elimination while there is time; the distance search keeps the last 40 %.
    budget_end = _time.monotonic() + remaining() * ELIMINATION_SHARE
    attempt_s = max(1.0, time_limit_s * 0.08)
    failures: set[frozenset[int]] = set()
    while _time.monotonic() + 0.2 < budget_end:
        used = sorted((v for v, r in best.routes.items() if r), key=lambda v: len(best.routes[v]))
        if len(used) <= 1:
            break
        candidates = [d for d in used[:3] if frozenset(used) - {d} not in failures]
        improved = False
        for drop in candidates:
            fleet = sorted(set(used) - {drop})
            model = _Model(problem, fleet, active, use_fixed=False)
            init = {v: best.routes[v] for v in fleet}
            for _ in range(3):
                left = budget_end - _time.monotonic()
                if left < 0.2:
                    break
                cand = model.solve(init, min(attempt_s, left), guided=True, stop_when_all_performed=True)
                if cand is None:
                    break
                cand = _evaluate(problem, cand.routes, active)
                if log:
                    print(f"{remaining():.1f}s left; attempt drop={drop} vehicles={len(fleet)} -> cost={cand.cost:.3f} "
                          f"missed={cand.skipped_mandatory}")
                if _better(cand, best):
                    best, improved = cand, True
                    break
                if not 0 < cand.skipped_mandatory <= 3:
                    break
                init = cand.routes  # close: keep searching from the nearer solution
            if improved:
                break
            failures.add(frozenset(fleet))
            if _time.monotonic() + 0.2 >= budget_end:
                break
        if not improved:
            break

    # Distance and time with the fleet settled.
    fleet = sorted(v for v, r in best.routes.items() if r) or vehicles
    if remaining() > 0.1:
        model = _Model(problem, fleet, active, use_fixed=False)
        cand = model.solve({v: best.routes.get(v, []) for v in fleet}, remaining(), guided=True)
        if cand is not None:
            cand = _evaluate(problem, cand.routes, active)
            if _better(cand, best):
                best = cand
    # The search can settle before the limit; a fresh start on the whole fleet (a different
    # annealing schedule for the shorter time) uses what is left.
    for _ in range(3):
        if remaining() <= 1.0:
            break
        cand = _Model(problem, vehicles, active, use_fixed=True).solve(None, remaining(), guided=True)
        if cand is None:
            break
        cand = _evaluate(problem, cand.routes, active)
        if log:
            print(f"{remaining():.1f}s left; restart: cost={cand.cost:.3f} missed={cand.skipped_mandatory}")
        if _better(cand, best):
            best = cand
    if log:
        print(f"{remaining():.1f}s left; final: vehicles={sum(1 for r in best.routes.values() if r)} cost={best.cost:.3f}")
    return best


class _Model:
    """One OR-Tools routing model over a subset of the vehicles and the serviceable shipments."""

    def __init__(self, problem: Problem, vehicles: list[int], active: list[int], *, use_fixed: bool):
        self.problem = problem
        self.vehicles = vehicles
        self.active = active
        nodes: list[int] = []
        for s in active:
            nodes.extend(n for n in problem.shipment_nodes[s] if n is not None)
        self.visit_nodes = nodes
        starts = [problem.start_nodes[v] for v in vehicles]
        ends = [problem.end_nodes[v] for v in vehicles]
        # OR-Tools node k -> problem node
        self.nodes = nodes + starts + ends
        self.local = {n: k for k, n in enumerate(self.nodes)}
        n_nodes = len(self.nodes)
        self.manager = pywrapcp.RoutingIndexManager(
            n_nodes, len(vehicles), list(range(len(nodes), len(nodes) + len(vehicles))),
            list(range(len(nodes) + len(vehicles), n_nodes)))
        self.routing = pywrapcp.RoutingModel(self.manager)
        self._build(use_fixed)

    def _build(self, use_fixed: bool) -> None:
        p, routing, manager = self.problem, self.routing, self.manager
        ids = self.nodes
        solver = routing.solver()
        service = [p.nodes[n].service_ms for n in ids]
        visit_cost = [p.nodes[n].cost for n in ids]

        time_cb: dict[int, int] = {}
        dist_cb: dict[int, int] = {}
        cost_cb: dict[tuple, int] = {}
        max_arc = 0
        # The model's rows and columns of each travel group's matrices, taken once per group.
        sliced: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k, v in enumerate(self.vehicles):
            g = p.travel_group[v]
            if g not in sliced:
                sliced[g] = (p.travel_ms[g][np.ix_(ids, ids)], p.dist_mm[g][np.ix_(ids, ids)])
            tm, dm = sliced[g]
            if g not in time_cb:
                time_cb[g] = routing.RegisterTransitMatrix((tm + [[s] for s in service]).tolist())
                dist_cb[g] = routing.RegisterTransitMatrix(dm.tolist())
            # The cost per hour of the route is charged on travel and service time in the arc cost,
            # not on the span: a span cost makes OR-Tools schedule every candidate route with a
            # linear program, which is far too slow at hundreds of visits. Waiting is left out of
            # the search and counted in the reported cost.
            key = (g, p.cost_per_km[v], p.cost_per_traveled_hour[v], p.cost_per_hour[v])
            if key not in cost_cb:
                per_ms = COST_SCALE / (3600 * MS)
                arc = (dm * (p.cost_per_km[v] * COST_SCALE / (1000 * MM))
                       + tm * ((p.cost_per_traveled_hour[v] + p.cost_per_hour[v]) * per_ms)
                       + [[c * COST_SCALE + s * p.cost_per_hour[v] * per_ms]
                          for c, s in zip(visit_cost, service)])
                arc = arc.round().astype("int64")
                max_arc = max(max_arc, int(arc.max(initial=0)))
                cost_cb[key] = routing.RegisterTransitMatrix(arc.tolist())
            routing.SetArcCostEvaluatorOfVehicle(cost_cb[key], k)
            if use_fixed and p.fixed_cost[v] > 0:
                routing.SetFixedCostOfVehicle(int(round(p.fixed_cost[v] * COST_SCALE)), k)
            if p.used_if_empty[v]:
                routing.SetVehicleUsedWhenEmpty(True, k)

        horizon = p.horizon_ms
        routing.AddDimensionWithVehicleTransits(
            [time_cb[p.travel_group[v]] for v in self.vehicles], horizon, horizon, False, "time")
        tdim = routing.GetDimensionOrDie("time")
        self.tdim = tdim
        for k, n in enumerate(self.visit_nodes):
            _set_windows(tdim.CumulVar(manager.NodeToIndex(k)), p.nodes[n].windows, horizon)
        for k, v in enumerate(self.vehicles):
            starts, ends = p.vehicle_windows[v]
            _set_windows(tdim.CumulVar(routing.Start(k)), starts, horizon)
            _set_windows(tdim.CumulVar(routing.End(k)), ends, horizon)
            if p.max_duration_ms[v] is not None:
                tdim.SetSpanUpperBoundForVehicle(p.max_duration_ms[v], k)
            routing.AddVariableMaximizedByFinalizer(tdim.CumulVar(routing.Start(k)))
            routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(routing.End(k)))

        if any(p.max_distance_mm[v] is not None for v in self.vehicles):
            caps = [p.max_distance_mm[v] if p.max_distance_mm[v] is not None else _INT_MAX
                    for v in self.vehicles]
            routing.AddDimensionWithVehicleTransitAndCapacity(
                [dist_cb[p.travel_group[v]] for v in self.vehicles], 0, caps, True, "distance")

        self._loads(solver)

        # Penalties: optional shipments at their value; mandatory ones at a price no route reaches,
        # so the search serves them whenever it can but never fails on them.
        big = 10 * (4 * max_arc + int(max(p.fixed_cost, default=0) * COST_SCALE)) + COST_SCALE
        self.big = big
        for s in self.active:
            pick, drop = p.shipment_nodes[s]
            idx = [manager.NodeToIndex(self.local[n]) for n in (pick, drop) if n is not None]
            pen = big if p.penalties[s] is None else int(round(p.penalties[s] * COST_SCALE))
            pen = min(pen, _INT_MAX // (4 * len(self.active) + 4))
            if len(idx) == 2:
                routing.AddPickupAndDelivery(idx[0], idx[1])
                solver.Add(routing.VehicleVar(idx[0]) == routing.VehicleVar(idx[1]))
                solver.Add(routing.ActiveVar(idx[0]) == routing.ActiveVar(idx[1]))
                solver.Add(tdim.CumulVar(idx[0]) <= tdim.CumulVar(idx[1]))
                routing.AddDisjunction([idx[0]], pen // 2)
                routing.AddDisjunction([idx[1]], pen - pen // 2)
            else:
                routing.AddDisjunction(idx, pen)
            if p.allowed[s] is not None:
                pos = {v: k for k, v in enumerate(self.vehicles)}
                allowed = [pos[v] for v in p.allowed[s] if v in pos]
                for i in idx:
                    # -1 keeps "unperformed" possible; an empty list must not mean "any vehicle".
                    routing.VehicleVar(i).SetValues([-1] + allowed)

    def _loads(self, solver) -> None:
        p, routing, manager = self.problem, self.routing, self.manager
        for t in p.load_types:
            demand = [p.nodes[n].demand.get(t, 0) for n in self.nodes]
            if not any(demand):
                continue
            total = sum(abs(d) for d in demand)
            caps_all = p.capacities.get(t, [None] * p.vehicle_count)
            caps = [caps_all[v] if caps_all[v] is not None else total for v in self.vehicles]
            cb = routing.RegisterUnaryTransitVector(demand)
            delivery_only = [self.local[d] for s in self.active
                             for pk, d in [p.shipment_nodes[s]] if pk is None and d is not None
                             and p.nodes[d].demand.get(t, 0)]
            # Delivery-only shipments are on board from the start: the start load is free and the end
            # load is pinned to what pickup-only visits add, so the start load is exactly what is carried.
            routing.AddDimensionWithVehicleCapacity(cb, 0, caps, not delivery_only, f"load:{t}")
            if not delivery_only:
                continue
            dim = routing.GetDimensionOrDie(f"load:{t}")
            pickup_only = [max(0, d) if p.nodes[n].shipment >= 0 and p.shipment_nodes[
                p.nodes[n].shipment][1] is None else 0 for n, d in zip(self.nodes, demand)]
            if any(pickup_only):
                aux_cb = routing.RegisterUnaryTransitVector(pickup_only)
                routing.AddDimensionWithVehicleCapacity(aux_cb, 0, caps, True, f"pickup_only:{t}")
                aux = routing.GetDimensionOrDie(f"pickup_only:{t}")
                for k in range(len(self.vehicles)):
                    solver.Add(dim.CumulVar(routing.End(k)) == aux.CumulVar(routing.End(k)))
            else:
                for k in range(len(self.vehicles)):
                    dim.CumulVar(routing.End(k)).SetValue(0)

    def solve(self, initial: dict[int, list[int]] | None, time_s: float, *, guided: bool,
              stop_when_all_performed: bool = False) -> _Solution | None:
        """Search from `initial` routes (or from cheapest insertion) for `time_s` seconds.

        `guided`: iterated local search (SISR ruin and recreate, simulated-annealing acceptance)
        instead of stopping at the first local optimum.
        """
        routing, manager = self.routing, self.manager
        params = pywrapcp.DefaultRoutingSearchParameters()
        params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
        n_visits = len(self.visit_nodes)
        if n_visits > LARGE_VISITS:
            insertion = params.global_cheapest_insertion_first_solution_parameters
            insertion.neighbors_ratio = max(0.05, 60 / n_visits)
            insertion.min_neighbors = 20
        if guided:
            _ruin_and_recreate(params)
        params.time_limit.FromMilliseconds(max(50, int(time_s * 1000)))
        params.log_search = False
        if stop_when_all_performed and not hasattr(self, "_monitor_cb"):
            self._add_stop_monitor()
        assignment = None
        if initial:
            pos = {v: k for k, v in enumerate(self.vehicles)}
            routes = [[] for _ in self.vehicles]
            for v, seq in initial.items():
                if v in pos:
                    routes[pos[v]] = [manager.NodeToIndex(self.local[n]) for n in seq if n in self.local]
            start = routing.ReadAssignmentFromRoutes(routes, True)
            if start is not None:
                assignment = routing.SolveFromAssignmentWithParameters(start, params)
        if assignment is None:
            assignment = (routing.SolveWithIteratedLocalSearch(params) if guided
                          else routing.SolveWithParameters(params))
        if assignment is None:
            return None
        routes: dict[int, list[int]] = {}
        for k, v in enumerate(self.vehicles):
            index = assignment.Value(routing.NextVar(routing.Start(k)))
            seq = []
            while not routing.IsEnd(index):
                seq.append(self.nodes[manager.IndexToNode(index)])
                index = assignment.Value(routing.NextVar(index))
            routes[v] = seq
        return _Solution(routes, 0.0, 0)

    def _add_stop_monitor(self) -> None:
        """Stop an elimination attempt as soon as every shipment is served."""
        routing = self.routing
        # Once every node is performed the attempt has done its job; further search is spent better
        # on the next elimination or the final distance phase.
        active_vars = [routing.ActiveVar(self.manager.NodeToIndex(k)) for k in range(len(self.visit_nodes))]

        def check() -> None:
            if all(var.Value() for var in active_vars):
                routing.solver().FinishCurrentSearch()

        self._monitor_cb = check  # keep a reference alive for the solver's lifetime
        routing.AddAtSolutionCallback(check)


def _ruin_and_recreate(params) -> None:
    """Iterated local search with slack-induced string removals (SISR) and cheapest reinsertion.

    Guided local search scans whole pickup-and-delivery neighbourhoods per move, which is slow on
    long routes; ruin and recreate makes many cheap large moves and escapes local optima that
    depend on the fleet size.
    """
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT
    params.use_iterated_local_search = True
    ils = params.iterated_local_search_parameters
    ils.perturbation_strategy = ils_pb.PerturbationStrategy.RUIN_AND_RECREATE
    rr = ils.ruin_recreate_parameters
    del rr.ruin_strategies[:]
    sisr = rr.ruin_strategies.add().sisr
    sisr.max_removed_sequence_size = 10
    sisr.avg_num_removed_visits = 10
    sisr.bypass_factor = 0.01
    rr.ruin_composition_strategy = ils_pb.RuinCompositionStrategy.RUN_ONE_RANDOMLY
    ils.improve_perturbed_solution = False
    sa = ils.reference_solution_acceptance_strategy.simulated_annealing
    sa.cooling_schedule_strategy = ils_pb.CoolingScheduleStrategy.EXPONENTIAL
    sa.automatic_temperatures = True
    ils.best_solution_acceptance_strategy.greedy_descent.SetInParent()


def _set_windows(var, windows: list[tuple[int, int]], horizon: int) -> None:
    if not windows:
        return
    if windows[0][0] < 0:  # IMPOSSIBLE: nothing can be there
        var.SetRange(0, 0)
        var.RemoveValue(0)
        return
    var.SetRange(windows[0][0], windows[-1][1])
    for (_, hi), (lo, _) in zip(windows, windows[1:]):
        if lo > hi + 1:
            var.RemoveInterval(hi + 1, lo - 1)

