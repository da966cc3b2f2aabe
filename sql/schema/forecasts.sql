-- Output: daily demand forecast per store and product.
CREATE TABLE IF NOT EXISTS `{dataset}.forecasts` (
  run_id STRING NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  forecast_date DATE NOT NULL,
  forecast_mean FLOAT64 NOT NULL,
  standard_error FLOAT64,
  confidence_level FLOAT64 NOT NULL,
  lower_bound FLOAT64 NOT NULL,
  upper_bound FLOAT64 NOT NULL,
  quantile_50 FLOAT64,
  quantile_80 FLOAT64,
  quantile_90 FLOAT64,
  quantile_95 FLOAT64,
  quantile_99 FLOAT64,
  model STRING NOT NULL,
  fallback_reason STRING
)
PARTITION BY forecast_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Demand forecasts with prediction intervals');
