-- Workbench exception worklist of one run: every position at risk or overstocked after the plan,
-- or expecting a load no vehicle route carries, with why the plan did not fix it.
-- Written into plan_worklist when the run is published (retailopt.workbench.store), a block of
-- stores at a time: the stores from parameter store_from to store_to (ids, inclusive).
-- reason_code, first that applies:
--   a plan_exceptions code of the position (its reason and action in exception_reasons)
--   UNROUTED_LOAD: units planned to arrive on the run date on a vehicle load no route carries
--     (vehicle capacity or shift length); the status after the plan counts them as arrived
--   at risk after the plan:
--     SHELF_ROOM: the shelf (inventory.max_capacity) holds less than the reorder point
--     CASE_PACK: one case of the product does not fit the shelf room left after the plan
--     STORE_ROOM: one case does not fit the store's free room (capacity_units less all stock on
--       hand, on order and planned in)
--     NO_DISTRIBUTION_CENTRE: nothing was ordered and no centre supplies the store's region
--   overstocked after the plan:
--     SLOW_MOVER: sells less per day than transfer_sender_min_daily_demand: it does not send
--     NO_SHORTAGE_ELSEWHERE: no store was short of this product
--     STOCK_ON_ORDER: the excess is on order, not on the shelf: only shelf stock can be sent
--     NO_WORTHWHILE_TRANSFER: the stores short of it are beyond max_transfer_km, or moving it
--       earns less than min_transfer_value after handling and transport
--   UNEXPLAINED: none of the above
-- value_at_risk: at risk: expected lost units × price; overstocked: units above the order-up-to
-- level × unit cost; otherwise the unrouted units × price.
WITH run AS (
  SELECT
    run_id,
    run_date,
    SAFE_CAST(JSON_VALUE(parameters, '$.max_transfer_km') AS FLOAT64) AS max_transfer_km,
    SAFE_CAST(JSON_VALUE(parameters, '$.min_transfer_value') AS FLOAT64) AS min_transfer_value,
    COALESCE(SAFE_CAST(JSON_VALUE(parameters, '$.transfer_sender_min_daily_demand') AS FLOAT64),
      SAFE_CAST(JSON_VALUE(parameters, '$.slow_mover_daily_demand') AS FLOAT64), 0) AS sender_min_daily
  FROM `{dataset}.runs`
  WHERE run_id = @run_id
),
-- inbound: units the run's routes should carry today (lines arriving on a later day are routed
-- that day, by that day's plan, so they are not unrouted here).
moves AS (
  SELECT to_store_id AS store_id, product_id, quantity AS units_in, 0 AS units_out, 0 AS units_ordered,
    shipment_id, COALESCE(expected_arrival, run_date) <= run_date AS inbound
  FROM `{dataset}.transfers`
  WHERE run_id = @run_id
    AND to_store_id BETWEEN @store_from AND @store_to
  UNION ALL
  SELECT from_store_id, product_id, 0, quantity, 0, shipment_id, FALSE
  FROM `{dataset}.transfers`
  WHERE run_id = @run_id
    AND from_store_id BETWEEN @store_from AND @store_to
  UNION ALL
  SELECT store_id, product_id, 0, 0, quantity, shipment_id, expected_arrival <= run_date
  FROM `{dataset}.replenishment_orders`
  WHERE run_id = @run_id
    AND store_id BETWEEN @store_from AND @store_to
),
routed AS (
  SELECT DISTINCT shipment_id
  FROM `{dataset}.route_stops`
  WHERE run_id = @run_id
),
planned AS (
  SELECT
    m.store_id,
    m.product_id,
    CAST(SUM(m.units_in) AS INT64) AS units_in,
    CAST(SUM(m.units_out) AS INT64) AS units_out,
    CAST(SUM(m.units_ordered) AS INT64) AS units_ordered,
    CAST(SUM(IF(m.inbound AND g.shipment_id IS NULL, m.units_in + m.units_ordered, 0)) AS INT64) AS units_unrouted
  FROM moves AS m
  LEFT JOIN routed AS g ON g.shipment_id = m.shipment_id
  GROUP BY m.store_id, m.product_id
),
store_room AS (
  SELECT
    p.store_id,
    MIN(s.capacity_units) - SUM(GREATEST(p.on_hand, 0) + GREATEST(p.on_order, 0)
      + COALESCE(m.units_in, 0) - COALESCE(m.units_out, 0) + COALESCE(m.units_ordered, 0)) AS room_after
  FROM `{dataset}.inventory_policy` AS p
  JOIN `{dataset}.stores` AS s ON s.store_id = p.store_id
  LEFT JOIN planned AS m ON m.store_id = p.store_id AND m.product_id = p.product_id
  WHERE p.run_id = @run_id
    AND p.store_id BETWEEN @store_from AND @store_to
  GROUP BY p.store_id
),
exception_rows AS (
  SELECT store_id, product_id, reason_code, CONCAT(reason_code, ': ', reason, ' (', action, ')') AS text
  FROM `{dataset}.plan_exceptions`
  WHERE run_id = @run_id
    AND store_id BETWEEN @store_from AND @store_to
),
exception_counts AS (
  SELECT store_id, product_id, COUNT(*) AS n, MIN(reason_code) AS first_code, MIN(text) AS text
  FROM exception_rows
  GROUP BY store_id, product_id
),
-- Most positions have one exception: only the others pay for an ordered aggregate.
exceptions AS (
  SELECT store_id, product_id, first_code, text AS exception_reasons
  FROM exception_counts
  WHERE n = 1
  UNION ALL
  SELECT e.store_id, e.product_id, MIN(e.reason_code), STRING_AGG(e.text, '; ' ORDER BY e.reason_code)
  FROM exception_rows AS e
  JOIN exception_counts AS c ON c.store_id = e.store_id AND c.product_id = e.product_id AND c.n > 1
  GROUP BY e.store_id, e.product_id
),
shelf AS (
  SELECT i.store_id, i.product_id, i.max_capacity
  FROM `{dataset}.inventory` AS i
  WHERE i.snapshot_date <= (SELECT run_date FROM run)
    AND i.store_id BETWEEN @store_from AND @store_to
  QUALIFY ROW_NUMBER() OVER (PARTITION BY i.store_id, i.product_id ORDER BY i.snapshot_date DESC) = 1
),
short AS (
  SELECT product_id, COUNT(*) AS stores_short
  FROM `{dataset}.inventory_policy`
  WHERE run_id = @run_id AND status = 'STOCKOUT_RISK'
  GROUP BY product_id
),
supplied AS (
  SELECT DISTINCT store_id
  FROM `{dataset}.replenishment_orders`
  WHERE run_id = @run_id
    AND store_id BETWEEN @store_from AND @store_to
),
positions AS (
  SELECT
    p.store_id,
    s.name AS store_name,
    p.product_id,
    pr.name AS product_name,
    pr.category,
    p.status AS status_before_plan,
    p.status_after_plan,
    p.on_hand,
    p.on_order,
    p.safety_stock,
    p.reorder_point,
    p.order_up_to,
    p.mean_daily_demand,
    p.days_of_cover,
    p.expected_lost_units,
    COALESCE(m.units_in, 0) AS units_in,
    COALESCE(m.units_out, 0) AS units_out,
    COALESCE(m.units_ordered, 0) AS units_ordered,
    COALESCE(m.units_unrouted, 0) AS units_unrouted,
    p.on_hand + p.on_order + COALESCE(m.units_in, 0) - COALESCE(m.units_out, 0) + COALESCE(m.units_ordered, 0)
      AS position_after,
    sh.max_capacity,
    pr.case_pack,
    pr.price,
    pr.unit_cost,
    r.room_after AS store_room_after,
    COALESCE(k.stores_short, 0) AS stores_short,
    u.store_id IS NOT NULL AS store_supplied,
    x.first_code,
    x.exception_reasons,
    run.max_transfer_km,
    run.min_transfer_value,
    run.sender_min_daily
  FROM `{dataset}.inventory_policy` AS p
  CROSS JOIN run
  LEFT JOIN `{dataset}.stores` AS s ON s.store_id = p.store_id
  LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = p.product_id
  LEFT JOIN planned AS m ON m.store_id = p.store_id AND m.product_id = p.product_id
  LEFT JOIN shelf AS sh ON sh.store_id = p.store_id AND sh.product_id = p.product_id
  LEFT JOIN store_room AS r ON r.store_id = p.store_id
  LEFT JOIN short AS k ON k.product_id = p.product_id
  LEFT JOIN supplied AS u ON u.store_id = p.store_id
  LEFT JOIN exceptions AS x ON x.store_id = p.store_id AND x.product_id = p.product_id
  WHERE p.run_id = @run_id
    AND (p.status_after_plan IN ('STOCKOUT_RISK', 'OVERSTOCK') OR COALESCE(m.units_unrouted, 0) > 0)
    AND p.store_id BETWEEN @store_from AND @store_to
)
SELECT
  *,
  CASE
    WHEN first_code IS NOT NULL THEN first_code
    WHEN units_unrouted > 0 THEN 'UNROUTED_LOAD'
    WHEN status_after_plan = 'STOCKOUT_RISK' THEN
      CASE
        WHEN max_capacity < CEIL(reorder_point) THEN 'SHELF_ROOM'
        WHEN max_capacity - position_after < case_pack THEN 'CASE_PACK'
        WHEN store_room_after < case_pack THEN 'STORE_ROOM'
        WHEN units_ordered = 0 AND NOT store_supplied THEN 'NO_DISTRIBUTION_CENTRE'
        ELSE 'UNEXPLAINED'
      END
    WHEN status_after_plan = 'OVERSTOCK' THEN
      CASE
        WHEN mean_daily_demand < sender_min_daily THEN 'SLOW_MOVER'
        WHEN stores_short = 0 THEN 'NO_SHORTAGE_ELSEWHERE'
        WHEN on_hand <= CEIL(order_up_to) THEN 'STOCK_ON_ORDER'
        ELSE 'NO_WORTHWHILE_TRANSFER'
      END
    ELSE 'UNEXPLAINED'
  END AS reason_code,
  CASE
    WHEN status_after_plan = 'STOCKOUT_RISK' THEN expected_lost_units * price
    WHEN status_after_plan = 'OVERSTOCK' THEN GREATEST(position_after - order_up_to, 0) * unit_cost
    ELSE units_unrouted * price
  END AS value_at_risk
FROM positions
