-- Daily forecasts of an ARIMA_PLUS_XREG model: as forecast.sql, with the regressors of every
-- forecast day and series (future_features.sql, the planned promotions and prices) as the
-- table argument, which ML.FORECAST takes after the STRUCT for this model type.
SELECT store_id, product_id, forecast_timestamp, forecast_value, standard_error, confidence_level,
  prediction_interval_lower_bound, prediction_interval_upper_bound
FROM ML.FORECAST(MODEL `{dataset}.{model}`,
  STRUCT(@horizon AS horizon, @confidence_level AS confidence_level),
  (
{features}
  ))
