"""Shared by the BigQuery ML tests: bqemulator computes no ML table function, so a test replaces
`ML.<function>(...)` by a table holding rows of its output columns; everything around it (the
statement's select list, WHERE, parameters, the future regressors' query) runs for real."""

from __future__ import annotations

import re

from retailopt import sqlfiles
from retailopt.config import Settings
from retailopt.forecasting import bigquery_ml as bq


def replace_table_function(statement: bq.Statement, function: str, table: str, settings: Settings,
                           client=None) -> bq.Statement:
    """bqemulator computes no ML table function: `ML.<function>(...)` (its whole argument list)
    becomes a table holding rows of its output columns. The future regressors' query of an
    ARIMA_PLUS_XREG call is run for real (into a table, with the statement's parameters) and
    joined to those rows, so a forecast day it does not cover has no forecast row."""
    start = statement.sql.index(f"ML.{function}(")
    depth, end = 0, start + len(f"ML.{function}")
    for end in range(end, len(statement.sql)):
        depth += {"(": 1, ")": -1}.get(statement.sql[end], 0)
        if depth == 0:
            break
    call = statement.sql[start:end + 1]
    rendered = sqlfiles.render(f"`{{dataset}}.{table}`", settings.dataset, settings.project)
    features = re.search(r"STRUCT\([^)]*\),\s*\((.*)\)\s*\)$", call, re.S)
    if features:
        query = re.sub(r"--[^\n]*", "", features.group(1))
        target = f"`{settings.project}.{settings.dataset}.xreg_features`"
        bq.run(client, bq.Statement(f"CREATE OR REPLACE TABLE {target} AS {query}",
                                    {k: v for k, v in statement.params.items() if f"@{k}" in query}))
        stamp = "forecast_timestamp" if function == "FORECAST" else "time_series_timestamp"
        history = " OR o.time_series_type = 'history'" if function == "EXPLAIN_FORECAST" else ""
        rendered = (f"(SELECT DISTINCT o.* FROM {rendered} AS o JOIN {target} AS x ON x.store_id = o.store_id "
                    f"AND x.product_id = o.product_id AND (x.sale_date = DATE(o.{stamp}){history}))")
    sql = statement.sql[:start] + rendered + statement.sql[end + 1:]
    sql = re.sub(r"--[^\n]*", "", sql)  # the emulator refuses any statement whose text names ML.FORECAST
    return bq.Statement(sql, {k: v for k, v in statement.params.items() if f"@{k}" in sql})


EVALUATE_OUT = """(store_id STRING, product_id STRING, non_seasonal_p INT64, non_seasonal_d INT64,
    non_seasonal_q INT64, has_drift BOOL, log_likelihood FLOAT64, AIC FLOAT64, variance FLOAT64,
    seasonal_periods ARRAY<STRING>, has_holiday_effect BOOL, has_spikes_and_dips BOOL,
    has_step_changes BOOL, error_message STRING)"""


def evaluate_rows_for(client, settings, monkeypatch, series: list[tuple[str, str]]) -> None:
    """ML.ARIMA_EVALUATE's answer for `series` (the emulator computes none)."""
    table = f"`{settings.project}.{settings.dataset}.ml_evaluate_out`"
    client.query(f"CREATE TABLE IF NOT EXISTS {table} {EVALUATE_OUT}").result()
    values = ", ".join(f"('{s}', '{p}', 1, 1, 1, FALSE, -10.0, 26.0, 1.5, ['WEEKLY'], FALSE, TRUE, FALSE, NULL)"
                       for s, p in series)
    client.query(f"INSERT INTO {table} VALUES {values}").result()
    real = bq.evaluate_statement
    monkeypatch.setattr(bq, "evaluate_statement", lambda *a, **k: replace_table_function(
        real(*a, **k), "ARIMA_EVALUATE", "ml_evaluate_out", settings))


FORECAST_OUT = """(store_id STRING, product_id STRING, forecast_timestamp TIMESTAMP, forecast_value FLOAT64,
    standard_error FLOAT64, confidence_level FLOAT64, prediction_interval_lower_bound FLOAT64,
    prediction_interval_upper_bound FLOAT64, confidence_interval_lower_bound FLOAT64,
    confidence_interval_upper_bound FLOAT64)"""
EXPLAIN_OUT = """(store_id STRING, product_id STRING, time_series_timestamp TIMESTAMP, time_series_type STRING,
    time_series_data FLOAT64, time_series_adjusted_data FLOAT64, standard_error FLOAT64,
    confidence_level FLOAT64, prediction_interval_lower_bound FLOAT64,
    prediction_interval_upper_bound FLOAT64, trend FLOAT64, seasonal_period_yearly FLOAT64,
    seasonal_period_quarterly FLOAT64, seasonal_period_monthly FLOAT64,
    seasonal_period_weekly FLOAT64, seasonal_period_daily FLOAT64, holiday_effect FLOAT64,
    spikes_and_dips FLOAT64, step_changes FLOAT64, residual FLOAT64, attribution_on_promotion FLOAT64,
    attribution_price FLOAT64)"""
