-- Output: the workbench's figures of one complete run, written when the run is published (one
-- row per run; its presence says the run's plan_worklist and plan_lines rows are complete).
CREATE TABLE IF NOT EXISTS `{dataset}.plan_overview` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  positions INT64 NOT NULL,
  lost_units_before FLOAT64 OPTIONS(description = 'Expected lost units over the protection interval if nothing is done'),
  lost_value_before FLOAT64 OPTIONS(description = 'The same at the regular selling price'),
  lost_units_after FLOAT64 OPTIONS(description = 'Expected lost units at the positions still at risk after the plan'),
  lost_value_after FLOAT64,
  worklist_positions INT64 NOT NULL OPTIONS(description = 'Rows of plan_worklist for the run'),
  transfer_lines INT64 NOT NULL,
  order_lines INT64 NOT NULL,
  published_at TIMESTAMP NOT NULL
)
PARTITION BY run_date
CLUSTER BY run_id
OPTIONS(description = 'Workbench figures per complete run');
