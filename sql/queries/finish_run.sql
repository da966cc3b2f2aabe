-- Only a RUNNING run finishes: a run already failed (its lease expired) or complete stays so.
UPDATE `{dataset}.runs`
SET status = @status, finished_at = @finished_at, timings = @timings, kpis = @kpis, error = @error
WHERE run_id = @run_id AND status = 'RUNNING'
