-- Trainings of a chain's demand model trained on or before a day, newest first.
SELECT chain_id, model_name, model_type, trained_on, data_start, data_end, horizon, job_id,
  job_location, state, error, submitted_at, finished_at
FROM `{dataset}.model_versions`
WHERE chain_id = @chain_id AND trained_on <= @trained_until
ORDER BY trained_on DESC, submitted_at DESC
