-- Output: distribution of demand summed over each position's protection window (lead time + review period).
CREATE TABLE IF NOT EXISTS `{dataset}.demand_windows` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  window_days INT64 NOT NULL,
  demand_mean FLOAT64 NOT NULL,
  demand_std FLOAT64 NOT NULL,
  q50 FLOAT64 NOT NULL,
  q80 FLOAT64 NOT NULL,
  q90 FLOAT64 NOT NULL,
  q95 FLOAT64 NOT NULL,
  q99 FLOAT64 NOT NULL,
  model STRING NOT NULL
)
PARTITION BY run_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Lead-time demand distribution per store and product');
