-- Heartbeat of a RUNNING run: its lease moves on; a finished run is left alone.
UPDATE `{dataset}.runs`
SET heartbeat_at = @now, lease_until = @lease_until, lease_owner = @owner
WHERE run_id = @run_id AND status = 'RUNNING'
