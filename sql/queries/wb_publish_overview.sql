-- Workbench: write the figures of the run (parameter run_id) into plan_overview when the run is
-- published, after its plan_worklist and plan_lines rows (the row says they are complete): lost
-- units and their value at stake before the plan and at the positions still at risk after it
-- (expected_lost_units is the unmet demand over the protection interval if nothing is done), priced
-- at the regular selling price, and how many rows the workbench lists.
INSERT INTO `{dataset}.plan_overview` (run_id, run_date, positions, lost_units_before, lost_value_before,
  lost_units_after, lost_value_after, worklist_positions, transfer_lines, order_lines, published_at)
SELECT
  @run_id,
  @run_date,
  COUNT(*),
  SUM(p.expected_lost_units),
  SUM(p.expected_lost_units * pr.price),
  SUM(IF(p.status_after_plan = 'STOCKOUT_RISK', p.expected_lost_units, 0)),
  SUM(IF(p.status_after_plan = 'STOCKOUT_RISK', p.expected_lost_units * pr.price, 0)),
  (SELECT COUNT(*) FROM `{dataset}.plan_worklist` WHERE run_id = @run_id),
  (SELECT COUNT(*) FROM `{dataset}.plan_lines` WHERE run_id = @run_id AND line_type = 'TRANSFER'),
  (SELECT COUNT(*) FROM `{dataset}.plan_lines` WHERE run_id = @run_id AND line_type = 'ORDER'),
  @published_at
FROM `{dataset}.inventory_policy` AS p
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = p.product_id
WHERE p.run_id = @run_id
