-- A large sales Parquet file checked in one pass before it is loaded (retailopt.ingest): the
-- number of rows that break any rule of the sales contract, and the days the file covers. Zero
-- rows means the file can be staged as it is; otherwise it goes through the row-by-row
-- validation, which reports each bad row with its file, row and field. Every rule here is at
-- least as strict as that validation's (an id with any whitespace but a plain space at its edges
-- counts as bad here, though the validation would strip it).
-- file_rows: the file; known_stores, known_products: the valid ids (column id).
WITH rows_in AS (
  SELECT
    f.sale_date, f.store_id, f.product_id, f.units, f.price, f.on_promotion,
    TRIM(f.store_id) AS store_key,
    TRIM(f.product_id) AS product_key
  FROM file_rows AS f
),
checked AS (
  SELECT
    r.*,
    COALESCE(r.sale_date IS NULL OR r.store_id IS NULL OR r.product_id IS NULL OR r.units IS NULL
      OR r.price IS NULL OR r.on_promotion IS NULL
      OR r.sale_date < DATE '1678-01-01' OR r.sale_date > @as_of
      OR r.units < 0 OR r.units > @max_units
      OR IS_NAN(r.price) OR IS_INF(r.price) OR r.price < 0
      OR r.store_key = '' OR r.product_key = ''
      OR REGEXP_CONTAINS(r.store_id, @bad_id_chars) OR REGEXP_CONTAINS(r.product_id, @bad_id_chars)
      OR s.id IS NULL OR p.id IS NULL, TRUE) AS bad
  FROM rows_in AS r
  LEFT JOIN known_stores AS s ON s.id = r.store_key
  LEFT JOIN known_products AS p ON p.id = r.product_key
),
repeated AS (
  SELECT COUNT(*) AS n
  FROM (
    SELECT sale_date, store_key, product_key
    FROM rows_in
    GROUP BY sale_date, store_key, product_key
    HAVING COUNT(*) > 1
  ) AS keys
)
SELECT
  COUNT(*) AS rows_in,
  COUNTIF(bad) AS bad_rows,
  (SELECT n FROM repeated) AS repeated_keys,
  MIN(sale_date) AS first_day,
  MAX(sale_date) AS last_day
FROM checked
