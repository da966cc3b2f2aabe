-- Generated from sql/views/latest_plan_orders.sql; do not edit.
-- Distribution-centre orders of the latest complete plan, with centre, store and product names; one row per order line and vehicle load.
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
), loads AS (
  SELECT
    s.shipment_id,
    MIN(s.vehicle_id) AS vehicle_id,
    MIN(s.route_id) AS route_id,
    MIN(IF(s.visit_type = 'PICKUP', s.arrival_time, NULL)) AS pickup_time,
    MAX(IF(s.visit_type = 'DELIVERY', s.arrival_time, NULL)) AS delivery_time
  FROM `{dataset}.route_stops` AS s
  JOIN latest AS l
    ON l.run_id = s.run_id
  GROUP BY
    s.shipment_id
)
SELECT
  o.run_id,
  o.run_date,
  o.order_id,
  o.shipment_id,
  o.dc_id,
  d.name AS dc_name,
  o.store_id,
  s.name AS store_name,
  s.region,
  o.product_id,
  p.name AS product_name,
  p.category,
  o.quantity,
  o.cases,
  o.order_value,
  o.quantity * p.price AS retail_value,
  o.expected_arrival,
  g.vehicle_id,
  g.route_id,
  g.pickup_time,
  g.delivery_time
FROM `{dataset}.replenishment_orders` AS o
JOIN latest AS l
  ON l.run_id = o.run_id
LEFT JOIN `{dataset}.distribution_centers` AS d
  ON d.dc_id = o.dc_id
LEFT JOIN `{dataset}.stores` AS s
  ON s.store_id = o.store_id
LEFT JOIN `{dataset}.products` AS p
  ON p.product_id = o.product_id
LEFT JOIN loads AS g
  ON g.shipment_id = o.shipment_id
