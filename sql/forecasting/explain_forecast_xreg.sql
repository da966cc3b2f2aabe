-- Decomposition of an ARIMA_PLUS_XREG model's history and forecast: as explain_forecast.sql, with
-- the future regressors (future_features.sql) as the table argument this model type requires.
-- Its rows also carry one attribution column per regressor (the promotion's is added to
-- holiday_effect when reading), hence SELECT *.
SELECT *
FROM ML.EXPLAIN_FORECAST(MODEL `{dataset}.{model}`,
  STRUCT(@horizon AS horizon, @confidence_level AS confidence_level),
  (
{features}
  ))
WHERE time_series_timestamp >= TIMESTAMP(DATE_SUB(@forecast_start, INTERVAL @history_days DAY))
