-- A sales file that passed sales_file_check.sql, loaded straight into days the warehouse holds
-- no sales of (a first import of a history, a drop of new days) on the embedded warehouse
-- (file_rows: the Parquet file, scanned in place): no staging copy to write and delete again.
INSERT INTO `{dataset}.sales` (sale_date, store_id, product_id, units, price, on_promotion)
SELECT sale_date, store_id, product_id, units, price, on_promotion
FROM file_rows
