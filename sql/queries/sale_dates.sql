-- The distinct sale dates in [@since, @until): the local forecast infers the sales' frequency
-- (daily, weekly, monthly) from them before it reads any chunk of history.
SELECT DISTINCT sale_date
FROM `{dataset}.sales`
WHERE sale_date >= @since AND sale_date < @until
ORDER BY sale_date
