-- Workbench: write the transfer (parameter line_type TRANSFER) or distribution-centre order
-- (ORDER) lines of the run (parameter run_id) into plan_lines when the run is published: a line
-- carried by several vehicle loads is one row, with how many of its loads no route carries; the
-- product's category, case pack, cost and price as the plan used them; and the line's rank by
-- every key the transfer and order pages sort by (ascending, ties by line id). Names are ranked
-- once per store, centre and product, and each rank is its own window over a few numbers of each
-- line (one sort each), joined to the lines once.
INSERT INTO `{dataset}.plan_lines` (run_id, run_date, line_type, line_id, product_id, category, source_id,
  store_id, planned_quantity, planned_cases, planned_value, cost, distance_km, expected_arrival, loads,
  unrouted_loads, case_pack, unit_cost, price, line_rank, value_rank, quantity_rank, product_rank, source_rank,
  store_rank, distance_rank, arrival_rank)
WITH routed AS (
  SELECT DISTINCT shipment_id
  FROM `{dataset}.route_stops`
  WHERE run_id = @run_id
),
moves AS (
  SELECT transfer_id AS line_id, product_id, from_store_id AS source_id, to_store_id AS store_id, quantity,
    CAST(NULL AS INT64) AS cases, value, cost, distance_km, expected_arrival, shipment_id
  FROM `{dataset}.transfers`
  WHERE run_id = @run_id AND @line_type = 'TRANSFER'
  UNION ALL
  SELECT order_id, product_id, dc_id, store_id, quantity, cases, order_value, CAST(NULL AS FLOAT64),
    CAST(NULL AS FLOAT64), expected_arrival, shipment_id
  FROM `{dataset}.replenishment_orders`
  WHERE run_id = @run_id AND @line_type = 'ORDER'
),
lines AS (
  SELECT
    m.line_id,
    MIN(m.product_id) AS product_id,
    MIN(m.source_id) AS source_id,
    MIN(m.store_id) AS store_id,
    CAST(SUM(m.quantity) AS INT64) AS planned_quantity,
    CAST(SUM(m.cases) AS INT64) AS planned_cases,
    SUM(m.value) AS planned_value,
    SUM(m.cost) AS cost,
    MAX(m.distance_km) AS distance_km,
    MIN(m.expected_arrival) AS expected_arrival,
    COUNT(*) AS loads,
    -- A load arriving on a later day is routed by that day's plan: not unrouted here.
    COUNTIF(g.shipment_id IS NULL AND COALESCE(m.expected_arrival, @run_date) <= @run_date) AS unrouted_loads
  FROM moves AS m
  LEFT JOIN routed AS g ON g.shipment_id = m.shipment_id
  GROUP BY m.line_id
),
places AS (
  SELECT 'S' AS kind, store_id AS place_id, name FROM `{dataset}.stores`
  UNION ALL
  SELECT 'D', dc_id, name FROM `{dataset}.distribution_centers`
),
place_order AS (
  SELECT kind, place_id, ROW_NUMBER() OVER (ORDER BY name, kind, place_id) AS place_rank
  FROM places
),
product_order AS (
  SELECT product_id, ROW_NUMBER() OVER (ORDER BY name, product_id) AS name_rank
  FROM `{dataset}.products`
),
by_line AS (
  SELECT
    l.line_id,
    ROW_NUMBER() OVER (ORDER BY l.line_id) AS line_rank,
    l.planned_value,
    l.planned_quantity,
    l.distance_km,
    l.expected_arrival,
    p.name_rank AS product_key,
    s.place_rank AS source_key,
    t.place_rank AS store_key
  FROM lines AS l
  LEFT JOIN product_order AS p ON p.product_id = l.product_id
  LEFT JOIN place_order AS s ON s.place_id = l.source_id AND s.kind = IF(@line_type = 'ORDER', 'D', 'S')
  LEFT JOIN place_order AS t ON t.place_id = l.store_id AND t.kind = 'S'
),
by_value AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY planned_value, line_rank) AS value_rank FROM by_line
),
by_quantity AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY planned_quantity, line_rank) AS quantity_rank FROM by_value
),
by_product AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY product_key, line_rank) AS product_rank FROM by_quantity
),
by_source AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY source_key, line_rank) AS source_rank FROM by_product
),
by_store AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY store_key, line_rank) AS store_rank FROM by_source
),
by_distance AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY distance_km, line_rank) AS distance_rank FROM by_store
),
ranked AS (
  SELECT *, ROW_NUMBER() OVER (ORDER BY expected_arrival, line_rank) AS arrival_rank FROM by_distance
)
SELECT @run_id, @run_date, @line_type, l.line_id, l.product_id, pr.category, l.source_id, l.store_id,
  l.planned_quantity, l.planned_cases, l.planned_value, l.cost, l.distance_km, l.expected_arrival, l.loads,
  l.unrouted_loads, pr.case_pack, pr.unit_cost, pr.price, r.line_rank, r.value_rank, r.quantity_rank,
  r.product_rank, r.source_rank, r.store_rank, r.distance_rank, r.arrival_rank
FROM lines AS l
JOIN ranked AS r ON r.line_id = l.line_id
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = l.product_id
-- Stored by receiving store: a page or comparison of a few stores reads a few blocks.
ORDER BY l.store_id, l.line_id
