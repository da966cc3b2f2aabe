-- Workbench distribution-centre order lines of one run (a line carried by several vehicle loads
-- is one line), with names, case pack, the planner's latest decision and the quantity in force.
-- Filters (NULL: all): line_id, store_id, category parameters. Decisions as in wb_transfers.sql.
WITH routed AS (
  SELECT DISTINCT shipment_id
  FROM `{dataset}.route_stops`
  WHERE run_id = @run_id
),
lines AS (
  SELECT
    o.order_id AS line_id,
    MIN(o.dc_id) AS dc_id,
    MIN(o.store_id) AS store_id,
    MIN(o.product_id) AS product_id,
    CAST(SUM(o.quantity) AS INT64) AS planned_quantity,
    CAST(SUM(o.cases) AS INT64) AS planned_cases,
    SUM(o.order_value) AS planned_value,
    MIN(o.expected_arrival) AS expected_arrival,
    COUNT(*) AS loads,
    COUNTIF(g.shipment_id IS NULL) AS unrouted_loads
  FROM `{dataset}.replenishment_orders` AS o
  LEFT JOIN routed AS g ON g.shipment_id = o.shipment_id
  WHERE o.run_id = @run_id AND (@line_id IS NULL OR o.order_id = @line_id)
  GROUP BY o.order_id
),
latest AS (
  SELECT line_id, action, reason, decided_by, decided_at
  FROM `{dataset}.plan_decisions`
  WHERE run_id = @run_id AND line_type = 'ORDER' AND action IN ('APPROVE', 'REJECT', 'EDIT')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
),
edited AS (
  SELECT line_id, new_quantity
  FROM `{dataset}.plan_decisions`
  WHERE run_id = @run_id AND line_type = 'ORDER' AND action = 'EDIT'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
)
SELECT
  l.*,
  pr.name AS product_name,
  pr.category,
  pr.case_pack,
  pr.unit_cost,
  s.name AS store_name,
  c.name AS dc_name,
  COALESCE(e.new_quantity, l.planned_quantity) AS quantity,
  COALESCE(e.new_quantity, l.planned_quantity) * pr.unit_cost AS order_value,
  CASE d.action WHEN 'APPROVE' THEN 'APPROVED' WHEN 'REJECT' THEN 'REJECTED' ELSE 'PENDING' END AS decision,
  e.new_quantity IS NOT NULL AS edited,
  d.reason,
  d.decided_by,
  d.decided_at
FROM lines AS l
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = l.product_id
LEFT JOIN `{dataset}.stores` AS s ON s.store_id = l.store_id
LEFT JOIN `{dataset}.distribution_centers` AS c ON c.dc_id = l.dc_id
LEFT JOIN latest AS d ON d.line_id = l.line_id
LEFT JOIN edited AS e ON e.line_id = l.line_id
WHERE (@store_id IS NULL OR l.store_id = @store_id)
  AND (@category IS NULL OR pr.category = @category)
