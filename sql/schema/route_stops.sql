-- Output: the ordered visits of each route.
CREATE TABLE IF NOT EXISTS `{dataset}.route_stops` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  route_id STRING NOT NULL,
  vehicle_id STRING NOT NULL,
  stop_sequence INT64 NOT NULL,
  location_id STRING NOT NULL,
  latitude FLOAT64 NOT NULL,
  longitude FLOAT64 NOT NULL,
  visit_type STRING NOT NULL OPTIONS(description = 'PICKUP or DELIVERY'),
  shipment_id STRING NOT NULL OPTIONS(description = 'Vehicle load picked up or delivered (transfers.shipment_id, replenishment_orders.shipment_id)'),
  units INT64 NOT NULL,
  arrival_time TIMESTAMP NOT NULL
)
PARTITION BY run_date
CLUSTER BY run_id, route_id
OPTIONS(description = 'Route stops in visiting order');
