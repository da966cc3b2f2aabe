-- Every planning run with its status, timing, error and headline figures; one row per run.
--
-- Answers: which runs happened, which failed and why, how long they took, and how the key figures
-- moved from run to run. Every run shows, whatever its status (RUNNING, COMPLETE or FAILED).
-- Grain: one row per `runs` row. The figures are read from the `kpis` JSON text written when a
-- run finishes (NULL while it runs, and for a failed run); the settings from `parameters`, the
-- effective configuration of the run. What triggered a run and which what-if overrides it had
-- are not recorded in `runs` (overrides are folded into the settings), so they are not here.
-- JSON_VALUE on the JSON text and SAFE_CAST give the same values in BigQuery and, as sqlglot
-- translates them (JSON_VALUE(...) ->> '$', TRY_CAST), in DuckDB; a figure absent is NULL.
-- Columns beyond those of runs:
--   is_latest_plan: the latest complete run, the plan the latest_plan_* and stockout_risk views show
--   duration_s: finished_at - started_at in seconds (NULL while running)
--   positions, positions_at_risk_before, positions_at_risk_after, expected_lost_units (if nothing
--     is done), transfers (lines), units_moved, transfer_value (expected gain), transfer_cost,
--     orders (lines), units_ordered, order_value (cost), vehicles_used, route_km, route_cost, route_co2_kg (kg CO2e),
--     shipments_unrouted (vehicle loads no route carries), quarantined_rows: from kpis
--   chain_id, forecast_engine, routing_engine, horizon_days, service_level, fleet_max_vehicles
--     (NULL: the whole fleet): settings, from parameters
CREATE OR REPLACE VIEW `{dataset}.run_history`
OPTIONS(description = 'Every planning run with its status, timing, error and headline figures; one row per run.')
AS
WITH latest AS (
  SELECT run_id
  FROM `{dataset}.runs`
  WHERE status = 'COMPLETE'
  ORDER BY finished_at DESC, run_id DESC
  LIMIT 1
)
SELECT
  r.run_id,
  r.run_date,
  r.status,
  l.run_id IS NOT NULL AS is_latest_plan,
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
LEFT JOIN latest AS l ON l.run_id = r.run_id;
