-- Workbench: the surplus a sending store has of a product in one run, for validating an edited
-- transfer quantity: shelf stock (on hand, at most the position) above the order-up-to level,
-- less what the run's other transfer lines from that store take (their quantity in force; a
-- rejected line takes nothing).
WITH sender AS (
  SELECT LEAST(on_hand, on_hand + on_order) - CAST(CEIL(order_up_to) AS INT64) AS above_order_up_to
  FROM `{dataset}.inventory_policy`
  WHERE run_id = @run_id AND store_id = @store_id AND product_id = @product_id
)
SELECT (SELECT above_order_up_to FROM sender) AS above_order_up_to
