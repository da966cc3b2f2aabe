SELECT run_id
FROM `{dataset}.runs`
WHERE status = 'COMPLETE'
ORDER BY finished_at DESC
LIMIT 1
