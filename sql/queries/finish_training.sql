-- A running training ended (DONE or FAILED). Only a RUNNING row changes, so a second check of the
-- same job changes nothing.
UPDATE `{dataset}.model_versions`
SET state = @state, error = @error, finished_at = @finished_at
WHERE job_id = @job_id AND state = 'RUNNING'
