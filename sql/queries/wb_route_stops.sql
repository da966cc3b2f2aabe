-- Workbench: the stops of some routes of a run (parameters run_id, route_ids), in visiting order
-- (released_route_stops instead for a released run: workbench.views.routes swaps the table name),
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
FROM `{dataset}.route_stops` AS s
LEFT JOIN `{dataset}.stores` AS st ON st.store_id = s.location_id
LEFT JOIN `{dataset}.distribution_centers` AS dc ON dc.dc_id = s.location_id
WHERE s.run_id = @run_id AND s.route_id IN UNNEST(@route_ids)
ORDER BY s.route_id, s.stop_sequence
