-- Ledger: the transfer and order lines a release committed, with the quantity in force. The routes
-- of each line's expected_arrival day carry it, and the next plans count it as stock on order or in
-- transit until its delivery task closes (dispatch_tasks).
CREATE TABLE IF NOT EXISTS `{dataset}.committed_lines` (
  run_id STRING NOT NULL OPTIONS(description = 'The released run that planned the line'),
  run_date DATE NOT NULL,
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER or ORDER'),
  line_id STRING NOT NULL OPTIONS(description = 'transfers.transfer_id or replenishment_orders.order_id'),
  product_id STRING NOT NULL,
  origin_id STRING NOT NULL OPTIONS(description = 'Sending store (transfer) or distribution centre (order)'),
  destination_id STRING NOT NULL OPTIONS(description = 'Receiving store'),
  quantity INT64 NOT NULL OPTIONS(description = 'Units released (the planned quantity or the latest edit)'),
  value FLOAT64 NOT NULL OPTIONS(description = 'Transfer: expected gain; order: cost of the units'),
  expected_arrival DATE NOT NULL OPTIONS(description = 'Delivery day: the routes of this day carry the line'),
  released_at TIMESTAMP NOT NULL,
  released_by STRING NOT NULL
)
PARTITION BY run_date
CLUSTER BY destination_id, product_id
OPTIONS(description = 'Released transfer and order lines');
