-- Sales spikes and dips of the days before the latest complete plan, with store and product names and how many unusual days in a row each belongs to; one row per anomalous store × product × day.
--
-- Answers: which sales days the forecast found unusual just before the current plan, by how much,
-- whether the forecast was fitted without them, and whether a day stands alone (a data error, a
-- one-off order) or belongs to several unusual days in a row (a promotion, a local event, a
-- stock-out). The plan is the run with status = 'COMPLETE' and the latest finished_at; each run
-- judges the 28 days before its run date (sales_anomalies).
-- Grain: one row per `sales_anomalies` row of that run. Names come from the current stores and
-- products tables.
-- Columns beyond those of sales_anomalies:
--   store_name, region, product_name, category: names
--   days_before_run: run_date - sale_date (1 = the day before the run)
--   deviation_units: units - expected (> 0 for a spike); deviation_value prices it at the
--     product's regular selling price
--   consecutive_days: anomalous days of the same kind in a row that this day belongs to (1 = it stands
--     alone; an isolated spike is the one kind the forecast may leave out of its fit)
-- Portability: the days in a row are found by numbering each series' days of a kind and
-- subtracting the number from the day (DATE_DIFF to a fixed date), which BigQuery and DuckDB
-- (as sqlglot translates it) compute alike; DuckDB counts to HUGEINT, hence CAST(COUNT AS INT64).
CREATE OR REPLACE VIEW `{dataset}.sales_anomalies_recent`
OPTIONS(description = 'Sales spikes and dips of the days before the latest complete plan, with store and product names and how many unusual days in a row each belongs to; one row per anomalous store × product × day.')
AS
WITH latest AS (
  SELECT run_id
  FROM `{dataset}.runs`
  WHERE status = 'COMPLETE'
  ORDER BY finished_at DESC, run_id DESC
  LIMIT 1
),
found AS (
  SELECT
    a.*,
    DATE_DIFF(a.sale_date, DATE '2000-01-01', DAY)
      - ROW_NUMBER() OVER (PARTITION BY a.store_id, a.product_id, a.kind ORDER BY a.sale_date) AS island
  FROM `{dataset}.sales_anomalies` AS a
  JOIN latest AS l ON l.run_id = a.run_id
),
streaks AS (
  SELECT store_id, product_id, kind, island, CAST(COUNT(*) AS INT64) AS consecutive_days
  FROM found
  GROUP BY store_id, product_id, kind, island
)
SELECT
  f.run_id,
  f.run_date,
  f.sale_date,
  DATE_DIFF(f.run_date, f.sale_date, DAY) AS days_before_run,
  f.store_id,
  s.name AS store_name,
  s.region,
  f.product_id,
  p.name AS product_name,
  p.category,
  f.kind,
  f.units,
  f.expected,
  f.units - f.expected AS deviation_units,
  (f.units - f.expected) * p.price AS deviation_value,
  f.lower_bound,
  f.upper_bound,
  f.anomaly_probability,
  r.consecutive_days,
  f.on_promotion,
  f.excluded_from_training,
  f.method
FROM found AS f
JOIN streaks AS r
  ON r.store_id = f.store_id AND r.product_id = f.product_id AND r.kind = f.kind AND r.island = f.island
LEFT JOIN `{dataset}.stores` AS s ON s.store_id = f.store_id
LEFT JOIN `{dataset}.products` AS p ON p.product_id = f.product_id;
