-- Workbench transfer or DC order lines of one run (plan_lines, written when the run was
-- published), with the planner's latest decision and the quantity in force (planned, or the
-- latest edit), and its ranks (plan_lines). Parameters: run_id, line_type (TRANSFER or ORDER).
-- Its last clause is the WHERE of the lines l: the workbench adds its filters there (a line, a
-- store, line ranks), where the warehouse applies them before joining the decisions, and wraps
-- the query to add names.
-- decision: APPROVED or REJECTED (the latest APPROVE/REJECT/EDIT row is one of those), PENDING
-- (no decision, or edited since).
-- value: a transfer's expected gain as planned; an order's cost at the quantity in force.
WITH decided AS (
  SELECT line_id, action, new_quantity, reason, decided_by, decided_at, decision_id
  FROM `{dataset}.plan_decisions`
  WHERE run_id = @run_id AND line_type = @line_type AND action IN ('APPROVE', 'REJECT', 'EDIT')
),
latest AS (
  SELECT line_id, action, reason, decided_by, decided_at
  FROM decided
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
),
edited AS (
  SELECT line_id, new_quantity
  FROM decided
  WHERE action = 'EDIT'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
)
SELECT
  l.line_id,
  l.line_type,
  l.product_id,
  l.category,
  l.source_id,
  l.store_id,
  l.planned_quantity,
  l.planned_cases,
  l.planned_value,
  l.cost,
  l.distance_km,
  l.expected_arrival,
  l.loads,
  l.unrouted_loads,
  l.case_pack,
  l.unit_cost,
  l.price,
  l.line_rank,
  l.value_rank,
  l.quantity_rank,
  l.product_rank,
  l.source_rank,
  l.store_rank,
  l.distance_rank,
  l.arrival_rank,
  COALESCE(e.new_quantity, l.planned_quantity) AS quantity,
  IF(l.line_type = 'ORDER', COALESCE(e.new_quantity, l.planned_quantity) * l.unit_cost, l.planned_value) AS value,
  CASE d.action WHEN 'APPROVE' THEN 'APPROVED' WHEN 'REJECT' THEN 'REJECTED' ELSE 'PENDING' END AS decision,
  e.new_quantity IS NOT NULL AS edited,
  d.reason,
  d.decided_by,
  d.decided_at
FROM `{dataset}.plan_lines` AS l
LEFT JOIN latest AS d ON d.line_id = l.line_id
LEFT JOIN edited AS e ON e.line_id = l.line_id
WHERE l.run_id = @run_id
  AND l.line_type = @line_type
