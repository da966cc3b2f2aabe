-- Output: fitted model per series and model version (ML.ARIMA_EVALUATE or the local engine).
CREATE TABLE IF NOT EXISTS `{dataset}.model_diagnostics` (
  model_name STRING NOT NULL OPTIONS(description = 'Model version, named by training date'),
  trained_on DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  engine STRING NOT NULL OPTIONS(description = 'bigquery_ml or local'),
  model STRING NOT NULL,
  demand_class STRING OPTIONS(description = 'smooth, erratic, intermittent or lumpy (ADI, CV2)'),
  non_seasonal_p INT64,
  non_seasonal_d INT64,
  non_seasonal_q INT64,
  has_drift BOOL,
  log_likelihood FLOAT64,
  aic FLOAT64,
  variance FLOAT64,
  seasonal_periods STRING OPTIONS(description = 'Comma-separated seasonal periods detected'),
  has_holiday_effect BOOL,
  has_spikes_and_dips BOOL,
  has_step_changes BOOL,
  smoothing_parameter FLOAT64,
  dispersion FLOAT64 OPTIONS(description = 'Negative-binomial 1/k of the local engine'),
  error_message STRING
)
PARTITION BY trained_on
CLUSTER BY store_id, product_id
OPTIONS(description = 'Per-series model diagnostics by model version');
