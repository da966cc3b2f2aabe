-- Input: current stock snapshot per store and product.
CREATE TABLE IF NOT EXISTS `{dataset}.inventory` (
  snapshot_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  on_hand INT64 NOT NULL,
  on_order INT64 NOT NULL,
  max_capacity INT64 NOT NULL OPTIONS(description = 'Most units of this product the store can hold')
)
PARTITION BY snapshot_date
CLUSTER BY store_id, product_id
OPTIONS(description = 'Stock on hand and on order');
