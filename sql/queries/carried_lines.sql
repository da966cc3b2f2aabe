-- Released lines of earlier runs that the routes of run_date carry: due that day, or due before
-- and never dispatched (released late, or their day had no released plan). A line dispatched once
-- (any dispatch_tasks row) is never carried again: a failed delivery goes back to its sender and
-- the next plan plans its receiver afresh. Parameters: run_date.
SELECT
  c.run_id AS source_run_id,
  c.line_type,
  c.line_id,
  c.product_id,
  c.origin_id,
  c.destination_id,
  c.quantity,
  c.value,
  c.expected_arrival
FROM `{dataset}.committed_lines` AS c
LEFT JOIN (
  SELECT DISTINCT source_run_id, line_type, line_id
  FROM `{dataset}.dispatch_tasks`
) AS d
  ON d.source_run_id = c.run_id AND d.line_type = c.line_type AND d.line_id = c.line_id
WHERE c.run_date < @run_date
  AND c.expected_arrival <= @run_date
  AND c.quantity > 0
  AND d.line_id IS NULL
ORDER BY c.line_type, c.run_id, c.line_id
