-- Released transfers cancelled because no truck took them: a transfer line whose delivery day is
-- before cancel_before (run_date less transfer_max_wait_days) with units no delivery task carried.
-- Those units stay at the sender and are no longer on order at the receiver (stock_position.sql,
-- carried_lines.sql). With the day of the last complete plan before run_date, so that each plan
-- reports the lines cancelled since the previous one. Parameters: run_date, cancel_before.
WITH previous AS (
  SELECT MAX(run_date) AS run_date
  FROM `{dataset}.runs`
  WHERE status = 'COMPLETE' AND run_date < @run_date
),
dispatched AS (
  SELECT source_run_id, line_type, line_id, SUM(quantity) AS units
  FROM `{dataset}.dispatch_tasks`
  WHERE task_type = 'DELIVERY' AND run_date < @run_date
  GROUP BY source_run_id, line_type, line_id
)
SELECT
  c.run_id AS source_run_id,
  c.line_id,
  c.product_id,
  c.origin_id,
  c.destination_id AS store_id,
  c.quantity,
  c.quantity - COALESCE(d.units, 0) AS cancelled_units,
  c.value,
  c.expected_arrival,
  p.run_date AS previous_plan
FROM `{dataset}.committed_lines` AS c
LEFT JOIN dispatched AS d
  ON d.source_run_id = c.run_id AND d.line_type = c.line_type AND d.line_id = c.line_id
CROSS JOIN previous AS p
WHERE c.line_type = 'TRANSFER'
  AND c.run_date < @run_date
  AND c.expected_arrival < @cancel_before
  AND c.quantity > COALESCE(d.units, 0)
ORDER BY c.destination_id, c.product_id, c.line_id
