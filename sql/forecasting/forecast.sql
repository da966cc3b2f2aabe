-- Daily forecasts of an ARIMA_PLUS model from the day after its training data, as many days as
-- the horizon parameter (at most the model's HORIZON); rows are read by
-- retailopt.forecasting.bigquery_ml.read_forecast_rows (negatives clipped, days before the run dropped).
SELECT store_id, product_id, forecast_timestamp, forecast_value, standard_error, confidence_level,
  prediction_interval_lower_bound, prediction_interval_upper_bound
FROM ML.FORECAST(MODEL `{dataset}.{model}`,
  STRUCT(@horizon AS horizon, @confidence_level AS confidence_level))
