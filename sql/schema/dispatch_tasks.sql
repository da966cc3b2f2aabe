-- Ledger: the Fleet Engine tasks a released run's routes became, one row per task and line it
-- carries (a pickup task and a delivery task per vehicle load), and what became of them. A line
-- is in transit while its delivery task is OPEN; a closed task says how many units arrived.
CREATE TABLE IF NOT EXISTS `{dataset}.dispatch_tasks` (
  run_id STRING NOT NULL OPTIONS(description = 'The run whose routes were dispatched'),
  run_date DATE NOT NULL OPTIONS(description = 'The route day: the day the task is driven'),
  task_id STRING NOT NULL OPTIONS(description = 'Fleet Engine task id, derived from run, route and stop'),
  task_type STRING NOT NULL OPTIONS(description = 'PICKUP or DELIVERY'),
  vehicle_id STRING NOT NULL OPTIONS(description = 'Fleet Engine delivery vehicle id (vehicles.vehicle_id)'),
  route_id STRING NOT NULL,
  stop_sequence INT64 NOT NULL,
  location_id STRING NOT NULL,
  shipment_id STRING NOT NULL OPTIONS(description = 'Vehicle load (route_stops.shipment_id)'),
  planned_time TIMESTAMP NOT NULL OPTIONS(description = 'Planned arrival at the stop'),
  source_run_id STRING NOT NULL OPTIONS(description = 'The released run that planned the line (committed_lines.run_id)'),
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER or ORDER'),
  line_id STRING NOT NULL,
  product_id STRING NOT NULL,
  origin_id STRING NOT NULL,
  destination_id STRING NOT NULL,
  quantity INT64 NOT NULL OPTIONS(description = 'Units of the line in this load'),
  state STRING NOT NULL OPTIONS(description = 'OPEN or CLOSED (Fleet Engine Task.State)'),
  outcome STRING OPTIONS(description = 'SUCCEEDED or FAILED once closed (Task.TaskOutcome); a partial delivery SUCCEEDED with fewer units'),
  units_delivered INT64 OPTIONS(description = 'Closed delivery: units the receiver took; the rest went back to the sender'),
  closed_at TIMESTAMP,
  closed_by STRING,
  note STRING OPTIONS(description = 'Why a delivery failed or was partial, as the driver gave it')
)
PARTITION BY run_date
CLUSTER BY task_id
OPTIONS(description = 'Dispatched tasks and their outcomes');
