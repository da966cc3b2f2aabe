-- Daily sales in [@since, @until) of the stores @store_from to @store_to (ids, inclusive): the
-- local forecast's input, one chunk of whole stores at a time (retailopt.forecasting.chunks).
SELECT store_id, product_id, sale_date, units, price, on_promotion
FROM `{dataset}.sales`
WHERE sale_date >= @since AND sale_date < @until
  AND store_id BETWEEN @store_from AND @store_to
