-- Output: one row per vehicle route.
CREATE TABLE IF NOT EXISTS `{dataset}.routes` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  route_id STRING NOT NULL,
  vehicle_id STRING NOT NULL,
  depot_id STRING NOT NULL,
  start_time TIMESTAMP NOT NULL,
  end_time TIMESTAMP NOT NULL,
  distance_km FLOAT64 NOT NULL,
  duration_minutes FLOAT64 NOT NULL,
  stop_count INT64 NOT NULL,
  units_carried INT64 NOT NULL,
  cost FLOAT64 NOT NULL OPTIONS(description = 'Route cost as solved: fixed, per km, per hour, and carbon_cost when carbon_price_per_kg is set'),
  co2_kg FLOAT64 OPTIONS(description = 'kg CO2e: distance_km x co2_kg_per_km of the vehicle'),
  carbon_cost FLOAT64 OPTIONS(description = 'co2_kg x carbon_price_per_kg of the run (part of cost)')
)
PARTITION BY run_date
CLUSTER BY run_id, vehicle_id
OPTIONS(description = 'Vehicle routes');
