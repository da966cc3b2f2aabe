-- Realised forecast accuracy per ISO week and product category: forecasts of complete runs against the sales that followed; one row per week × category.
--
-- Answers: how good were the forecasts the plans used, week by week, and is a category over- or
-- under-forecast.
-- Why not the forecast_accuracy table: it holds the rolling-origin backtests each run makes on
-- past data (per series and horizon, dated by the run): how the model would have done before the
-- run. This view scores the forecasts the plans actually used against the sales recorded
-- afterwards, by calendar week, which the backtests cannot.
-- Which forecast: for each store × product × day, the one of the latest complete run dated on or
-- before that day (the freshest forecast a plan had; among runs of one date, the last finished).
-- Which days: a store's day counts once `sales` holds a row for that store and day (its sales are
-- loaded); a product without a row that day sold 0 units (sales stores no zero rows). Days not
-- loaded yet, and days a store sold nothing at all, are left out.
-- Columns:
--   week_start (Monday), iso_year, iso_week: the ISO 8601 week of the forecast days
--   category: product category (NULL for a product no longer in products)
--   series: store × product series scored; series_days: store × product × days scored
--   first_day, last_day: the days of the week scored (a week in progress ends early)
--   runs: complete runs whose forecasts were scored; mean_lead_days: average days from the run
--     date to the forecast day
--   actual_units, forecast_units (sum of forecast_mean), abs_error_units (sum of
--     |forecast - actual| per series and day)
--   wape: abs_error_units / actual_units; bias: (forecast_units - actual_units) / actual_units,
--     > 0 when over-forecast (as in forecast_accuracy); both NULL when nothing sold
--   interval_coverage: share of series-days whose actual lies inside the prediction interval;
--     confidence_level: average nominal level of those intervals
-- Portability (the same text runs in BigQuery and, translated by sqlglot, in DuckDB):
-- DATE_TRUNC(..., WEEK(MONDAY)) and FORMAT_DATE('%V') give the ISO weeks; DuckDB knows neither
-- the ISOWEEK date part nor EXTRACT(ISOWEEK). DATE_TRUNC of a DATE is a TIMESTAMP in DuckDB and in
-- bqemulator, hence the CAST to DATE. DuckDB sums integers to HUGEINT, hence CAST(SUM AS INT64).
-- A series is counted by its ids with a length prefix, unambiguous whatever characters ids hold.
CREATE OR REPLACE VIEW `{dataset}.forecast_accuracy_weekly`
OPTIONS(description = 'Realised forecast accuracy per ISO week and product category: forecasts of complete runs against the sales that followed; one row per week × category.')
AS
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
      ORDER BY r.run_date DESC, r.finished_at DESC, r.run_id DESC) AS rank_by_freshness
  FROM `{dataset}.forecasts` AS f
  JOIN `{dataset}.runs` AS r ON r.run_id = f.run_id
  WHERE r.status = 'COMPLETE' AND f.forecast_date >= r.run_date
),
loaded_days AS (
  SELECT DISTINCT store_id, sale_date
  FROM `{dataset}.sales`
),
actuals AS (
  SELECT store_id, product_id, sale_date, CAST(SUM(units) AS INT64) AS units
  FROM `{dataset}.sales`
  GROUP BY store_id, product_id, sale_date
),
scored AS (
  SELECT
    f.*,
    COALESCE(a.units, 0) AS actual_units
  FROM freshest AS f
  JOIN loaded_days AS d ON d.store_id = f.store_id AND d.sale_date = f.forecast_date
  LEFT JOIN actuals AS a
    ON a.store_id = f.store_id AND a.product_id = f.product_id AND a.sale_date = f.forecast_date
  WHERE f.rank_by_freshness = 1
)
SELECT
  CAST(DATE_TRUNC(c.forecast_date, WEEK(MONDAY)) AS DATE) AS week_start,
  EXTRACT(ISOYEAR FROM c.forecast_date) AS iso_year,
  CAST(FORMAT_DATE('%V', c.forecast_date) AS INT64) AS iso_week,
  p.category,
  COUNT(DISTINCT CONCAT(CAST(LENGTH(c.store_id) AS STRING), ':', c.store_id, c.product_id)) AS series,
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
LEFT JOIN `{dataset}.products` AS p ON p.product_id = c.product_id
GROUP BY week_start, iso_year, iso_week, p.category;
