-- The transfer and order lines of run run_id as planned (the loads of a line summed), in the
-- columns of committed_lines: what a release without review commits.
SELECT 'TRANSFER' AS line_type, transfer_id AS line_id, MIN(product_id) AS product_id,
  MIN(from_store_id) AS origin_id, MIN(to_store_id) AS destination_id, CAST(SUM(quantity) AS INT64) AS quantity,
  SUM(value) AS value, MIN(COALESCE(expected_arrival, run_date)) AS expected_arrival
FROM `{dataset}.transfers`
WHERE run_id = @run_id
GROUP BY transfer_id
UNION ALL
SELECT 'ORDER', order_id, MIN(product_id), MIN(dc_id), MIN(store_id), CAST(SUM(quantity) AS INT64),
  SUM(order_value), MIN(expected_arrival)
FROM `{dataset}.replenishment_orders`
WHERE run_id = @run_id
GROUP BY order_id
ORDER BY line_type, line_id
