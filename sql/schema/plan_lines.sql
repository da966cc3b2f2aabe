-- Output: the transfer and distribution-centre order lines of a run as the workbench lists them
-- (a line carried by several vehicle loads is one row), written when the run is published.
-- Planners' decisions stay in plan_decisions; the quantity in force is read from both. Each
-- line's rank within its type by every key a page sorts by (ascending; a key's page is a range
-- of its rank, read without sorting the run's lines): the planned quantity and value, and the
-- names as they were at publishing.
CREATE TABLE IF NOT EXISTS `{dataset}.plan_lines` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER (transfers.transfer_id) or ORDER (replenishment_orders.order_id)'),
  line_id STRING NOT NULL,
  product_id STRING NOT NULL,
  category STRING,
  source_id STRING NOT NULL OPTIONS(description = 'Sending store (TRANSFER) or distribution centre (ORDER)'),
  store_id STRING NOT NULL OPTIONS(description = 'Receiving store'),
  planned_quantity INT64 NOT NULL,
  planned_cases INT64,
  planned_value FLOAT64 OPTIONS(description = 'TRANSFER: expected gain; ORDER: order value'),
  cost FLOAT64 OPTIONS(description = 'TRANSFER: handling and transport cost'),
  distance_km FLOAT64,
  expected_arrival DATE,
  loads INT64 NOT NULL OPTIONS(description = 'Vehicle loads carrying the line'),
  unrouted_loads INT64 NOT NULL OPTIONS(description = 'Of those, loads no route carries'),
  case_pack INT64,
  unit_cost FLOAT64,
  price FLOAT64,
  line_rank INT64 NOT NULL OPTIONS(description = 'Rank among the lines of its type by line id (1 = first), then by itself in the ranks below'),
  value_rank INT64 NOT NULL OPTIONS(description = 'By planned_value, then line id'),
  quantity_rank INT64 NOT NULL OPTIONS(description = 'By planned_quantity, then line id'),
  product_rank INT64 NOT NULL OPTIONS(description = 'By product name, then line id'),
  source_rank INT64 NOT NULL OPTIONS(description = 'By sending store or centre name, then line id'),
  store_rank INT64 NOT NULL OPTIONS(description = 'By receiving store name, then line id'),
  distance_rank INT64 NOT NULL OPTIONS(description = 'By distance_km, then line id'),
  arrival_rank INT64 NOT NULL OPTIONS(description = 'By expected_arrival, then line id')
)
PARTITION BY run_date
CLUSTER BY run_id, line_type, store_id
OPTIONS(description = 'Transfer and order lines per complete run, for the workbench');
