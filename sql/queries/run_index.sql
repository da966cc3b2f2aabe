-- Every run's id, status and finish time: the API's in-memory index of runs (answers unknown run
-- ids and the latest complete plan without a query per request).
SELECT run_id, status, finished_at
FROM `{dataset}.runs`
