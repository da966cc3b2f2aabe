-- Output: lines released by earlier runs that arrive on this run's date, so its routes carry them
-- (with the run's own lines arriving that day).
CREATE TABLE IF NOT EXISTS `{dataset}.carried_lines` (
  run_id STRING NOT NULL OPTIONS(description = 'The run whose routes carry the line'),
  run_date DATE NOT NULL,
  source_run_id STRING NOT NULL OPTIONS(description = 'The released run that planned the line (committed_lines.run_id)'),
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER or ORDER'),
  line_id STRING NOT NULL,
  product_id STRING NOT NULL,
  origin_id STRING NOT NULL,
  destination_id STRING NOT NULL,
  quantity INT64 NOT NULL,
  value FLOAT64 NOT NULL,
  expected_arrival DATE NOT NULL OPTIONS(description = 'The day it was due; earlier than run_date when it was released late or not dispatched on its day'),
  shipment_id STRING OPTIONS(description = 'Vehicle load of this run (route_stops.shipment_id) that carries this row; a line larger than a vehicle is one row per load')
)
PARTITION BY run_date
CLUSTER BY run_id, destination_id, product_id
OPTIONS(description = 'Released lines of earlier runs carried by the routes of a later run');
