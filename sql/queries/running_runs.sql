-- Every RUNNING run and the process holding its lease.
SELECT run_id, started_at, heartbeat_at, lease_until, lease_owner
FROM `{dataset}.runs`
WHERE status = 'RUNNING'
ORDER BY started_at
