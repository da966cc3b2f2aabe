-- A run's daily forecasts over the days that follow its lead times, the only ones the inventory
-- policy sums (the review period after each store's lead time): at a million positions the whole
-- horizon with every column is tens of millions of rows the plan step does not need.
SELECT store_id, product_id, forecast_date, forecast_mean
FROM `{dataset}.forecasts`
WHERE run_id = @run_id AND forecast_date >= @since AND forecast_date < @until
