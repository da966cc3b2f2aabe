"""BigQuery ML statements against bqemulator, and reading ML.FORECAST-shaped rows."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest

from retailopt.config import ConfigError, Settings
from retailopt.forecasting import DAILY_COLUMNS, PROTECTION_COLUMNS
from retailopt.forecasting import bigquery_ml as bq
from retailopt.warehouse.bigquery import BigQueryWarehouse


@pytest.fixture
def env(bqemu_client):
    dataset = f"t_{uuid.uuid4().hex[:8]}"
    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=dataset)
    wh.ensure_schema()
    settings = Settings(warehouse="bigquery", project=bqemu_client.project, dataset=dataset,
                        forecast_engine="bigquery_ml", horizon_days=14)
    return bqemu_client, wh, settings


def test_create_model_statement_is_accepted_and_versioned(env):
    client, wh, settings = env
    wh.insert("sales", pd.DataFrame({
        "sale_date": ["2025-01-01", "2025-01-03"], "store_id": ["S1", "S1"], "product_id": ["P1", "P1"],
        "units": [3, 4], "price": [1.0, 1.0], "on_promotion": [False, True]}))
    name = bq.train(client, settings, dt.date(2025, 1, 5))
    assert name == "demand_arima_20250105"
    xreg = bq.train(client, settings, dt.date(2025, 1, 12), xreg=True)
    assert xreg == "demand_arima_xreg_20250112"
    models = {m.model_id for m in client.list_models(f"{settings.project}.{settings.dataset}")}
    assert {name, xreg} <= models
    assert bq.latest_model(client, settings, dt.date(2025, 1, 20)) == name
    assert bq.latest_model(client, settings, dt.date(2025, 1, 20), xreg=True) == xreg
    assert bq.latest_model(client, settings, dt.date(2025, 1, 4)) is None


def test_unknown_model_option_is_rejected_by_the_emulator(env):
    client, _, settings = env
    statement = bq.create_model_statement(settings, dt.date(2025, 1, 5))
    bad = statement.sql.replace("decompose_time_series = TRUE", "decompose_time_series = TRUE,\n  no_such_option = 1")
    with pytest.raises(Exception, match="(?i)no_such_option|option"):
        bq.run(client, bq.Statement(bad, statement.params))


def test_statements_keep_values_as_parameters():
    settings = Settings(dataset="retail", horizon_days=28, holiday_country="us")
    s = bq.create_model_statement(settings, dt.date(2025, 3, 2))
    assert "OPTIONS(" in s.sql and "holiday_region = 'US'" in s.sql and "horizon = 28" in s.sql
    options = s.sql[s.sql.index("OPTIONS("):s.sql.index(") AS")]
    assert "forecast_limit_lower_bound" not in options and "time_series_id_col = ['store_id', 'product_id']" in options
    assert "@train_end" in s.sql and s.params == {"train_end": dt.date(2025, 3, 2), "history_days": 730}
    f = bq.forecast_statement(settings, "demand_arima_20250302", dt.date(2025, 3, 3))
    assert "@horizon" in f.sql and f.params["confidence_level"] == 0.9
    with pytest.raises(ConfigError):
        bq.forecast_statement(settings, "x`; DROP TABLE t; --", dt.date(2025, 3, 3))
    with pytest.raises(ConfigError):
        bq.forecast_statement(settings, "demand_arima_xreg_20250302", dt.date(2025, 3, 3), "bad-name`")
    with pytest.raises(ConfigError):
        bq.create_model_statement(Settings(holiday_country="Atlantis"), dt.date(2025, 3, 2))


def _forecast_rows() -> pd.DataFrame:
    ts = pd.date_range("2025-03-03", periods=3, freq="D", tz="UTC")
    return pd.DataFrame({
        "store_id": ["S1"] * 3 + ["S2"] * 3, "product_id": ["P1"] * 6,
        "forecast_timestamp": list(ts) * 2,
        "forecast_value": [2.0, -0.4, 1.0, 10.0, 11.0, 12.0],
        "standard_error": [1.0, 1.0, 1.5, 2.0, 2.0, 2.0],
        "confidence_level": [0.9] * 6,
        "prediction_interval_lower_bound": [0.355, -2.04, -1.47, 6.71, 7.71, 8.71],
        "prediction_interval_upper_bound": [3.64, 1.24, 3.47, 13.29, 14.29, 15.29],
    })


def test_forecast_rows_become_forecast_table_rows_with_negatives_clipped():
    daily = bq.read_forecast_rows(_forecast_rows(), model="demand_arima_20250302")
    assert list(daily.columns) == DAILY_COLUMNS
    assert (daily[["forecast_mean", "lower_bound", "upper_bound", "quantile_50", "quantile_99"]] >= 0).all().all()
    row = daily[(daily.store_id == "S1") & (daily.forecast_date == pd.Timestamp("2025-03-04"))].iloc[0]
    assert row.forecast_mean == 0 and row.lower_bound == 0 and row.upper_bound == pytest.approx(1.24)
    s2 = daily[daily.store_id == "S2"].iloc[0]
    assert s2.quantile_50 == pytest.approx(10.0) and s2.quantile_95 == pytest.approx(10 + 1.6449 * 2, abs=1e-3)
    prot = bq.protection_from_daily(daily, pd.DataFrame({"store_id": ["S1", "S2"], "product_id": ["P1", "P1"],
                                                         "window_days": [2, 5]}))
    assert list(prot.columns) == PROTECTION_COLUMNS
    s2p = prot.set_index("store_id").loc["S2"]
    # Window longer than the horizon repeats the last day; sd between independent and correlated.
    assert s2p.demand_mean == pytest.approx(10 + 11 + 12 * 3)
    assert np.sqrt(5 * 4) < s2p.demand_std < 10


def test_daily_forecast_uses_the_newest_model_and_sends_ml_forecast(env):
    """The emulator does not compute ML.FORECAST (it says so): the call must reach it with the
    newest model version, and without any model it must ask for training first."""
    client, _, settings = env
    windows = pd.DataFrame(columns=["store_id", "product_id", "window_days"])
    with pytest.raises(LookupError, match="run training first"):
        bq.forecast_bigquery(client, settings, forecast_start=dt.date(2025, 1, 6), window_days=windows)
    bq.train(client, settings, dt.date(2025, 1, 5))
    with pytest.raises(Exception, match="ML.FORECAST"):
        bq.forecast_bigquery(client, settings, forecast_start=dt.date(2025, 1, 6), window_days=windows)


def test_components_and_diagnostics_readers():
    rows = pd.DataFrame({
        "store_id": ["S1", "S1"], "product_id": ["P1", "P1"],
        "time_series_timestamp": pd.to_datetime(["2025-03-02", "2025-03-03"], utc=True),
        "time_series_type": ["history", "forecast"], "time_series_data": [3.0, -0.2],
        "time_series_adjusted_data": [2.5, None], "standard_error": [None, 1.0],
        "confidence_level": [None, 0.9], "prediction_interval_lower_bound": [None, -1.8],
        "prediction_interval_upper_bound": [None, 1.4], "trend": [2.0, 1.9],
        "seasonal_period_weekly": [0.5, -2.1], "seasonal_period_yearly": [None, None],
        "holiday_effect": [0.0, 0.0], "spikes_and_dips": [0.5, None], "step_changes": [0.0, None],
        "residual": [0.0, None]})
    comp = bq.read_component_rows(rows, model="demand_arima_20250302")
    assert comp.loc[0, "actual"] == 3.0 and np.isnan(comp.loc[0, "forecast_value"])
    assert comp.loc[1, "forecast_value"] == 0.0 and comp.loc[1, "time_series_type"] == "forecast"
    ev = pd.DataFrame({"store_id": ["S1"], "product_id": ["P1"], "non_seasonal_p": [1], "non_seasonal_d": [1],
                       "non_seasonal_q": [2], "has_drift": [False], "log_likelihood": [-10.0], "AIC": [26.0],
                       "variance": [1.2], "seasonal_periods": [["WEEKLY", "YEARLY"]],
                       "has_holiday_effect": [True], "has_spikes_and_dips": [False],
                       "has_step_changes": [False], "error_message": [""]})
    diag = bq.read_evaluate_rows(ev, model="demand_arima_20250302")
    assert diag.loc[0, "model"] == "ARIMA(1,1,2)" and diag.loc[0, "seasonal_periods"] == "WEEKLY,YEARLY"
    assert diag.loc[0, "trained_on"] == pd.Timestamp("2025-03-02")
