-- Generated from sql/views/completed_results.sql; do not edit.
-- Analyst views: results of completed runs only (a failed or running run is never visible here).
SELECT
  o.*
FROM `{dataset}.replenishment_orders` AS o
JOIN `{dataset}.runs` AS r
  USING (run_id)
WHERE
  r.status = 'COMPLETE'
