-- Generated from sql/views/completed_results.sql; do not edit.
-- Analyst views: results of completed runs only (a failed or running run is never visible here).
SELECT
  t.*
FROM `{dataset}.transfers` AS t
JOIN `{dataset}.runs` AS r
  USING (run_id)
WHERE
  r.status = 'COMPLETE'
