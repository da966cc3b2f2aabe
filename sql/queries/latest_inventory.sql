-- The most recent stock snapshot of every store and product.
SELECT snapshot_date, store_id, product_id, on_hand, on_order, max_capacity
FROM `{dataset}.inventory`
QUALIFY ROW_NUMBER() OVER (PARTITION BY store_id, product_id ORDER BY snapshot_date DESC) = 1
