SELECT MAX(sale_date) AS last_sale_date FROM `{dataset}.sales`
