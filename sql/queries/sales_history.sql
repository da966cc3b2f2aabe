-- Daily sales in [@since, @until): the forecasting input.
SELECT store_id, product_id, sale_date, units, price, on_promotion
FROM `{dataset}.sales`
WHERE sale_date >= @since AND sale_date < @until
