-- Output: inventory targets and status per store and product.
CREATE TABLE IF NOT EXISTS `{dataset}.inventory_policy` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  on_hand INT64 NOT NULL,
  on_order INT64 NOT NULL,
  mean_daily_demand FLOAT64 NOT NULL,
  lead_time_days INT64 NOT NULL,
  review_period_days INT64 NOT NULL,
  service_level FLOAT64 NOT NULL,
  safety_stock FLOAT64 NOT NULL,
  reorder_point FLOAT64 NOT NULL,
  order_up_to FLOAT64 NOT NULL,
  days_of_cover FLOAT64,
  expected_lost_units FLOAT64 NOT NULL OPTIONS(description = 'Expected unmet demand over the protection interval if nothing is done'),
  status STRING NOT NULL OPTIONS(description = 'STOCKOUT_RISK, OVERSTOCK or OK'),
  status_after_plan STRING OPTIONS(description = 'Status once the planned transfers and orders arrive'),
  exception STRING OPTIONS(description = 'Why the position could not be planned normally')
)
PARTITION BY run_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Inventory policy per store and product');
