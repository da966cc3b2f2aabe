"""`retailopt bench-run`: each step's wall time and the peak memory of the process tree while it ran."""

from __future__ import annotations

import json

from retailopt.benchmarks import run as benchmark


def test_per_step_splits_the_samples_at_each_step_start():
    starts = [("setup", 0.0), ("import", 1.0), ("forecast", 3.0)]
    samples = [(0.5, 100.0), (1.5, 900.0), (2.5, 300.0), (3.5, 1200.0), (4.5, 400.0)]
    rows = benchmark.per_step(starts, 5.0, samples)
    assert rows == [{"step": "setup", "wall_s": 1.0, "peak_mb": 100.0},
                    {"step": "import", "wall_s": 2.0, "peak_mb": 900.0},
                    {"step": "forecast", "wall_s": 2.0, "peak_mb": 1200.0}]
    assert benchmark.per_step([("plan", 10.0)], 10.05, samples)[0]["peak_mb"] is None  # too short to sample
    with_cpu = [(t, mb, 2.0 * t) for t, mb in samples]  # two busy cores
    assert [r["cpu_s"] for r in benchmark.per_step(starts, 5.0, with_cpu)] == [1.0, 4.0, 4.0]


def test_tree_memory_counts_this_process():
    import os

    assert benchmark._tree_rss_mb(os.getpid()) > 10
    before = benchmark._tree(os.getpid())[1]
    sum(i * i for i in range(3_000_000))
    assert benchmark._tree(os.getpid())[1] > before


def test_bench_run_reports_every_step_of_a_small_chain(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = benchmark.main(["--stores", "4", "--products", "12", "--days", "120", "--work", str(tmp_path / "w"),
                           "--out", str(out), "--set", "routing_time_limit_s=2"])
    assert code == 0  # no target for this size
    figures = json.loads(out.read_text())
    assert [row["step"] for row in figures["steps"]] == ["setup", "import", "forecast", "plan", "publish"]
    assert all(row["wall_s"] >= 0 and row["cpu_s"] >= 0 for row in figures["steps"])
    assert figures["cpu_s"] > 0
    assert sum(row["wall_s"] for row in figures["steps"]) <= figures["wall_s"]
    assert figures["peak_rss_mb"] >= max(row["peak_mb"] or 0 for row in figures["steps"]) > 50
    # The first plan of a chain routes only what arrives that day (DC orders arrive after their lead
    # time): the problems are reported whether or not they hold loads.
    assert figures["routing_problems"] and {"name", "shipments", "vehicles"} <= set(figures["routing_problems"][0])
    assert figures["kpis"]["shipments"] == 0 and figures["kpis"]["units_arriving_later"] > 0
    # So the first plan is released and the day its centre orders arrive is planned as well.
    day = figures["delivery_day"]
    assert day["run_date"] == "2026-11-24"  # the run date 2026-11-22 plus the centre's two days
    assert [row["step"] for row in day["steps"]] == ["release", "delivery setup", "delivery forecast",
                                                     "delivery plan", "delivery publish"]
    kpis = day["kpis"]
    assert kpis["units_carried_in"] > 0 and kpis["shipments"] > 0
    assert kpis["units_routed"] + kpis["units_unrouted"] >= kpis["units_carried_in"]
    assert sum(p["routed"] for p in day["routing_problems"]) == kpis["shipments"] - kpis["shipments_unrouted"]
    assert figures["whole_wall_s"] >= figures["wall_s"] + day["wall_s"] - 1.0
    printed = capsys.readouterr().out
    assert "forecast" in printed and "peak MB" in printed and "routing problem" in printed
    assert "delivery day 2026-11-24" in printed
