-- Generated from sql/views/forecast_accuracy_weekly.sql; do not edit.
-- Realised forecast accuracy per ISO week and product category: forecasts of complete runs against the sales that followed; one row per week × category.
WITH freshest AS (
  SELECT
    f.run_id,
    r.run_date,
    f.store_id,
    f.product_id,
    f.forecast_date,
    f.forecast_mean,
    f.lower_bound,
    f.upper_bound,
    f.confidence_level,
    ROW_NUMBER() OVER (
      PARTITION BY f.store_id, f.product_id, f.forecast_date
      ORDER BY r.run_date DESC, r.finished_at DESC, r.run_id DESC
    ) AS rank_by_freshness
  FROM `{dataset}.forecasts` AS f
  JOIN `{dataset}.runs` AS r
    ON r.run_id = f.run_id
  WHERE
    r.status = 'COMPLETE' AND f.forecast_date >= r.run_date
), loaded_days AS (
  SELECT DISTINCT
    store_id,
    sale_date
  FROM `{dataset}.sales`
), actuals AS (
  SELECT
    store_id,
    product_id,
    sale_date,
    CAST(SUM(units) AS INT64) AS units
  FROM `{dataset}.sales`
  GROUP BY
    store_id,
    product_id,
    sale_date
), scored AS (
  SELECT
    f.*,
    COALESCE(a.units, 0) AS actual_units
  FROM freshest AS f
  JOIN loaded_days AS d
    ON d.store_id = f.store_id AND d.sale_date = f.forecast_date
  LEFT JOIN actuals AS a
    ON a.store_id = f.store_id
    AND a.product_id = f.product_id
    AND a.sale_date = f.forecast_date
  WHERE
    f.rank_by_freshness = 1
)
SELECT
  CAST(DATE_TRUNC(c.forecast_date, WEEK(MONDAY)) AS DATE) AS week_start,
  EXTRACT(ISOYEAR FROM c.forecast_date) AS iso_year,
  CAST(FORMAT_DATE('%V', c.forecast_date) AS INT64) AS iso_week,
  p.category,
  COUNT(
    DISTINCT CONCAT(CAST(LENGTH(c.store_id) AS STRING), ':', c.store_id, c.product_id)
  ) AS series,
  COUNT(*) AS series_days,
  MIN(c.forecast_date) AS first_day,
  MAX(c.forecast_date) AS last_day,
  COUNT(DISTINCT c.run_id) AS runs,
  AVG(DATE_DIFF(c.forecast_date, c.run_date, DAY)) AS mean_lead_days,
  CAST(SUM(c.actual_units) AS INT64) AS actual_units,
  SUM(c.forecast_mean) AS forecast_units,
  SUM(ABS(c.forecast_mean - c.actual_units)) AS abs_error_units,
  SAFE_DIVIDE(SUM(ABS(c.forecast_mean - c.actual_units)), SUM(c.actual_units)) AS wape,
  SAFE_DIVIDE(SUM(c.forecast_mean) - SUM(c.actual_units), SUM(c.actual_units)) AS bias,
  AVG(IF(c.actual_units BETWEEN c.lower_bound AND c.upper_bound, 1, 0)) AS interval_coverage,
  AVG(c.confidence_level) AS confidence_level
FROM scored AS c
LEFT JOIN `{dataset}.products` AS p
  ON p.product_id = c.product_id
GROUP BY
  week_start,
  iso_year,
  iso_week,
  p.category
