-- A sales file that passed sales_file_check.sql, staged in one statement on the embedded
-- warehouse (file_rows: the Parquet file, scanned in place).
INSERT INTO `{dataset}.sales_staging` (load_id, sale_date, store_id, product_id, units, price, on_promotion)
SELECT @load_id, sale_date, store_id, product_id, units, price, on_promotion
FROM file_rows
