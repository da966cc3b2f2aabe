-- Trainings whose BigQuery job has not been seen finishing yet, oldest first.
SELECT chain_id, model_name, model_type, trained_on, data_start, data_end, horizon, job_id,
  job_location, state, error, submitted_at, finished_at
FROM `{dataset}.model_versions`
WHERE state = 'RUNNING'
ORDER BY submitted_at
