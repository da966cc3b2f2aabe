-- Output: one row per planning run; results of a run are visible only once status = 'COMPLETE'.
CREATE TABLE IF NOT EXISTS `{dataset}.runs` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  status STRING NOT NULL OPTIONS(description = 'RUNNING, COMPLETE or FAILED'),
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  parameters STRING OPTIONS(description = 'JSON: configuration of the run'),
  timings STRING OPTIONS(description = 'JSON: seconds per step'),
  kpis STRING OPTIONS(description = 'JSON: key figures of the run'),
  error STRING
)
PARTITION BY run_date
OPTIONS(description = 'Planning runs and their summary');
