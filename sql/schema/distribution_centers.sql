-- Input: one row per distribution centre.
CREATE TABLE IF NOT EXISTS `{dataset}.distribution_centers` (
  dc_id STRING NOT NULL,
  name STRING NOT NULL,
  latitude FLOAT64 NOT NULL,
  longitude FLOAT64 NOT NULL,
  region STRING NOT NULL,
  open_time TIME NOT NULL,
  close_time TIME NOT NULL,
  lead_time_days INT64 NOT NULL OPTIONS(description = 'Days from order to delivery at a store')
)
OPTIONS(description = 'Distribution centres that supply the stores');
