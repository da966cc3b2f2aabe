-- Workbench drill-down: the daily series of one position (parameters store_id, product_id):
-- units sold from since to the day before until (sales), and the run's forecast with its
-- interval (forecasts of run_id). kind: SALE or FORECAST.
SELECT 'SALE' AS kind, sale_date AS day, CAST(units AS FLOAT64) AS units, CAST(NULL AS FLOAT64) AS lower_bound,
  CAST(NULL AS FLOAT64) AS upper_bound, on_promotion
FROM `{dataset}.sales`
WHERE store_id = @store_id AND product_id = @product_id AND sale_date >= @since AND sale_date < @until
UNION ALL
SELECT 'FORECAST', forecast_date, forecast_mean, lower_bound, upper_bound, CAST(NULL AS BOOL)
FROM `{dataset}.forecasts`
WHERE run_id = @run_id AND store_id = @store_id AND product_id = @product_id
ORDER BY kind, day
