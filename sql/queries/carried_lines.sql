-- Released lines of earlier runs that the routes of the day run_date carry: due that day, or due
-- before and not dispatched in full (released late, their day had no released plan, or part of
-- them was on a load no route carried): the units no delivery task has carried yet. A unit
-- dispatched once is never carried again: a failed delivery goes back to its sender and the
-- next plan plans its receiver afresh. A transfer whose delivery day is before cancel_before
-- (run_date less transfer_max_wait_days) was cancelled: its sender keeps the units the trucks
-- never took (cancelled_transfers.sql). Only runs of dates before released_before count (the
-- planning run's date: a re-plan or what-if of a released date never carries that date's own
-- lines). Parameters: run_date, cancel_before, released_before.
SELECT
  c.run_id AS source_run_id,
  c.line_type,
  c.line_id,
  c.product_id,
  c.origin_id,
  c.destination_id,
  c.quantity - COALESCE(d.dispatched, 0) AS quantity,
  c.value * (c.quantity - COALESCE(d.dispatched, 0)) / c.quantity AS value,
  c.expected_arrival
FROM `{dataset}.committed_lines` AS c
LEFT JOIN (
  SELECT source_run_id, line_type, line_id, SUM(quantity) AS dispatched
  FROM `{dataset}.dispatch_tasks`
  WHERE task_type = 'DELIVERY'
  GROUP BY source_run_id, line_type, line_id
) AS d
  ON d.source_run_id = c.run_id AND d.line_type = c.line_type AND d.line_id = c.line_id
WHERE c.run_date < @released_before
  AND c.expected_arrival <= @run_date
  AND c.quantity > COALESCE(d.dispatched, 0)
  AND (c.line_type <> 'TRANSFER' OR c.expected_arrival >= @cancel_before)
ORDER BY c.line_type, c.run_id, c.line_id
