-- Inventory targets and status per store and product in the latest completed run.
WITH latest AS (
  SELECT run_id, run_date
  FROM `{project}.{dataset}.runs`
  WHERE status = 'COMPLETE'
  QUALIFY ROW_NUMBER() OVER (ORDER BY run_date DESC, finished_at DESC) = 1
)
SELECT
  p.run_date,
  p.store_id,
  s.name AS store_name,
  s.region,
  p.product_id,
  pr.name AS product_name,
  pr.category,
  p.on_hand,
  p.on_order,
  p.mean_daily_demand,
  p.service_level,
  p.safety_stock,
  p.reorder_point,
  p.order_up_to,
  p.days_of_cover,
  p.expected_lost_units,
  p.status,
  p.status_after_plan,
  p.exception
FROM `{project}.{dataset}.inventory_policy` AS p
JOIN latest AS r ON p.run_id = r.run_id AND p.run_date = r.run_date
LEFT JOIN `{project}.{dataset}.stores` AS s ON s.store_id = p.store_id
LEFT JOIN `{project}.{dataset}.products` AS pr ON pr.product_id = p.product_id
