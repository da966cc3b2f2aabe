-- Generated from sql/views/latest_plan_transfers.sql; do not edit.
-- Store-to-store transfers of the latest complete plan, with store and product names; one row per transfer line and vehicle load.
WITH latest AS (
  SELECT
    run_id,
    parameters
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
  t.run_id,
  t.run_date,
  t.transfer_id,
  t.shipment_id,
  t.product_id,
  p.name AS product_name,
  p.category,
  t.from_store_id,
  sf.name AS from_store_name,
  sf.region AS from_region,
  t.to_store_id,
  st.name AS to_store_name,
  st.region AS to_region,
  t.quantity,
  t.value,
  t.cost,
  t.value - t.cost AS net_value,
  t.quantity * p.price AS retail_value,
  t.distance_km,
  CAST(DATE_ADD(t.run_date, INTERVAL (SAFE_CAST(JSON_VALUE(l.parameters, '$.transfer_lead_days') AS INT64)) DAY) AS DATE) AS expected_arrival,
  g.vehicle_id,
  g.route_id,
  g.pickup_time,
  g.delivery_time
FROM `{dataset}.transfers` AS t
JOIN latest AS l
  ON l.run_id = t.run_id
LEFT JOIN `{dataset}.products` AS p
  ON p.product_id = t.product_id
LEFT JOIN `{dataset}.stores` AS sf
  ON sf.store_id = t.from_store_id
LEFT JOIN `{dataset}.stores` AS st
  ON st.store_id = t.to_store_id
LEFT JOIN loads AS g
  ON g.shipment_id = t.shipment_id
