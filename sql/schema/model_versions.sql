-- Service state: one row per training of a chain's BigQuery ML demand model. The retrain service
-- records the job it submits (RUNNING); the training check records how it ended (DONE, FAILED).
-- The forecast step uses the newest model of its chain whose training is DONE.
CREATE TABLE IF NOT EXISTS `{dataset}.model_versions` (
  chain_id STRING NOT NULL,
  model_name STRING NOT NULL OPTIONS(description = 'BigQuery ML model in this dataset, named by chain and training date'),
  model_type STRING NOT NULL OPTIONS(description = 'ARIMA_PLUS, or ARIMA_PLUS_XREG with promotion and price regressors'),
  trained_on DATE NOT NULL OPTIONS(description = 'Training date: the model learns the sales before it'),
  data_start DATE NOT NULL OPTIONS(description = 'First day of the training history'),
  data_end DATE NOT NULL OPTIONS(description = 'Last day of the training history; forecasts start the day after'),
  horizon INT64 NOT NULL OPTIONS(description = 'Days after data_end the model forecasts'),
  job_id STRING NOT NULL OPTIONS(description = 'BigQuery job of the CREATE MODEL statement'),
  job_location STRING,
  state STRING NOT NULL OPTIONS(description = 'RUNNING, DONE or FAILED'),
  error STRING OPTIONS(description = 'Why the training failed'),
  submitted_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP
)
CLUSTER BY chain_id
OPTIONS(description = 'Trainings of the BigQuery ML demand models and how they ended');
