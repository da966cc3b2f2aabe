-- Output: days of the recent sales history outside the forecast model's high-probability
-- interval (ML.DETECT_ANOMALIES, or the local engine's twin), one row per anomalous store ×
-- product × day and run.
CREATE TABLE IF NOT EXISTS `{dataset}.sales_anomalies` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  sale_date DATE NOT NULL,
  units FLOAT64 NOT NULL OPTIONS(description = 'Units sold that day (0 for a day without sales)'),
  expected FLOAT64 OPTIONS(description = 'Units the model expected from the days before (local: one-step in-sample mean; bigquery_ml: middle of the interval)'),
  lower_bound FLOAT64 OPTIONS(description = 'Lower end of the interval holding anomaly_prob_threshold (0.99) of the distribution of the day'),
  upper_bound FLOAT64 OPTIONS(description = 'Upper end of that interval'),
  anomaly_probability FLOAT64 NOT NULL OPTIONS(description = 'Probability mass of the central interval that just excludes the day, as ML.DETECT_ANOMALIES reports it (above 0.99 here)'),
  kind STRING NOT NULL OPTIONS(description = 'spike (above the interval) or dip (below it)'),
  on_promotion BOOL NOT NULL OPTIONS(description = 'The day was on promotion in the sales file'),
  excluded_from_training BOOL NOT NULL OPTIONS(description = 'The forecast was fitted with the expected value instead of this day (an isolated spike, setting exclude_anomalies)'),
  method STRING NOT NULL OPTIONS(description = 'local (the in-sample distribution of the local engine) or bigquery_ml (ML.DETECT_ANOMALIES)')
)
PARTITION BY run_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Sales anomalies (spikes and dips) of the days before each run, per store and product');
