-- Every planning run with its outcome, duration and headline figures.
SELECT
  run_id,
  run_date,
  status,
  started_at,
  finished_at,
  TIMESTAMP_DIFF(finished_at, started_at, SECOND) AS duration_s,
  SAFE_CAST(JSON_VALUE(kpis, '$.stores_at_risk') AS INT64) AS stores_at_risk,
  error
FROM `{project}.{dataset}.runs`
