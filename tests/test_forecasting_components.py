"""The local engine's decomposition: forecast_components rows that add up, written by the
forecast step next to the forecasts."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from retailopt import pipeline
from retailopt.config import load_settings
from retailopt.forecasting import forecast
from retailopt.forecasting.components import COMPONENT_HISTORY_DAYS
from retailopt.forecasting.synthetic import matrix_to_history, synthetic_matrix
from retailopt.sample import generate_sample_chain
from retailopt.warehouse import open_warehouse

SCHEMA = Path(__file__).resolve().parents[1] / "sql" / "schema"


def _columns(table: str) -> list[str]:
    text = (SCHEMA / f"{table}.sql").read_text()
    body = text[text.index("(") + 1: text.index("\n)")]
    return [m.group(1) for m in re.finditer(r"^\s+([a-z_0-9]+)\s+[A-Z]", body, re.M)]


def test_components_add_up_to_the_forecast_and_the_history():
    keys, days, units, promo = synthetic_matrix(80, 760, date(2024, 12, 31), seed=4, n_stores=2)
    units[:5, -40:-30] = 0  # a stock-out: a dip the adjusted history fills in
    units[5, -20] = 500  # a spike
    res = forecast(matrix_to_history(keys, days, units, promo), keys, forecast_start=date(2025, 1, 1),
                   horizon=10, window_days=keys.assign(window_days=7), component_days=45)
    c = res.components
    assert list(c.columns) == [x for x in _columns("forecast_components") if x != "run_id"]
    fc = c[c.time_series_type == "forecast"]
    hist = c[c.time_series_type == "history"]
    assert len(fc) == 80 * 10 and len(hist) == 80 * 45
    parts = fc[["trend", "seasonal_weekly", "seasonal_yearly", "holiday_effect"]].sum(axis=1)
    assert np.allclose(parts, fc.forecast_value)
    assert np.allclose(fc.forecast_value.to_numpy(), res.daily.forecast_mean.to_numpy())
    total = hist[["trend", "seasonal_weekly", "seasonal_yearly", "holiday_effect", "spikes_and_dips",
                  "residual"]].sum(axis=1)
    assert np.allclose(total, hist.actual)
    # Yearly season and holidays show up (two years of history, New Year in the window).
    assert hist.seasonal_yearly.abs().max() > 0.01 and (hist.holiday_effect != 0).any()
    spike = hist[(hist.store_id == keys.store_id[5]) & (hist.product_id == keys.product_id[5])
                 & (hist.component_date == days[-20])].iloc[0]
    assert spike.spikes_and_dips > 50 and spike.adjusted == 500 - spike.spikes_and_dips
    dips = hist[hist.store_id.isin(keys.store_id[:5]) & hist.product_id.isin(keys.product_id[:5])
                & (hist.spikes_and_dips < 0)]
    assert len(dips) > 0 and (dips.actual == 0).all()
    assert set(c.model) == set(res.series.model)


def test_forecast_step_writes_the_components_of_the_run(tmp_path):
    chain = tmp_path / "chain"
    generate_sample_chain(chain, n_stores=2, n_products=4, days=120)
    settings = load_settings({"data_dir": str(tmp_path / "work"), "horizon_days": 7})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        run_id = pipeline.import_step(wh, settings, None, chain)["run_id"]
        for _ in range(2):  # idempotent
            summary = pipeline.forecast_step(wh, settings, run_id)
        comp = pipeline.read_run_rows(wh, "forecast_components", run_id)
        assert len(comp) == summary["component_rows"] == 2 * 4 * (COMPONENT_HISTORY_DAYS + 7)
        daily = pipeline.read_run_rows(wh, "forecasts", run_id)
        fc = comp[comp.time_series_type == "forecast"].sort_values(["store_id", "product_id", "component_date"])
        daily = daily.sort_values(["store_id", "product_id", "forecast_date"])
        assert np.allclose(fc.forecast_value.to_numpy(), daily.forecast_mean.to_numpy())
        assert pd.to_datetime(fc.component_date).min() == pd.to_datetime(daily.forecast_date).min()
    finally:
        wh.close()
