-- Workbench comparison of two runs: transfer and order lines whose quantity differs between run
-- run_a and run run_b (a line in one run only counts as 0 in the other), with names.
-- Lines are matched by what they move: product, sender and receiver (transfers), centre, store
-- and product (orders).
WITH a_moves AS (
  SELECT 'TRANSFER' AS kind, product_id, from_store_id AS source_id, to_store_id AS store_id, quantity
  FROM `{dataset}.transfers` WHERE run_id = @run_a
  UNION ALL
  SELECT 'ORDER', product_id, dc_id, store_id, quantity
  FROM `{dataset}.replenishment_orders` WHERE run_id = @run_a
),
b_moves AS (
  SELECT 'TRANSFER' AS kind, product_id, from_store_id AS source_id, to_store_id AS store_id, quantity
  FROM `{dataset}.transfers` WHERE run_id = @run_b
  UNION ALL
  SELECT 'ORDER', product_id, dc_id, store_id, quantity
  FROM `{dataset}.replenishment_orders` WHERE run_id = @run_b
),
a AS (
  SELECT kind, product_id, source_id, store_id, CAST(SUM(quantity) AS INT64) AS quantity
  FROM a_moves GROUP BY kind, product_id, source_id, store_id
),
b AS (
  SELECT kind, product_id, source_id, store_id, CAST(SUM(quantity) AS INT64) AS quantity
  FROM b_moves GROUP BY kind, product_id, source_id, store_id
),
changed AS (
  SELECT
    COALESCE(a.kind, b.kind) AS kind,
    COALESCE(a.product_id, b.product_id) AS product_id,
    COALESCE(a.source_id, b.source_id) AS source_id,
    COALESCE(a.store_id, b.store_id) AS store_id,
    COALESCE(a.quantity, 0) AS quantity_a,
    COALESCE(b.quantity, 0) AS quantity_b
  FROM a
  FULL OUTER JOIN b
    ON a.kind = b.kind AND a.product_id = b.product_id AND a.source_id = b.source_id AND a.store_id = b.store_id
  WHERE a.quantity IS NULL OR b.quantity IS NULL OR a.quantity <> b.quantity
)
SELECT
  c.*,
  c.quantity_b - c.quantity_a AS delta,
  pr.name AS product_name,
  COALESCE(ss.name, dc.name) AS source_name,
  st.name AS store_name,
  COUNT(*) OVER () AS total
FROM changed AS c
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = c.product_id
LEFT JOIN `{dataset}.stores` AS ss ON c.kind = 'TRANSFER' AND ss.store_id = c.source_id
LEFT JOIN `{dataset}.distribution_centers` AS dc ON c.kind = 'ORDER' AND dc.dc_id = c.source_id
LEFT JOIN `{dataset}.stores` AS st ON st.store_id = c.store_id
ORDER BY ABS(c.quantity_b - c.quantity_a) DESC, c.kind, c.product_id, c.source_id, c.store_id
LIMIT @limit OFFSET @offset
