-- A large sales Parquet file checked in one pass before it is loaded (retailopt.ingest): the
-- number of rows and of distinct ids that break a rule of the sales contract, and the days the
-- file covers (repeated keys are looked for apart, on integer key codes: grouping millions of
-- text keys is the slow part of a check). Zero means the file can be staged as it is; otherwise it goes
-- through the row-by-row validation, which reports each bad row with its file, row and field.
-- Every rule here is at least as strict as that validation's: an id with anything around it that
-- the validation would strip (spaces included) counts as bad here.
-- file_rows: the file; known_stores, known_products: the valid ids (column id).
WITH ids AS (
  SELECT DISTINCT store_id AS id, 'store' AS kind FROM file_rows
  UNION ALL
  SELECT DISTINCT product_id, 'product' FROM file_rows
),
bad_ids AS (
  SELECT COUNT(*) AS n
  FROM ids AS i
  LEFT JOIN known_stores AS s ON i.kind = 'store' AND s.id = i.id
  LEFT JOIN known_products AS p ON i.kind = 'product' AND p.id = i.id
  WHERE COALESCE(i.id IS NULL OR TRIM(i.id) != i.id OR i.id = ''
    OR REGEXP_CONTAINS(i.id, @bad_id_chars)
    OR (i.kind = 'store' AND s.id IS NULL) OR (i.kind = 'product' AND p.id IS NULL), TRUE)
)
SELECT
  COUNT(*) AS rows_in,
  COUNTIF(COALESCE(sale_date IS NULL OR units IS NULL OR price IS NULL OR on_promotion IS NULL
    OR sale_date < DATE '1678-01-01' OR sale_date > @as_of
    OR units < 0 OR units > @max_units
    OR IS_NAN(price) OR IS_INF(price) OR price < 0, TRUE)) + (SELECT n FROM bad_ids) AS bad_rows,
  MIN(sale_date) AS first_day,
  MAX(sale_date) AS last_day
FROM file_rows
