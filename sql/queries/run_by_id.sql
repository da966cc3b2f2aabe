SELECT run_id, run_date, status, started_at, finished_at, parameters, timings, kpis, error
FROM `{dataset}.runs`
WHERE run_id = @run_id
