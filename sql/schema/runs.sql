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
  error STRING,
  heartbeat_at TIMESTAMP OPTIONS(description = 'Last sign of life of the process running it'),
  lease_until TIMESTAMP OPTIONS(description = 'A RUNNING run not renewed by then is marked FAILED'),
  lease_owner STRING OPTIONS(description = 'host:pid of the process holding the lease')
)
PARTITION BY run_date
OPTIONS(description = 'Planning runs and their summary');
