"""bench-forecast command: runs end to end on a tiny scale set and writes its JSON figures."""

from __future__ import annotations

import json

import numpy as np

from retailopt.benchmarks.forecasting import main


def test_scale_mode_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--suite", "scale", "--scale", "60", "--days", "120", "--horizon", "14", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["method"] == "local_engine" and rows[0]["n_series"] == 60
    assert rows[0]["series_per_s"] > 0 and rows[0]["peak_rss_mb"] > 0
    assert 0 < rows[0]["coverage_95"] <= 1 and rows[0]["rmsse"] > 0
    assert "local_engine" in capsys.readouterr().out


def test_weekly_suite_scores_the_engine_and_a_peer_on_the_real_series(tmp_path):
    import pytest

    from retailopt.benchmarks.forecasting import WEEKLY_MONTHLY_DIR

    if not (WEEKLY_MONTHLY_DIR / "m4_weekly.csv").exists():
        pytest.skip("the shared weekly/monthly benchmark series are not on this machine")
    out = tmp_path / "bench.json"
    assert main(["--suite", "weekly", "--baselines", "SeasonalNaive", "--out", str(out)]) == 0
    rows = {(r["suite"], r["method"]): r for r in json.loads(out.read_text())["rows"]}
    engine, peer = rows[("weekly", "local_engine")], rows[("weekly", "SeasonalNaive")]
    assert engine["n_series"] == peer["n_series"] == 13
    for key in ("rmsse", "mase", "wape", "bias", "coverage_80", "coverage_95"):
        assert np.isfinite(engine[key]), key
    assert 0.6 < engine["coverage_80"] < 1 and 0.8 < engine["coverage_95"] <= 1
    assert engine["rmsse"] < peer["rmsse"]
    assert rows[("weekly:bike_sales_weekly", "local_engine")]["n_series"] == 9


def test_periodic_files_are_read_right_aligned(tmp_path):
    import pandas as pd

    from retailopt.benchmarks.forecasting import _load_periodic

    path = tmp_path / "x.csv"
    pd.DataFrame({"unique_id": ["a"] * 5 + ["b"] * 3,
                  "ds": list(pd.date_range("2024-01-01", periods=5, freq="MS")) + list(pd.date_range("2024-03-01", periods=3, freq="MS")),
                  "y": [1, 2, 3, 4, 5, 7, 8, 9]}).to_csv(path, index=False)
    ids, dates, y, start = _load_periodic(path, 2)
    assert ids == ["a", "b"] and list(start) == [0, 2]
    assert y.tolist() == [[1, 2, 3, 4, 5], [0, 0, 7, 8, 9]]
    assert dates[1][0] == pd.Timestamp("2024-03-01")
    # An earlier window: each series' last period dropped before holding out.
    ids, dates, y, start = _load_periodic(path, 1, shift=1)
    assert y.tolist() == [[1, 2, 3, 4], [0, 0, 7, 8]] and list(start) == [0, 2]
    assert dates[0][-1] == pd.Timestamp("2024-04-01")


def test_chain_origins_row_gives_bias_by_trailing_sales_and_by_forecast(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--suite", "chain", "--baselines", "--days", "90", "--horizon", "7", "--origins", "2",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    single = rows[0]
    multi = next(r for r in rows if r["method"] == "local_engine, 2 origins")
    assert multi["n_series"] == 2 * single["n_series"] and multi["rmsse"] > 0
    for row in (single, multi):
        assert list(row["bias_by_sales_level"]) == ["<=0.3", "0.3-1", "1-3", ">3"]
    # Grouped by the forecast the same forecasts fall into other groups than by trailing sales.
    assert multi["bias_by_forecast_level"] != multi["bias_by_sales_level"]
    printed = capsys.readouterr().out
    assert "trailing 28-day sales" in printed and "the forecast itself" in printed
