-- The most recent planning run that completed (results of other runs are not shown to analysts).
SELECT run_id, run_date, started_at, finished_at, parameters, timings, kpis
FROM `{project}.{dataset}.runs`
WHERE status = 'COMPLETE'
QUALIFY ROW_NUMBER() OVER (ORDER BY run_date DESC, finished_at DESC) = 1
