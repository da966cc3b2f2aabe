-- Internal: rows of one stock-snapshot import on their way into `inventory` (one MERGE per
-- import). Rows live only while their import runs.
CREATE TABLE IF NOT EXISTS `{dataset}.inventory_staging` (
  load_id STRING NOT NULL OPTIONS(description = 'The import these rows belong to'),
  snapshot_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  on_hand INT64 NOT NULL,
  on_order INT64 NOT NULL,
  max_capacity INT64 NOT NULL
)
CLUSTER BY load_id
OPTIONS(description = 'Internal staging of stock snapshot imports');
