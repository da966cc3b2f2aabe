-- How many series-days of a run's horizon an ARIMA_PLUS_XREG forecast is told are on promotion
-- (the future regressors, from the run date on).
SELECT COUNTIF(f.on_promotion = 1 AND f.sale_date >= @forecast_start) AS promoted_days
FROM (
{features}
) AS f
