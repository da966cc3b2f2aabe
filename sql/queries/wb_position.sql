-- Workbench drill-down of one position of a run (parameters run_id, store_id, product_id): its
-- policy (inventory_policy), names, the shelf it had on the run date, and its worklist row
-- (plan_worklist) when it is at risk, overstocked or waiting for an unrouted load after the plan.
SELECT
  p.store_id,
  p.product_id,
  p.run_date,
  s.name AS store_name,
  pr.name AS product_name,
  pr.category,
  pr.case_pack,
  pr.price,
  pr.unit_cost,
  p.on_hand,
  p.on_order,
  p.mean_daily_demand,
  p.lead_time_days,
  p.review_period_days,
  p.service_level,
  p.safety_stock,
  p.reorder_point,
  p.order_up_to,
  p.days_of_cover,
  p.expected_lost_units,
  p.status AS status_before_plan,
  p.status_after_plan,
  p.exception,
  (SELECT i.max_capacity
   FROM `{dataset}.inventory` AS i
   WHERE i.store_id = p.store_id AND i.product_id = p.product_id AND i.snapshot_date <= p.run_date
   ORDER BY i.snapshot_date DESC
   LIMIT 1) AS shelf_capacity,
  w.reason_code,
  w.exception_reasons,
  w.value_at_risk,
  w.units_in,
  w.units_out,
  w.units_ordered,
  w.units_unrouted,
  w.position_after,
  w.max_capacity,
  w.store_room_after,
  w.stores_short,
  w.max_transfer_km,
  w.min_transfer_value,
  w.sender_min_daily
FROM `{dataset}.inventory_policy` AS p
LEFT JOIN `{dataset}.stores` AS s ON s.store_id = p.store_id
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = p.product_id
LEFT JOIN `{dataset}.plan_worklist` AS w
  ON w.run_id = p.run_id AND w.store_id = p.store_id AND w.product_id = p.product_id
WHERE p.run_id = @run_id AND p.store_id = @store_id AND p.product_id = @product_id
