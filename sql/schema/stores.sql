-- Input: one row per store.
CREATE TABLE IF NOT EXISTS `{dataset}.stores` (
  store_id STRING NOT NULL OPTIONS(description = 'Store identifier'),
  name STRING NOT NULL,
  latitude FLOAT64 NOT NULL OPTIONS(description = 'WGS84, -90..90'),
  longitude FLOAT64 NOT NULL OPTIONS(description = 'WGS84, -180..180'),
  region STRING NOT NULL,
  receiving_open TIME NOT NULL OPTIONS(description = 'Earliest time a delivery is accepted'),
  receiving_close TIME NOT NULL OPTIONS(description = 'Latest time a delivery is accepted'),
  capacity_units INT64 NOT NULL OPTIONS(description = 'Total shelf and backroom capacity, units')
)
OPTIONS(description = 'Stores of the chain');
