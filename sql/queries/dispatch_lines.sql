-- The lines the routes of run run_id carry, as released: the run's own lines committed by its
-- release (committed_lines, the quantity in force; a line on several loads is one row per load
-- with its planned part; only those due on the run date, the later ones travel on their own day)
-- and the released lines of earlier runs its routes carry (carried_lines).
-- Lines not released (rejected, or the run never released) are left out: nothing is dispatched
-- for them.
WITH committed AS (
  SELECT line_type, line_id, quantity
  FROM `{dataset}.committed_lines`
  WHERE run_id = @run_id
),
own AS (
  SELECT 'TRANSFER' AS line_type, transfer_id AS line_id, product_id, from_store_id AS origin_id,
    to_store_id AS destination_id, quantity AS planned, shipment_id
  FROM `{dataset}.transfers`
  WHERE run_id = @run_id AND COALESCE(expected_arrival, run_date) <= run_date
  UNION ALL
  SELECT 'ORDER', order_id, product_id, dc_id, store_id, quantity, shipment_id
  FROM `{dataset}.replenishment_orders`
  WHERE run_id = @run_id AND expected_arrival <= run_date
)
SELECT @run_id AS source_run_id, o.line_type, o.line_id, o.product_id, o.origin_id, o.destination_id,
  o.planned, c.quantity AS released, o.shipment_id
FROM own AS o
JOIN committed AS c ON c.line_type = o.line_type AND c.line_id = o.line_id
UNION ALL
SELECT source_run_id, line_type, line_id, product_id, origin_id, destination_id, quantity, quantity, shipment_id
FROM `{dataset}.carried_lines`
WHERE run_id = @run_id
ORDER BY source_run_id, line_type, line_id, shipment_id
