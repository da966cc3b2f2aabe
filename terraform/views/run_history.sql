-- Generated from sql/views/run_history.sql; do not edit.
-- Every planning run with its status, timing, error and headline figures; one row per run.
WITH latest AS (
  SELECT
    run_id
  FROM `{dataset}.runs`
  WHERE
    status = 'COMPLETE'
  ORDER BY
    finished_at DESC,
    run_id DESC
  LIMIT 1
)
SELECT
  r.run_id,
  r.run_date,
  r.status,
  NOT l.run_id IS NULL AS is_latest_plan,
  r.started_at,
  r.finished_at,
  TIMESTAMP_DIFF(r.finished_at, r.started_at, MILLISECOND) / 1000 AS duration_s,
  r.error,
  r.heartbeat_at,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.positions') AS INT64) AS positions,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.positions_at_risk_before') AS INT64) AS positions_at_risk_before,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.positions_at_risk_after') AS INT64) AS positions_at_risk_after,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.expected_lost_units') AS FLOAT64) AS expected_lost_units,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.transfers') AS INT64) AS transfers,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.units_moved') AS INT64) AS units_moved,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.transfer_value') AS FLOAT64) AS transfer_value,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.transfer_cost') AS FLOAT64) AS transfer_cost,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.orders') AS INT64) AS orders,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.units_ordered') AS INT64) AS units_ordered,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.order_value') AS FLOAT64) AS order_value,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.vehicles_used') AS INT64) AS vehicles_used,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.route_km') AS FLOAT64) AS route_km,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.route_cost') AS FLOAT64) AS route_cost,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.route_co2_kg') AS FLOAT64) AS route_co2_kg,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.shipments_unrouted') AS INT64) AS shipments_unrouted,
  SAFE_CAST(JSON_VALUE(r.kpis, '$.quarantined_rows') AS INT64) AS quarantined_rows,
  JSON_VALUE(r.parameters, '$.chain_id') AS chain_id,
  JSON_VALUE(r.parameters, '$.forecast_engine') AS forecast_engine,
  JSON_VALUE(r.parameters, '$.routing_engine') AS routing_engine,
  SAFE_CAST(JSON_VALUE(r.parameters, '$.horizon_days') AS INT64) AS horizon_days,
  SAFE_CAST(JSON_VALUE(r.parameters, '$.service_level') AS FLOAT64) AS service_level,
  SAFE_CAST(JSON_VALUE(r.parameters, '$.fleet_max_vehicles') AS INT64) AS fleet_max_vehicles
FROM `{dataset}.runs` AS r
LEFT JOIN latest AS l
  ON l.run_id = r.run_id
