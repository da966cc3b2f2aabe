INSERT INTO `{dataset}.runs` (run_id, run_date, status, started_at, parameters)
SELECT @run_id, @run_date, 'RUNNING', @started_at, @parameters
FROM (SELECT 1) AS one
WHERE NOT EXISTS (SELECT 1 FROM `{dataset}.runs` WHERE run_id = @run_id)
