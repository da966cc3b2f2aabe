-- Input: daily sales per store and product. Days without a row had no sales.
CREATE TABLE IF NOT EXISTS `{dataset}.sales` (
  sale_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  units INT64 NOT NULL,
  price FLOAT64 NOT NULL OPTIONS(description = 'Average selling price that day'),
  on_promotion BOOL NOT NULL
)
PARTITION BY sale_date
CLUSTER BY store_id, product_id
OPTIONS(description = 'Daily unit sales');
