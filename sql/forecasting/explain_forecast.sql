-- Decomposition of an ARIMA_PLUS model's history and forecast (trend, seasonality, holidays,
-- spikes and dips) for explanations; the model needs decompose_time_series. Read by
-- retailopt.forecasting.bigquery_ml.read_component_rows.
SELECT store_id, product_id, time_series_timestamp, time_series_type, time_series_data,
  time_series_adjusted_data, standard_error, confidence_level, prediction_interval_lower_bound,
  prediction_interval_upper_bound, trend, seasonal_period_weekly, seasonal_period_yearly,
  holiday_effect, spikes_and_dips, step_changes, residual
FROM ML.EXPLAIN_FORECAST(MODEL `{dataset}.{model}`,
  STRUCT(@horizon AS horizon, @confidence_level AS confidence_level))
WHERE time_series_timestamp >= TIMESTAMP(DATE_SUB(@forecast_start, INTERVAL @history_days DAY))
