-- Daily forecasts from an ARIMA_PLUS_XREG model with the planned price and promotion per day
-- (a table with store_id, product_id, sale_date, price, on_promotion for the horizon).
SELECT store_id, product_id, forecast_timestamp, forecast_value, standard_error, confidence_level,
  prediction_interval_lower_bound, prediction_interval_upper_bound
FROM ML.FORECAST(MODEL `{dataset}.{model}`,
  STRUCT(@horizon AS horizon, @confidence_level AS confidence_level),
  (
    SELECT store_id, product_id, sale_date, price, CAST(on_promotion AS INT64) AS on_promotion
    FROM `{dataset}.{features}`
    WHERE sale_date BETWEEN @forecast_start AND DATE_ADD(@forecast_start, INTERVAL @horizon - 1 DAY)
  ))
