-- Stock movements planned by the latest completed run: store-to-store transfers and distribution-centre orders.
WITH latest AS (
  SELECT run_id, run_date
  FROM `{project}.{dataset}.runs`
  WHERE status = 'COMPLETE'
  QUALIFY ROW_NUMBER() OVER (ORDER BY run_date DESC, finished_at DESC) = 1
)
SELECT
  t.run_date,
  'TRANSFER' AS movement,
  t.transfer_id AS movement_id,
  t.from_store_id AS origin_id,
  t.to_store_id AS store_id,
  t.product_id,
  t.quantity,
  t.cost,
  CAST(NULL AS DATE) AS expected_arrival
FROM `{project}.{dataset}.transfers` AS t
JOIN latest AS r ON t.run_id = r.run_id AND t.run_date = r.run_date
UNION ALL
SELECT
  o.run_date,
  'ORDER' AS movement,
  o.order_id AS movement_id,
  o.dc_id AS origin_id,
  o.store_id,
  o.product_id,
  o.quantity,
  o.order_value AS cost,
  o.expected_arrival
FROM `{project}.{dataset}.replenishment_orders` AS o
JOIN latest AS r ON o.run_id = r.run_id AND o.run_date = r.run_date
