-- Workbench runs page: every run, newest first, with its headline figures (run_history), its
-- settings (to show what-if overrides), the event that started it and when it was released.
-- The import step's ledger row names the start event: a Pub/Sub message (POST /runs, Scheduler)
-- or a Cloud Storage _READY marker; a run with none was started by `retailopt run`.
WITH triggers AS (
  SELECT run_id, MIN(event_key) AS start_event
  FROM `{dataset}.processed_events`
  WHERE step = 'import' AND key_kind = 'EVENT_ID' AND run_id IS NOT NULL
  GROUP BY run_id
),
released AS (
  SELECT run_id, MIN(decided_at) AS released_at
  FROM `{dataset}.plan_decisions`
  WHERE action = 'RELEASE'
  GROUP BY run_id
)
SELECT
  h.*,
  r.parameters,
  t.start_event,
  d.released_at,
  COUNT(*) OVER () AS total
FROM `{dataset}.run_history` AS h
JOIN `{dataset}.runs` AS r ON r.run_id = h.run_id
LEFT JOIN triggers AS t ON t.run_id = h.run_id
LEFT JOIN released AS d ON d.run_id = h.run_id
ORDER BY h.started_at DESC, h.run_id DESC
LIMIT @limit OFFSET @offset
