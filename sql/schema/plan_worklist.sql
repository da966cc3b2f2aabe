-- Output: the exception worklist of a run (sql/queries/wb_worklist.sql), written when the run is
-- published: every position at risk or overstocked after the plan, or waiting for a load no
-- route carries, with the reason the plan did not fix it, ranked by value at risk.
CREATE TABLE IF NOT EXISTS `{dataset}.plan_worklist` (
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  position_rank INT64 NOT NULL OPTIONS(description = '1 = largest value at risk of the run (then store, product)'),
  store_rank INT64 NOT NULL OPTIONS(description = 'The same rank among the positions of the store'),
  category_rank INT64 NOT NULL OPTIONS(description = 'The same rank among the positions of the category'),
  reason_rank INT64 NOT NULL OPTIONS(description = 'The same rank among the positions of the reason'),
  store_id STRING NOT NULL,
  product_id STRING NOT NULL,
  category STRING,
  status_before_plan STRING,
  status_after_plan STRING,
  reason_code STRING NOT NULL OPTIONS(description = 'A plan_exceptions code, or UNROUTED_LOAD, SHELF_ROOM, CASE_PACK, STORE_ROOM, NO_DISTRIBUTION_CENTRE, SLOW_MOVER, NO_SHORTAGE_ELSEWHERE, STOCK_ON_ORDER, NO_WORTHWHILE_TRANSFER, UNEXPLAINED'),
  exception_reasons STRING OPTIONS(description = 'The plan_exceptions rows of the position: code, reason and action'),
  value_at_risk FLOAT64 OPTIONS(description = 'At risk: expected lost units x price; overstocked: units above the order-up-to level x unit cost; otherwise unrouted units x price'),
  on_hand INT64,
  on_order INT64,
  safety_stock FLOAT64,
  reorder_point FLOAT64,
  order_up_to FLOAT64,
  mean_daily_demand FLOAT64,
  days_of_cover FLOAT64,
  expected_lost_units FLOAT64,
  units_in INT64,
  units_out INT64,
  units_ordered INT64,
  units_unrouted INT64,
  position_after INT64,
  max_capacity INT64,
  case_pack INT64,
  store_room_after INT64,
  stores_short INT64,
  max_transfer_km FLOAT64,
  min_transfer_value FLOAT64,
  sender_min_daily FLOAT64
)
PARTITION BY run_date
CLUSTER BY run_id, store_id, reason_code
OPTIONS(description = 'Exception worklist per complete run');
