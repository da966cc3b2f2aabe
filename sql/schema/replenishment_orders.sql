-- Output: orders from a distribution centre to a store.
CREATE TABLE IF NOT EXISTS `{dataset}.replenishment_orders` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  order_id STRING NOT NULL,
  dc_id STRING NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  quantity INT64 NOT NULL,
  cases INT64 NOT NULL,
  order_value FLOAT64 NOT NULL,
  expected_arrival DATE NOT NULL OPTIONS(description = 'Delivery day: run date + the distribution centre lead time; the routes of that day carry it'),
  shipment_id STRING OPTIONS(description = 'Vehicle load (route shipment <consignment>-<k>) that carries this row; a line larger than a vehicle is one row per load with the same order_id')
)
PARTITION BY run_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Replenishment orders from distribution centres');
