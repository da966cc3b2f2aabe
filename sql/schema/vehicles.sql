-- Input: the fleet.
CREATE TABLE IF NOT EXISTS `{dataset}.vehicles` (
  vehicle_id STRING NOT NULL,
  depot_id STRING NOT NULL OPTIONS(description = 'Distribution centre or store where the vehicle starts and ends'),
  capacity_units INT64 NOT NULL,
  capacity_kg FLOAT64,
  cost_per_km FLOAT64 NOT NULL,
  cost_per_hour FLOAT64 NOT NULL,
  fixed_cost FLOAT64 NOT NULL,
  co2_kg_per_km FLOAT64 OPTIONS(description = 'kg CO2e per km driven; optional column, empty: retailopt.routing.emissions.DEFAULT_CO2_KG_PER_KM (UK DESNZ/DEFRA HGV diesel factor)'),
  shift_start TIME NOT NULL,
  shift_end TIME NOT NULL
)
OPTIONS(description = 'Vehicles available for transfers and deliveries');
