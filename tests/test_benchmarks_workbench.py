"""`retailopt bench-workbench` end to end at a small size: the synthetic plan is shaped like the
planner's (every worklist position explained, lines and loads consistent), `retailopt serve`
answers every page it times, and the figures are written. Its timings are the benchmark's
business, not this test's."""

from __future__ import annotations

import json
import random

import duckdb

from retailopt.benchmarks import workbench as workbench_benchmark


def test_the_benchmark_builds_a_plan_serves_it_and_times_every_page(tmp_path):
    out = tmp_path / "figures.json"
    code = workbench_benchmark.main(["--stores", "12", "--products", "60", "--repeats", "2",
                                     "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    figures = json.loads(out.read_text())
    assert code == (0 if figures["meets_target"] else 1)
    assert set(figures["pages"]) == set(workbench_benchmark.page_paths(
        {"runs": ["a", "b"], "stores": ["S00000"], "categories": ["dairy"]}, random.Random(1),
        {}).keys())
    assert all(page["error_count"] == 0 and page["requests"] == 2 for page in figures["pages"].values())
    assert figures["rows"]["positions"] == 12 * 60 and figures["server_peak_rss_mb"] > 0
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    try:
        base, what_if = figures["runs"]
        reasons = dict(con.execute("SELECT reason_code, COUNT(*) FROM retailopt.plan_worklist WHERE run_id = ? "
                                   "GROUP BY ALL", [base]).fetchall())
        assert reasons and "UNEXPLAINED" not in reasons
        overview = con.execute("SELECT positions, order_lines, transfer_lines FROM retailopt.plan_overview "
                               "WHERE run_id = ?", [base]).fetchone()
        assert overview[0] == 12 * 60 and overview[1] == figures["rows"]["orders"]
        assert overview[2] == figures["rows"]["transfers"]
        orders = [con.execute("SELECT COUNT(*) FROM retailopt.replenishment_orders WHERE run_id = ?",
                              [r]).fetchone()[0] for r in (base, what_if)]
        assert 0 < orders[1] < orders[0]  # the what-if drops a few lines
    finally:
        con.close()
    # A second call reuses the warehouse it built.
    assert workbench_benchmark.main(["--stores", "12", "--products", "60", "--repeats", "1",
                                     "--data-dir", str(tmp_path / "data"), "--out", str(out)]) in (0, 1)
    assert json.loads(out.read_text())["build_timings_s"] == figures["build_timings_s"]
