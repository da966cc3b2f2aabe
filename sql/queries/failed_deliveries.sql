-- Delivery tasks closed with fewer units than they carried, driven since the last complete plan
-- before run_date (and before run_date): the next plan lists each line as a DELIVERY_FAILED
-- exception of its receiving position. The units went back to the sender (stock_position.sql).
WITH previous AS (
  SELECT MAX(run_date) AS run_date
  FROM `{dataset}.runs`
  WHERE status = 'COMPLETE' AND run_date < @run_date
)
SELECT
  t.destination_id AS store_id,
  t.product_id,
  t.line_type,
  t.line_id,
  t.origin_id,
  t.run_date AS route_day,
  t.task_id,
  t.quantity,
  COALESCE(t.units_delivered, 0) AS units_delivered,
  t.outcome,
  t.note
FROM `{dataset}.dispatch_tasks` AS t
CROSS JOIN previous AS p
WHERE t.task_type = 'DELIVERY'
  AND t.state = 'CLOSED'
  AND COALESCE(t.units_delivered, 0) < t.quantity
  AND t.run_date < @run_date
  AND t.run_date >= COALESCE(p.run_date, DATE '1970-01-01')
ORDER BY t.destination_id, t.product_id, t.line_id
