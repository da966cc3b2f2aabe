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


def test_forecast_step_reads_ml_forecast_rows_into_the_run(env, tmp_path, monkeypatch):
    """forecast_step's bigquery_ml branch end to end on the emulator. The emulator cannot
    compute ML.FORECAST / ML.EXPLAIN_FORECAST, so only their table functions are replaced by
    tables holding rows with exactly their output columns; the rest of each statement (the
    select list from sql/forecasting, the parameters, the WHERE clause), the client, the reading
    and the writes of the run's rows are the real ones."""
    import re

    from retailopt import pipeline, sqlfiles
    from retailopt.sample import generate_sample_chain

    client, wh, settings = env
    generate_sample_chain(tmp_path, n_stores=2, n_products=2, days=35, end_date=dt.date(2025, 3, 2))
    run_id = pipeline.import_step(wh, settings.replace(run_date=dt.date(2025, 3, 3)), None, tmp_path)["run_id"]
    bq.train(client, settings, dt.date(2025, 3, 2))
    positions = pipeline.query_file(wh, "latest_inventory")[["store_id", "product_id"]]
    table = f"`{settings.project}.{settings.dataset}"
    client.query(f"""CREATE TABLE {table}.ml_forecast_out` (
        store_id STRING, product_id STRING, forecast_timestamp TIMESTAMP, forecast_value FLOAT64,
        standard_error FLOAT64, confidence_level FLOAT64, prediction_interval_lower_bound FLOAT64,
        prediction_interval_upper_bound FLOAT64, confidence_interval_lower_bound FLOAT64,
        confidence_interval_upper_bound FLOAT64)""").result()
    client.query(f"""CREATE TABLE {table}.ml_explain_out` (
        store_id STRING, product_id STRING, time_series_timestamp TIMESTAMP, time_series_type STRING,
        time_series_data FLOAT64, time_series_adjusted_data FLOAT64, standard_error FLOAT64,
        confidence_level FLOAT64, prediction_interval_lower_bound FLOAT64,
        prediction_interval_upper_bound FLOAT64, trend FLOAT64, seasonal_period_yearly FLOAT64,
        seasonal_period_quarterly FLOAT64, seasonal_period_monthly FLOAT64,
        seasonal_period_weekly FLOAT64, seasonal_period_daily FLOAT64, holiday_effect FLOAT64,
        spikes_and_dips FLOAT64, step_changes FLOAT64, residual FLOAT64)""").result()
    forecast_values, explain_values = [], []
    for i, (store, product) in enumerate(positions.itertuples(index=False)):
        for d in range(14):  # the model's horizon, from the day after training
            ts = f"TIMESTAMP '2025-03-{3 + d:02d} 00:00:00+00'"
            value = -0.5 if (i, d) == (0, 1) else 2.0 + i + 0.1 * d
            forecast_values.append(f"('{store}', '{product}', {ts}, {value}, 1.0, 0.9, {value - 1.645}, "
                                   f"{value + 1.645}, {value - 1.645}, {value + 1.645})")
            explain_values.append(f"('{store}', '{product}', {ts}, 'forecast', {value}, NULL, 1.0, 0.9, "
                                  f"{value - 1.645}, {value + 1.645}, {value - 0.5}, NULL, NULL, NULL, 0.5, "
                                  "NULL, 0.0, NULL, NULL, NULL)")
        ts = "TIMESTAMP '2025-02-20 00:00:00+00'"  # history inside the 28 days asked for
        explain_values.append(f"('{store}', '{product}', {ts}, 'history', 3.0, 2.5, NULL, NULL, NULL, NULL, "
                              "2.0, NULL, NULL, NULL, 0.5, NULL, 0.0, 0.5, 0.0, 0.0)")
        ts = "TIMESTAMP '2024-12-01 00:00:00+00'"  # older than that: filtered by the real WHERE
        explain_values.append(f"('{store}', '{product}', {ts}, 'history', 1.0, 1.0, NULL, NULL, NULL, NULL, "
                              "1.0, NULL, NULL, NULL, 0.0, NULL, 0.0, 0.0, 0.0, 0.0)")
    client.query(f"INSERT INTO {table}.ml_forecast_out` VALUES {', '.join(forecast_values)}").result()
    client.query(f"INSERT INTO {table}.ml_explain_out` VALUES {', '.join(explain_values)}").result()
    real_forecast, real_explain = bq.forecast_statement, bq.explain_statement

    def from_table(statement: bq.Statement, function: str, name: str) -> bq.Statement:
        sql, n = re.subn(rf"ML\.{function}\(MODEL `[^`]+`,\s*STRUCT\([^)]*\)\)",
                         sqlfiles.render(f"`{{dataset}}.{name}`", settings.dataset, settings.project),
                         statement.sql)
        assert n == 1, statement.sql
        # Parameters only the table function used are dropped with it.
        return bq.Statement(sql, {k: v for k, v in statement.params.items() if f"@{k}" in sql})

    sent: list[str] = []

    def forecast_rows(*args, **kwargs):
        statement = real_forecast(*args, **kwargs)
        sent.append(statement.sql)
        return from_table(statement, "FORECAST", "ml_forecast_out")

    def explain_rows(*args, **kwargs):
        statement = real_explain(*args, **kwargs)
        sent.append(statement.sql)
        return from_table(statement, "EXPLAIN_FORECAST", "ml_explain_out")

    monkeypatch.setattr(bq, "forecast_statement", forecast_rows)
    monkeypatch.setattr(bq, "explain_statement", explain_rows)
    summary = pipeline.forecast_step(wh, settings, run_id)
    assert any("demand_arima_20250302" in s and "ML.FORECAST" in s for s in sent)
    daily = pipeline.read_run_rows(wh, "forecasts", run_id)
    assert len(daily) == len(positions) * 14 == summary["forecast_rows"]
    assert (daily[["forecast_mean", "lower_bound", "upper_bound", "quantile_50"]] >= 0).all().all()
    assert set(daily.model) == {"demand_arima_20250302"}
    first = positions.iloc[0]
    clipped = daily[(daily.store_id == first.store_id) & (daily.product_id == first.product_id)
                    & (pd.to_datetime(daily.forecast_date) == pd.Timestamp("2025-03-04"))].iloc[0]
    assert clipped.forecast_mean == 0.0 and clipped.lower_bound == 0.0
    assert clipped.upper_bound == pytest.approx(-0.5 + 1.645)
    windows = pipeline.read_run_rows(wh, "demand_windows", run_id)
    assert len(windows) == len(positions) and (windows.demand_mean > 0).all()
    comp = pipeline.read_run_rows(wh, "forecast_components", run_id)
    assert len(comp) == len(positions) * (14 + 1) == summary["component_rows"]
    assert (pd.to_datetime(comp.component_date) >= pd.Timestamp("2025-02-03")).all()
    fc = comp[comp.time_series_type == "forecast"]
    assert (fc.forecast_value >= 0).all() and fc.seasonal_weekly.eq(0.5).all()
