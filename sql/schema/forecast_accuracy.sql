-- Output: rolling-origin backtest accuracy per series and for the whole chain (store_id and
-- product_id NULL on aggregate rows), per engine/model.
CREATE TABLE IF NOT EXISTS `{dataset}.forecast_accuracy` (
  run_id STRING NOT NULL,
  evaluated_on DATE NOT NULL OPTIONS(description = 'Date the backtest ran (the run date)'),
  level STRING NOT NULL OPTIONS(description = 'series or aggregate'),
  store_id STRING,
  product_id STRING,
  model STRING NOT NULL,
  horizon_days INT64 NOT NULL,
  n_origins INT64 NOT NULL,
  n_observations INT64 NOT NULL,
  actual_units FLOAT64 NOT NULL,
  wape FLOAT64 OPTIONS(description = 'Sum of absolute errors / sum of actuals'),
  mase FLOAT64 OPTIONS(description = 'MAE scaled by the in-sample one-step naive MAE'),
  rmsse FLOAT64 OPTIONS(description = 'RMSE scaled by the in-sample one-step naive RMSE'),
  bias FLOAT64 OPTIONS(description = '(Sum of forecasts - sum of actuals) / sum of actuals'),
  coverage_80 FLOAT64 OPTIONS(description = 'Share of actuals inside the central 80% interval'),
  coverage_95 FLOAT64 OPTIONS(description = 'Share of actuals inside the central 95% interval'),
  pinball_loss FLOAT64 OPTIONS(description = 'Mean pinball loss over quantiles 0.5 to 0.99, scaled by mean actual')
)
PARTITION BY evaluated_on
CLUSTER BY store_id, product_id
OPTIONS(description = 'Forecast accuracy from rolling-origin backtests');
