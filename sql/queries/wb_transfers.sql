-- Workbench transfer lines of one run (a line carried by several vehicle loads is one line), with
-- names, the planner's latest decision and the quantity in force (planned, or the latest edit).
-- Filters (NULL: all): line_id, store_id (sending or receiving), category parameters. The workbench wraps
-- it to filter by decision, sort and page.
-- decision: APPROVED or REJECTED (latest APPROVE/REJECT/EDIT row is one of those), PENDING
-- (no decision, or edited since).
WITH routed AS (
  SELECT DISTINCT shipment_id
  FROM `{dataset}.route_stops`
  WHERE run_id = @run_id
),
lines AS (
  SELECT
    t.transfer_id AS line_id,
    MIN(t.product_id) AS product_id,
    MIN(t.from_store_id) AS from_store_id,
    MIN(t.to_store_id) AS to_store_id,
    CAST(SUM(t.quantity) AS INT64) AS planned_quantity,
    SUM(t.value) AS value,
    SUM(t.cost) AS cost,
    MAX(t.distance_km) AS distance_km,
    COUNT(*) AS loads,
    COUNTIF(g.shipment_id IS NULL) AS unrouted_loads
  FROM `{dataset}.transfers` AS t
  LEFT JOIN routed AS g ON g.shipment_id = t.shipment_id
  WHERE t.run_id = @run_id AND (@line_id IS NULL OR t.transfer_id = @line_id)
  GROUP BY t.transfer_id
),
latest AS (
  SELECT line_id, action, reason, decided_by, decided_at
  FROM `{dataset}.plan_decisions`
  WHERE run_id = @run_id AND line_type = 'TRANSFER' AND action IN ('APPROVE', 'REJECT', 'EDIT')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
),
edited AS (
  SELECT line_id, new_quantity
  FROM `{dataset}.plan_decisions`
  WHERE run_id = @run_id AND line_type = 'TRANSFER' AND action = 'EDIT'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
)
SELECT
  l.*,
  pr.name AS product_name,
  pr.category,
  pr.price,
  sf.name AS from_store_name,
  st.name AS to_store_name,
  COALESCE(e.new_quantity, l.planned_quantity) AS quantity,
  CASE d.action WHEN 'APPROVE' THEN 'APPROVED' WHEN 'REJECT' THEN 'REJECTED' ELSE 'PENDING' END AS decision,
  e.new_quantity IS NOT NULL AS edited,
  d.reason,
  d.decided_by,
  d.decided_at
FROM lines AS l
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = l.product_id
LEFT JOIN `{dataset}.stores` AS sf ON sf.store_id = l.from_store_id
LEFT JOIN `{dataset}.stores` AS st ON st.store_id = l.to_store_id
LEFT JOIN latest AS d ON d.line_id = l.line_id
LEFT JOIN edited AS e ON e.line_id = l.line_id
WHERE (@store_id IS NULL OR l.from_store_id = @store_id OR l.to_store_id = @store_id)
  AND (@category IS NULL OR pr.category = @category)
