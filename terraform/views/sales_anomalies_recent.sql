-- Generated from sql/views/sales_anomalies_recent.sql; do not edit.
-- Sales spikes and dips of the days before the latest complete plan, with store and product names and how many unusual days in a row each belongs to; one row per anomalous store × product × day.
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
), found AS (
  SELECT
    a.*,
    DATE_DIFF(a.sale_date, CAST('2000-01-01' AS DATE), DAY) - ROW_NUMBER() OVER (PARTITION BY a.store_id, a.product_id, a.kind ORDER BY a.sale_date) AS island
  FROM `{dataset}.sales_anomalies` AS a
  JOIN latest AS l
    ON l.run_id = a.run_id
), streaks AS (
  SELECT
    store_id,
    product_id,
    kind,
    island,
    CAST(COUNT(*) AS INT64) AS consecutive_days
  FROM found
  GROUP BY
    store_id,
    product_id,
    kind,
    island
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
  (
    f.units - f.expected
  ) * p.price AS deviation_value,
  f.lower_bound,
  f.upper_bound,
  f.anomaly_probability,
  r.consecutive_days,
  f.on_promotion,
  f.excluded_from_training,
  f.method
FROM found AS f
JOIN streaks AS r
  ON r.store_id = f.store_id
  AND r.product_id = f.product_id
  AND r.kind = f.kind
  AND r.island = f.island
LEFT JOIN `{dataset}.stores` AS s
  ON s.store_id = f.store_id
LEFT JOIN `{dataset}.products` AS p
  ON p.product_id = f.product_id
