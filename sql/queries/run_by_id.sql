SELECT run_id, run_date, status, started_at, finished_at, parameters, timings, kpis, error, heartbeat_at,
  lease_until, lease_owner
FROM `{dataset}.runs`
WHERE run_id = @run_id
