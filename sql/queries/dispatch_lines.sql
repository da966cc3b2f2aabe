-- The lines the released routes of run run_id carry, load by load (released_loads, written by the
-- release): the run's own lines at the quantities in force and the released lines of earlier runs
-- its routes carry. Lines not released (rejected, undecided, or the run never released) are not
-- there: nothing is dispatched for them. planned and released are the load's quantity (the release
-- packed the loads for the released quantities).
SELECT source_run_id, line_type, line_id, product_id, source_id AS origin_id, store_id AS destination_id,
  quantity AS planned, quantity AS released, shipment_id
FROM `{dataset}.released_loads`
WHERE run_id = @run_id
  -- Loads due later travel on their own day (a later plan carries them).
  AND COALESCE(expected_arrival, run_date) <= run_date
ORDER BY source_run_id, line_type, line_id, shipment_id
