-- Daily forecasts from the latest ARIMA_PLUS model; rows are read by
-- retailopt.forecasting.bigquery_ml.read_forecast_rows (negative values clipped there).
SELECT store_id, product_id, forecast_timestamp, forecast_value, standard_error, confidence_level,
  prediction_interval_lower_bound, prediction_interval_upper_bound
FROM ML.FORECAST(MODEL `{dataset}.{model}`,
  STRUCT(@horizon AS horizon, @confidence_level AS confidence_level))
