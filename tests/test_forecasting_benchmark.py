"""bench-forecast command: runs end to end on a tiny scale set and writes its JSON figures."""

from __future__ import annotations

import json

from retailopt.forecasting.benchmark import main


def test_scale_mode_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--suite", "scale", "--scale", "60", "--days", "120", "--horizon", "14", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["method"] == "local_engine" and rows[0]["n_series"] == 60
    assert rows[0]["series_per_s"] > 0 and rows[0]["peak_rss_mb"] > 0
    assert 0 < rows[0]["coverage_95"] <= 1 and rows[0]["rmsse"] > 0
    assert "local_engine" in capsys.readouterr().out
