-- Workbench: the stops of some routes of a run (parameters run_id, route_ids; released: of its
-- released routes rather than the planned ones), in visiting order,
-- with the place's name (store or distribution centre) and a store's receiving window (local
-- times).
SELECT
  s.route_id,
  s.vehicle_id,
  s.stop_sequence,
  s.location_id,
  COALESCE(st.name, dc.name) AS place_name,
  st.store_id IS NOT NULL AS is_store,
  st.receiving_open,
  st.receiving_close,
  s.latitude,
  s.longitude,
  s.visit_type,
  s.shipment_id,
  s.units,
  s.arrival_time
FROM (
  SELECT route_id, vehicle_id, stop_sequence, location_id, latitude, longitude, visit_type, shipment_id, units, arrival_time
  FROM `{dataset}.route_stops` WHERE run_id = @run_id AND NOT @released
  UNION ALL
  SELECT route_id, vehicle_id, stop_sequence, location_id, latitude, longitude, visit_type, shipment_id, units, arrival_time
  FROM `{dataset}.released_route_stops` WHERE run_id = @run_id AND @released
) AS s
LEFT JOIN `{dataset}.stores` AS st ON st.store_id = s.location_id
LEFT JOIN `{dataset}.distribution_centers` AS dc ON dc.dc_id = s.location_id
WHERE s.route_id IN UNNEST(@route_ids)
ORDER BY s.route_id, s.stop_sequence
