-- Generated from sql/views/stockout_risk.sql; do not edit.
-- Store × product positions at stockout risk before or after the latest complete plan, with names, targets, lost sales and exceptions; one row per position.
WITH latest AS (
  SELECT
    run_id
  FROM `{dataset}.runs`
  WHERE
    status = 'COMPLETE'
  ORDER BY
    finished_at DESC,
    run_id DESC
  LIMIT 1
), moves AS (
  SELECT
    t.to_store_id AS store_id,
    t.product_id,
    t.quantity AS units_in,
    0 AS units_out,
    0 AS units_ordered
  FROM `{dataset}.transfers` AS t
  JOIN latest AS l
    ON l.run_id = t.run_id
  UNION ALL
  SELECT
    t.from_store_id,
    t.product_id,
    0,
    t.quantity,
    0
  FROM `{dataset}.transfers` AS t
  JOIN latest AS l
    ON l.run_id = t.run_id
  UNION ALL
  SELECT
    o.store_id,
    o.product_id,
    0,
    0,
    o.quantity
  FROM `{dataset}.replenishment_orders` AS o
  JOIN latest AS l
    ON l.run_id = o.run_id
), planned AS (
  SELECT
    store_id,
    product_id,
    CAST(SUM(units_in) AS INT64) AS units_in,
    CAST(SUM(units_out) AS INT64) AS units_out,
    CAST(SUM(units_ordered) AS INT64) AS units_ordered
  FROM moves
  GROUP BY
    store_id,
    product_id
), exceptions AS (
  SELECT
    e.store_id,
    e.product_id,
    STRING_AGG(e.reason_code, ', '
    ORDER BY
      e.reason_code) AS codes,
    STRING_AGG(
      CONCAT(e.reason_code, ': ', e.reason, ' (', e.action, ')'), '; '
      ORDER BY
        e.reason_code
    ) AS reasons
  FROM `{dataset}.plan_exceptions` AS e
  JOIN latest AS l
    ON l.run_id = e.run_id
  GROUP BY
    e.store_id,
    e.product_id
)
SELECT
  p.run_id,
  p.run_date,
  p.store_id,
  s.name AS store_name,
  s.region,
  p.product_id,
  pr.name AS product_name,
  pr.category,
  p.status AS status_before_plan,
  p.status_after_plan,
  CASE
    WHEN p.status <> 'STOCKOUT_RISK'
    THEN 'AT_RISK_AFTER_PLAN'
    WHEN p.status_after_plan IS NULL
    THEN 'UNKNOWN_AFTER_PLAN'
    WHEN p.status_after_plan = 'STOCKOUT_RISK'
    THEN 'REMAINS_AT_RISK'
    ELSE 'RESOLVED_BY_PLAN'
  END AS risk_outcome,
  p.on_hand,
  p.on_order,
  COALESCE(m.units_in, 0) AS transfer_units_in,
  COALESCE(m.units_out, 0) AS transfer_units_out,
  COALESCE(m.units_ordered, 0) AS ordered_units,
  p.on_hand + p.on_order + COALESCE(m.units_in, 0) - COALESCE(m.units_out, 0) + COALESCE(m.units_ordered, 0) AS position_after_plan,
  p.safety_stock,
  p.reorder_point,
  p.order_up_to,
  p.mean_daily_demand,
  p.days_of_cover,
  p.lead_time_days,
  p.service_level,
  p.expected_lost_units,
  p.expected_lost_units * pr.price AS lost_sales_value,
  p.expected_lost_units * (
    pr.price - pr.unit_cost
  ) AS lost_margin,
  x.codes AS exception_codes,
  x.reasons AS exception_reasons
FROM `{dataset}.inventory_policy` AS p
JOIN latest AS l
  ON l.run_id = p.run_id
LEFT JOIN `{dataset}.stores` AS s
  ON s.store_id = p.store_id
LEFT JOIN `{dataset}.products` AS pr
  ON pr.product_id = p.product_id
LEFT JOIN planned AS m
  ON m.store_id = p.store_id AND m.product_id = p.product_id
LEFT JOIN exceptions AS x
  ON x.store_id = p.store_id AND x.product_id = p.product_id
WHERE
  p.status = 'STOCKOUT_RISK' OR p.status_after_plan = 'STOCKOUT_RISK'
