UPDATE `{dataset}.runs`
SET status = @status, finished_at = @finished_at, timings = @timings, kpis = @kpis, error = @error
WHERE run_id = @run_id
