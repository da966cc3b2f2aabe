-- Output: input rows rejected by validation, with the reason.
CREATE TABLE IF NOT EXISTS `{dataset}.quarantine` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  source_file STRING NOT NULL,
  row_number INT64 OPTIONS(description = '1-based data row in the file; NULL for a file-level problem'),
  column_name STRING,
  reason STRING NOT NULL,
  raw_record STRING OPTIONS(description = 'The rejected row as JSON')
)
PARTITION BY run_date
CLUSTER BY run_id
OPTIONS(description = 'Rejected input rows');
