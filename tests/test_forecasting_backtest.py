"""Rolling-origin backtest: forecast_accuracy rows and metrics that react to a bad model."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from retailopt.forecasting import ACCURACY_COLUMNS, backtest
from retailopt.forecasting.metrics import bias_by_sales_level, naive_scales, series_metrics
from retailopt.forecasting.synthetic import matrix_to_history, synthetic_matrix
from retailopt.schema import table


def _data():
    keys, days, units, promo = synthetic_matrix(120, 420, date(2024, 5, 31), seed=11, n_stores=4)
    return keys, matrix_to_history(keys, days, units, promo)


def test_backtest_rows_have_the_table_columns_and_honest_coverage():
    keys, hist = _data()
    out = backtest(hist, keys, forecast_start=date(2024, 6, 1), horizon=14, n_origins=2, run_id="r1")
    assert list(out.columns) == ACCURACY_COLUMNS == [c.name for c in table("forecast_accuracy").columns]
    series = out[out.level == "series"]
    assert len(series) == 120 and (series.n_origins == 2).all() and (series.n_observations == 28).all()
    agg = out[(out.level == "aggregate") & (out.model == "all")].iloc[0]
    assert agg.store_id is None and agg.n_observations == 120 * 28
    assert 0.2 < agg.wape < 1.2 and abs(agg.bias) < 0.25
    assert 0.75 <= agg.coverage_80 <= 0.95 and 0.9 <= agg.coverage_95 <= 0.995
    assert np.isfinite(agg.rmsse) and np.isfinite(agg.pinball_loss)


def test_too_narrow_distribution_shows_in_pinball_loss_while_intervals_self_calibrate():
    keys, hist = _data()
    honest = backtest(hist, keys, forecast_start=date(2024, 6, 1), horizon=14, n_origins=1)
    narrow = backtest(hist, keys, forecast_start=date(2024, 6, 1), horizon=14, n_origins=1, variance_scale=0.0)
    pick = lambda df: df[(df.level == "aggregate") & (df.model == "all")].iloc[0]  # noqa: E731
    # Poisson quantiles for over-dispersed demand are too low: the pinball loss sees it ...
    assert pick(narrow).pinball_loss > pick(honest).pinball_loss * 1.05
    # ... but the reported intervals are calibrated on the engine's own rolling-origin
    # forecasts, so they still cover about their nominal level.
    for row in (pick(narrow), pick(honest)):
        assert abs(row.coverage_80 - 0.8) < 0.06 and abs(row.coverage_95 - 0.95) < 0.04


def test_metrics_against_hand_computed_values():
    train = np.array([[0, 1, 3, 2, 2.0]])
    mae, mse = naive_scales(train)
    assert mae[0] == (2 + 1 + 0) / 3 and mse[0] == (4 + 1 + 0) / 3
    actual = np.array([[1.0, 3.0]])
    mean = np.array([[2.0, 2.0]])
    m = series_metrics(actual, mean, scale_mae=mae, scale_mse=mse, lo80=np.array([[0, 0]]),
                       hi80=np.array([[1, 2]]))
    assert m["wape"][0] == 0.5 and m["bias"][0] == 0 and m["coverage_80"][0] == 0.5
    assert np.isclose(m["rmsse"][0], np.sqrt(1 / (5 / 3))) and np.isclose(m["mase"][0], 1.0)


def test_bias_by_sales_level_groups_by_trailing_sales_not_by_forecast():
    # Trailing 28-day rates 0, 0.5, 2 and 5 a day: one series per group.
    train = np.repeat(np.array([[0.0], [0.5], [2.0], [5.0]]), 40, axis=1)
    train[0, :12] = 9.0  # sales before the trailing 28 days do not count
    actual = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0], [10.0, 10.0]])
    # The slow series is forecast high, so grouping by the forecast would put it elsewhere.
    mean = np.array([[3.0, 3.0], [1.0, 1.0], [4.0, 4.0], [11.0, 11.0]])
    b = bias_by_sales_level(actual, mean, train)
    assert list(b) == ["<=0.3", "0.3-1", "1-3", ">3"]
    assert b["<=0.3"] == 2.0 and b["0.3-1"] == -0.5 and b["1-3"] == 0.0 and np.isclose(b[">3"], 0.1)
    # A group without actual sales has no relative bias.
    assert np.isnan(bias_by_sales_level(np.zeros((1, 2)), np.ones((1, 2)), np.zeros((1, 30)))["<=0.3"])
