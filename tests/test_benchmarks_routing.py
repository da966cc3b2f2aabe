"""Li & Lim conversion and the solution checker the benchmark scores with (small generated instance)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from retailopt.benchmarks import routing as bench


def _write_instance(path, pairs: int = 6, seed: int = 3) -> None:
    """A Li & Lim file (tab separated, CRLF) with `pairs` pickup-delivery pairs and wide windows."""
    rng = np.random.default_rng(seed)
    n = 2 * pairs
    xy = rng.uniform(0, 50, (n + 1, 2))
    lines = ["3\t40\t1"]
    lines.append(f"0\t{xy[0, 0]:.0f}\t{xy[0, 1]:.0f}\t0\t0\t1000\t0\t0\t0")
    for k in range(pairs):
        p, d = 2 * k + 1, 2 * k + 2
        q = int(rng.integers(5, 20))
        lines.append(f"{p}\t{xy[p, 0]:.0f}\t{xy[p, 1]:.0f}\t{q}\t0\t400\t10\t0\t{d}")
        lines.append(f"{d}\t{xy[d, 0]:.0f}\t{xy[d, 1]:.0f}\t{-q}\t0\t800\t10\t{p}\t0")
    path.write_text("\r\n".join(lines) + "\r\n")


def test_conversion_keeps_double_precision_and_scales_time(tmp_path):
    f = tmp_path / "tiny.txt"
    _write_instance(f)
    inst = bench.read_instance(f)
    assert inst.vehicles == 3 and inst.capacity == 40 and len(inst.pairs) == 6
    req = bench.to_request(inst)
    m = req.model
    assert len(m.shipments) == 6 and len(m.vehicles) == 3
    row = m.duration_distance_matrices[0].rows[1]
    d = float(np.hypot(*(inst.xy[1] - inst.xy[2])))
    assert row.meters[2] == pytest.approx(d * 1000.0, rel=1e-12)
    assert row.durations[2].total_seconds() == pytest.approx(d * bench.TIME_SCALE, abs=1e-6)
    assert m.shipments[0].pickups[0].time_windows[0].end_time.timestamp() == 400 * bench.TIME_SCALE


def test_local_solver_result_passes_the_checker(tmp_path):
    f = tmp_path / "tiny.txt"
    _write_instance(f)
    inst = bench.read_instance(f)
    routes = bench.solve_with_local(inst, 1.0)
    ok, why, dist = bench.check_routes(inst, routes)
    assert ok, why
    assert math.isfinite(dist) and 1 <= len(routes) <= 3


def test_checker_rejects_broken_solutions(tmp_path):
    f = tmp_path / "tiny.txt"
    _write_instance(f)
    inst = bench.read_instance(f)
    p, d = inst.pairs[0]
    assert bench.check_routes(inst, [[d, p]])[1].startswith("load")  # delivery before pickup
    assert "not served" in bench.check_routes(inst, [[p, d]])[1]
    everything = [t for pair in inst.pairs for t in pair]
    ok, why, _ = bench.check_routes(inst, [everything])
    assert not ok and ("late" in why or "load" in why)  # one route: windows or capacity break


def test_main_writes_figures(tmp_path, capsys):
    _write_instance(tmp_path / "tiny.txt")
    (tmp_path / "best_known.csv").write_text("instance,vehicles,distance_4dp\ntiny,2,100.0\n")
    out = tmp_path / "figures.json"
    assert bench.main(["--dir", str(tmp_path), "--solvers", "local", "--time-limit", "1",
                       "--output", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["results"][0]["instance"] == "tiny" and figures["results"][0]["feasible"]
    assert "local" in figures["summary"]
    assert "figures written" in capsys.readouterr().out


@pytest.mark.parametrize("solver", ["ortools_default", "vroom"])
def test_peer_solvers_pass_the_checker(tmp_path, solver):
    f = tmp_path / "tiny.txt"
    _write_instance(f)
    inst = bench.read_instance(f)
    ok, why, _ = bench.check_routes(inst, bench.RUNNERS[solver](inst, 1.0))
    assert ok, why


def _write_solomon(path, customers: int = 10, seed: int = 4) -> None:
    rng = np.random.default_rng(seed)
    lines = ["tiny", "", "VEHICLE", "NUMBER     CAPACITY", "  4         60", "", "CUSTOMER",
             "CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME", "",
             "    0      35         35          0          0        500          0"]
    for c in range(1, customers + 1):
        x, y = rng.integers(0, 70, 2)
        lines.append(f"  {c:3d}  {x:6d}  {y:6d}  {int(rng.integers(5, 25)):6d}  0  {int(rng.integers(150, 400)):6d}  10")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("solver", ["local", "ortools_default", "vroom"])
def test_solomon_instances_become_delivery_only_shipments(tmp_path, solver):
    f = tmp_path / "c_tiny.txt"
    _write_solomon(f)
    inst = bench.read_instance(f)
    assert inst.vehicles == 4 and inst.capacity == 60 and inst.pairs[0] == (None, 1) and len(inst.pairs) == 10
    req = bench.to_request(inst)
    assert not req.model.shipments[0].pickups and req.model.shipments[0].deliveries
    ok, why, _ = bench.check_routes(inst, bench.RUNNERS[solver](inst, 1.0))
    assert ok, why
    everyone = [c for _, c in inst.pairs]
    assert sum(inst.demand[everyone]) > inst.capacity
    assert bench.check_routes(inst, [everyone])[1].startswith("load")  # one van cannot load it all
