-- Workbench comparison of two runs, a block of stores at a time: the transfer and order lines
-- (plan_lines) whose planned quantity differs between run run_a and run run_b, for the
-- receiving stores from store_from to store_to (ids, inclusive; parameters). A line in one run
-- only counts as 0 in the other. Lines are matched by what they move: product, sender and
-- receiver (transfers), centre, store and product (orders). The workbench sorts the blocks'
-- rows together (largest change first) and adds names to the page it shows.
WITH a AS (
  SELECT line_type AS kind, product_id, source_id, store_id, SUM(planned_quantity) AS quantity
  FROM `{dataset}.plan_lines`
  WHERE run_id = @run_a AND store_id BETWEEN @store_from AND @store_to
  GROUP BY line_type, product_id, source_id, store_id
),
b AS (
  SELECT line_type AS kind, product_id, source_id, store_id, SUM(planned_quantity) AS quantity
  FROM `{dataset}.plan_lines`
  WHERE run_id = @run_b AND store_id BETWEEN @store_from AND @store_to
  GROUP BY line_type, product_id, source_id, store_id
)
SELECT
  COALESCE(a.kind, b.kind) AS kind,
  COALESCE(a.product_id, b.product_id) AS product_id,
  COALESCE(a.source_id, b.source_id) AS source_id,
  COALESCE(a.store_id, b.store_id) AS store_id,
  CAST(COALESCE(a.quantity, 0) AS INT64) AS quantity_a,
  CAST(COALESCE(b.quantity, 0) AS INT64) AS quantity_b
FROM a
FULL OUTER JOIN b
  ON a.kind = b.kind AND a.product_id = b.product_id AND a.source_id = b.source_id AND a.store_id = b.store_id
WHERE a.quantity IS NULL OR b.quantity IS NULL OR a.quantity <> b.quantity
