-- The last day with sales before the given day (the end of a training's history).
SELECT MAX(sale_date) AS last_sale_date FROM `{dataset}.sales` WHERE sale_date < @before
