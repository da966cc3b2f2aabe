-- Output: positions that could not be planned normally, one row per reason.
CREATE TABLE IF NOT EXISTS `{dataset}.plan_exceptions` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  reason_code STRING NOT NULL OPTIONS(description = 'NEGATIVE_STOCK, CAPACITY_BELOW_STOCK, MISSING_COST, UNKNOWN_PRODUCT, LEAD_TIME_MISSING, NO_FORECAST, NO_INVENTORY, BAD_CASE_PACK, CAPACITY_BELOW_TARGET (a shelf smaller than the target), STORE_CAPACITY (a distribution-centre order cut to the free space of the store) SHELF_ROOM_AT_DELIVERY (an order cut below the reorder point to fit the shelf on its delivery day) UNROUTED_LOAD (a line on a vehicle load no route carries: the reason names the load, its units and value) DELIVERY_FAILED (a released line delivered short since the last plan) or TRANSFER_CANCELLED (a released transfer no truck took within transfer_max_wait_days of its delivery day, cancelled since the last plan)'),
  reason STRING NOT NULL OPTIONS(description = 'What is wrong, with the offending values'),
  action STRING NOT NULL OPTIONS(description = 'What the plan did about it')
)
PARTITION BY run_date
CLUSTER BY run_id, store_id, product_id
OPTIONS(description = 'Planning exceptions per store and product');
