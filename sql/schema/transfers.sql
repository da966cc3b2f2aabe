-- Output: planned store-to-store transfers.
CREATE TABLE IF NOT EXISTS `{dataset}.transfers` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  transfer_id STRING NOT NULL,
  product_id STRING NOT NULL,
  from_store_id STRING NOT NULL,
  to_store_id STRING NOT NULL,
  quantity INT64 NOT NULL,
  value FLOAT64 NOT NULL OPTIONS(description = 'Expected gain: lost sales avoided at the receiver less those caused at the sender'),
  cost FLOAT64 NOT NULL OPTIONS(description = 'Handling and transport cost'),
  distance_km FLOAT64 NOT NULL,
  expected_arrival DATE OPTIONS(description = 'Delivery day: run date + transfer_lead_days; the routes of that day carry it'),
  shipment_id STRING OPTIONS(description = 'Vehicle load (route shipment <consignment>-<k>) that carries this row; a line larger than a vehicle is one row per load with the same transfer_id')
)
PARTITION BY run_date
CLUSTER BY run_id, from_store_id, product_id
OPTIONS(description = 'Store-to-store transfers');
