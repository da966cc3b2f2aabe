-- Internal: rows of one sales import on their way into `sales` (one MERGE per import makes the
-- load atomic in BigQuery too). Rows live only while their import runs.
CREATE TABLE IF NOT EXISTS `{dataset}.sales_staging` (
  load_id STRING NOT NULL OPTIONS(description = 'The import these rows belong to'),
  sale_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  units INT64 NOT NULL,
  price FLOAT64 NOT NULL,
  on_promotion BOOL NOT NULL
)
CLUSTER BY load_id
OPTIONS(description = 'Internal staging of sales imports');
