-- Output: what each vehicle load of a released plan carries, one row per (line, load): the
-- approved lines at their approved quantities, packed again when planners' decisions changed the
-- loads (written by the release, before its RELEASE row in plan_decisions).
CREATE TABLE IF NOT EXISTS `{dataset}.released_loads` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER or ORDER'),
  line_id STRING NOT NULL OPTIONS(description = 'transfers.transfer_id or replenishment_orders.order_id'),
  product_id STRING NOT NULL,
  source_id STRING NOT NULL OPTIONS(description = 'Sending store or distribution centre'),
  store_id STRING NOT NULL OPTIONS(description = 'Receiving store'),
  quantity INT64 NOT NULL,
  shipment_id STRING NOT NULL OPTIONS(description = 'Vehicle load (released_route_stops.shipment_id) carrying these units')
)
PARTITION BY run_date
CLUSTER BY run_id, shipment_id
OPTIONS(description = 'Loads of released plans: approved lines packed into vehicle loads');
