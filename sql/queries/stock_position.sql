-- The stock of every store and product a plan of run_date starts from: the latest snapshot
-- (inventory) with what retailopt's own released lines (committed_lines, released by runs before
-- run_date) and their deliveries (dispatch_tasks) changed after the snapshot's date S.
-- A snapshot counts stock at the end of its day, and the ERP's open orders, which include a line
-- released on or before S. So, per line of quantity q, with route_day the day its delivery tasks
-- were driven, closed the units whose delivery task is CLOSED and delivered those the receiver took:
--   receiver on_order  += the open units (q - closed)
--                         less what the snapshot already counts as on order (released on or before
--                         S: q, less the units closed on or before S)
--   receiver on_hand   += delivered, when route_day > S
--   sender on_hand     -= the open units, unless they left on or before S (dispatched by then);
--                         -= delivered, when route_day > S (the undelivered rest came back)
-- A transfer never dispatched in full by cancel_before (run_date less transfer_max_wait_days) after
-- its delivery day is cancelled: its undispatched units (cancelled) are neither on order at the
-- receiver nor reserved at the sender, which keeps them. The ERP hears of no cancellation, so a
-- snapshot still counts such a line on order as released.
-- Positions without a snapshot are not planned, so their lines change nothing here.
WITH plan AS (
  SELECT @run_date AS run_date
),
snapshot AS (
  SELECT snapshot_date, store_id, product_id, on_hand, on_order, max_capacity
  FROM `{dataset}.inventory`
  QUALIFY ROW_NUMBER() OVER (PARTITION BY store_id, product_id ORDER BY snapshot_date DESC) = 1
),
delivered AS (
  SELECT
    source_run_id,
    line_type,
    line_id,
    MAX(run_date) AS route_day,
    SUM(IF(state = 'CLOSED', quantity, 0)) AS closed_units,
    SUM(IF(state = 'CLOSED', COALESCE(units_delivered, 0), 0)) AS delivered_units,
    SUM(quantity) AS dispatched_units
  FROM `{dataset}.dispatch_tasks`
  WHERE task_type = 'DELIVERY' AND run_date < (SELECT run_date FROM plan)
  GROUP BY source_run_id, line_type, line_id
),
lines AS (
  SELECT
    c.run_date AS release_day,
    c.line_type,
    c.product_id,
    c.origin_id,
    c.destination_id,
    c.quantity,
    d.route_day,
    COALESCE(d.closed_units, 0) AS closed_units,
    COALESCE(d.delivered_units, 0) AS delivered_units,
    IF(c.line_type = 'TRANSFER' AND c.expected_arrival < @cancel_before,
       GREATEST(c.quantity - COALESCE(d.dispatched_units, 0), 0), 0) AS cancelled_units
  FROM `{dataset}.committed_lines` AS c
  LEFT JOIN delivered AS d
    ON d.source_run_id = c.run_id AND d.line_type = c.line_type AND d.line_id = c.line_id
  WHERE c.run_date < (SELECT run_date FROM plan)
),
receiving AS (
  SELECT
    l.destination_id AS store_id,
    l.product_id,
    SUM(l.quantity - l.closed_units - l.cancelled_units
      - IF(l.release_day <= s.snapshot_date,
           l.quantity - IF(l.route_day <= s.snapshot_date, l.closed_units, 0), 0)) AS on_order_change,
    SUM(IF(l.route_day > s.snapshot_date, l.delivered_units, 0)) AS on_hand_change
  FROM lines AS l
  JOIN snapshot AS s ON s.store_id = l.destination_id AND s.product_id = l.product_id
  GROUP BY l.destination_id, l.product_id
),
sending AS (
  SELECT
    l.origin_id AS store_id,
    l.product_id,
    -SUM(IF(l.route_day IS NULL OR l.route_day > s.snapshot_date, l.quantity - l.closed_units - l.cancelled_units, 0)
      + IF(l.route_day > s.snapshot_date, l.delivered_units, 0)) AS on_hand_change
  FROM lines AS l
  JOIN snapshot AS s ON s.store_id = l.origin_id AND s.product_id = l.product_id
  WHERE l.line_type = 'TRANSFER'
  GROUP BY l.origin_id, l.product_id
)
SELECT
  s.snapshot_date,
  s.store_id,
  s.product_id,
  CAST(s.on_hand + COALESCE(r.on_hand_change, 0) + COALESCE(t.on_hand_change, 0) AS INT64) AS on_hand,
  CAST(s.on_order + COALESCE(r.on_order_change, 0) AS INT64) AS on_order,
  s.max_capacity,
  CAST(COALESCE(r.on_hand_change, 0) + COALESCE(t.on_hand_change, 0) AS INT64) AS on_hand_change,
  CAST(COALESCE(r.on_order_change, 0) AS INT64) AS on_order_change
FROM snapshot AS s
LEFT JOIN receiving AS r ON r.store_id = s.store_id AND r.product_id = s.product_id
LEFT JOIN sending AS t ON t.store_id = s.store_id AND t.product_id = s.product_id
