-- Workbench routes of one run (parameter run_id), in order of departure, one page (limit,
-- offset), with the name of the depot each starts from. A released run's page reads
-- released_routes instead (workbench.views.routes swaps the table name).
SELECT
  r.route_id,
  r.vehicle_id,
  r.depot_id,
  COALESCE(dc.name, st.name) AS depot_name,
  r.start_time,
  r.end_time,
  r.distance_km,
  r.duration_minutes,
  r.stop_count,
  r.units_carried,
  r.cost,
  -- A scalar count, not COUNT(*) OVER (): that window over these joins hit a DuckDB 1.5 internal
  -- error now and then, which invalidates the database for the whole process.
  (SELECT COUNT(*) FROM `{dataset}.routes` WHERE run_id = @run_id) AS total
FROM `{dataset}.routes` AS r
LEFT JOIN `{dataset}.distribution_centers` AS dc ON dc.dc_id = r.depot_id
LEFT JOIN `{dataset}.stores` AS st ON st.store_id = r.depot_id
WHERE r.run_id = @run_id
ORDER BY r.start_time, r.vehicle_id, r.route_id
LIMIT @limit OFFSET @offset
