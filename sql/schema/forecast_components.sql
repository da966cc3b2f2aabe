-- Output: decomposition of each series' history and forecast (ML.EXPLAIN_FORECAST or the local
-- engine's equivalent), for explanations.
CREATE TABLE IF NOT EXISTS `{dataset}.forecast_components` (
  run_id STRING NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  component_date DATE NOT NULL,
  time_series_type STRING NOT NULL OPTIONS(description = 'history or forecast'),
  actual FLOAT64,
  adjusted FLOAT64 OPTIONS(description = 'History after spike, dip and step-change cleaning'),
  forecast_value FLOAT64,
  trend FLOAT64,
  seasonal_weekly FLOAT64,
  seasonal_yearly FLOAT64,
  holiday_effect FLOAT64,
  spikes_and_dips FLOAT64,
  step_changes FLOAT64,
  residual FLOAT64,
  model STRING NOT NULL
)
PARTITION BY component_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Forecast decomposition: trend, seasonality, holidays, spikes and dips');
