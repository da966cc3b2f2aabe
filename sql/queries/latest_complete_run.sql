-- The plan in force: the COMPLETE run that finished last (ties by run id, as the API and views).
SELECT run_id
FROM `{dataset}.runs`
WHERE status = 'COMPLETE'
ORDER BY finished_at DESC, run_id DESC
LIMIT 1
