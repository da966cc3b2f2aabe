-- Distribution-centre orders of the latest complete plan, with centre, store and product names; one row per order line and vehicle load.
--
-- Answers: what each distribution centre ships to which store, now. The plan is the run with
-- status = 'COMPLETE' and the latest finished_at (the run `retailopt` and the API call the latest
-- plan); a RUNNING or FAILED run never shows here.
-- Grain: one row per `replenishment_orders` row, i.e. order_id × shipment_id: a line larger than
-- a vehicle is carried by several loads (rows with the same order_id, whose quantities add up).
-- Names come from the current distribution_centers, stores and products tables.
-- Columns beyond those of replenishment_orders:
--   dc_name, store_name, region (of the store), product_name, category: names
--   order_value: quantity × unit cost, what the order costs to buy
--   retail_value: quantity × regular selling price
--   expected_arrival: the day the plan counts the units as available at the store (run date +
--     lead time of the centre)
--   vehicle_id, route_id, pickup_time, delivery_time (UTC): the vehicle route carrying the load;
--     NULL for a load no route carries (runs.kpis shipments_unrouted)
CREATE OR REPLACE VIEW `{dataset}.latest_plan_orders`
OPTIONS(description = 'Distribution-centre orders of the latest complete plan, with centre, store and product names; one row per order line and vehicle load.')
AS
WITH latest AS (
  SELECT run_id
  FROM `{dataset}.runs`
  WHERE status = 'COMPLETE'
  ORDER BY finished_at DESC, run_id DESC
  LIMIT 1
),
loads AS (
  SELECT
    s.shipment_id,
    MIN(s.vehicle_id) AS vehicle_id,
    MIN(s.route_id) AS route_id,
    MIN(IF(s.visit_type = 'PICKUP', s.arrival_time, NULL)) AS pickup_time,
    MAX(IF(s.visit_type = 'DELIVERY', s.arrival_time, NULL)) AS delivery_time
  FROM `{dataset}.route_stops` AS s
  JOIN latest AS l ON l.run_id = s.run_id
  GROUP BY s.shipment_id
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
JOIN latest AS l ON l.run_id = o.run_id
LEFT JOIN `{dataset}.distribution_centers` AS d ON d.dc_id = o.dc_id
LEFT JOIN `{dataset}.stores` AS s ON s.store_id = o.store_id
LEFT JOIN `{dataset}.products` AS p ON p.product_id = o.product_id
LEFT JOIN loads AS g ON g.shipment_id = o.shipment_id;
