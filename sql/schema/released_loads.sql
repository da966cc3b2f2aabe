-- Output: what each vehicle load of a released plan carries, one row per (line, load): the
-- approved lines at their approved quantities and the released lines of earlier runs its routes
-- carry (carried_lines), packed again when planners' decisions changed the loads (written by the
-- release, before its RELEASE row in plan_decisions). Dispatch sends these to the drivers.
CREATE TABLE IF NOT EXISTS `{dataset}.released_loads` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  source_run_id STRING NOT NULL OPTIONS(description = 'The run that planned the line: this run, or an earlier one for a carried line'),
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER or ORDER'),
  line_id STRING NOT NULL OPTIONS(description = 'transfers.transfer_id or replenishment_orders.order_id'),
  product_id STRING NOT NULL,
  source_id STRING NOT NULL OPTIONS(description = 'Sending store or distribution centre'),
  store_id STRING NOT NULL OPTIONS(description = 'Receiving store'),
  quantity INT64 NOT NULL,
  expected_arrival DATE OPTIONS(description = 'Delivery day: loads due later are routed by the plan of their day'),
  shipment_id STRING NOT NULL OPTIONS(description = 'Vehicle load (released_route_stops.shipment_id) carrying these units')
)
PARTITION BY run_date
CLUSTER BY run_id, shipment_id
OPTIONS(description = 'Loads of released plans: approved lines packed into vehicle loads');
