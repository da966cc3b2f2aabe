-- Workbench routes of one run (parameter run_id), in order of departure, one page (limit,
-- offset), with the name of the depot each starts from: the planned routes, or the released ones
-- (parameter released: the run is released).
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
  COUNT(*) OVER () AS total
FROM (
  SELECT route_id, vehicle_id, depot_id, start_time, end_time, distance_km, duration_minutes, stop_count, units_carried, cost
  FROM `{dataset}.routes` WHERE run_id = @run_id AND NOT @released
  UNION ALL
  SELECT route_id, vehicle_id, depot_id, start_time, end_time, distance_km, duration_minutes, stop_count, units_carried, cost
  FROM `{dataset}.released_routes` WHERE run_id = @run_id AND @released
) AS r
LEFT JOIN `{dataset}.distribution_centers` AS dc ON dc.dc_id = r.depot_id
LEFT JOIN `{dataset}.stores` AS st ON st.store_id = r.depot_id
ORDER BY r.start_time, r.vehicle_id, r.route_id
LIMIT @limit OFFSET @offset
