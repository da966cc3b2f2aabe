-- Workbench plan overview of one run: lost units and their value at stake before the plan and at
-- the positions still at risk after it (expected_lost_units is the unmet demand over the
-- protection interval if nothing is done), priced at the regular selling price.
SELECT
  COUNT(*) AS positions,
  SUM(p.expected_lost_units) AS lost_units_before,
  SUM(p.expected_lost_units * pr.price) AS lost_value_before,
  SUM(IF(p.status_after_plan = 'STOCKOUT_RISK', p.expected_lost_units, 0)) AS lost_units_after,
  SUM(IF(p.status_after_plan = 'STOCKOUT_RISK', p.expected_lost_units * pr.price, 0)) AS lost_value_after
FROM `{dataset}.inventory_policy` AS p
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = p.product_id
WHERE p.run_id = @run_id
