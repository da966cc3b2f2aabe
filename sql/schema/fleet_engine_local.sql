-- The one-machine Fleet Engine stand-in's state (retailopt.dispatch.local_fleet): delivery vehicles
-- and tasks as the Fleet Engine Deliveries API would hold them, each as the API's own JSON. In the
-- cloud Fleet Engine holds them and this table stays empty.
CREATE TABLE IF NOT EXISTS `{dataset}.fleet_engine_local` (
  name STRING NOT NULL OPTIONS(description = 'providers/<provider>/deliveryVehicles/<id> or providers/<provider>/tasks/<id>'),
  kind STRING NOT NULL OPTIONS(description = 'DeliveryVehicle or Task'),
  payload STRING NOT NULL OPTIONS(description = 'The resource as JSON (google.maps.fleetengine_delivery_v1 types)'),
  updated_at TIMESTAMP NOT NULL
)
CLUSTER BY name
OPTIONS(description = 'Fleet Engine stand-in state (one machine and tests)');
