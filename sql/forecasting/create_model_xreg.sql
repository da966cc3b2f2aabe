-- ARIMA_PLUS_XREG: as create_model.sql, with two external regressors, the ones
-- future_features.sql supplies for the forecast days:
--   on_promotion  1 on a promotion day: the day's sales row says so, or, on a day without sales,
--                 the promotions table covers it (a NULL store_id is chain-wide);
--   price         the series' regular price: its last selling price on a day not on promotion,
--                 carried forward (so the promotion lift stays with on_promotion), before the
--                 first such day the product's price, else the series' mean selling price.
-- BigQuery ML would fill a missing regressor with the column's mean over all series, so every
-- row gets a value here. ARIMA_PLUS_XREG has no decompose_time_series option: ML.EXPLAIN_FORECAST
-- decomposes it anyway (with the future regressors as its table argument).
CREATE OR REPLACE MODEL `{dataset}.{model}`
OPTIONS(
  model_type = 'ARIMA_PLUS_XREG',
  time_series_timestamp_col = 'sale_date',
  time_series_data_col = 'units',
  time_series_id_col = ['store_id', 'product_id'],
  data_frequency = '{data_frequency}',
  horizon = {horizon},
  auto_arima = TRUE,
  holiday_region = '{holiday_region}',
  clean_spikes_and_dips = TRUE,
  adjust_step_changes = TRUE
) AS
WITH series AS (
  SELECT store_id, product_id, MIN(sale_date) AS first_day
  FROM `{dataset}.sales`
  WHERE sale_date BETWEEN @data_start AND @data_end
  GROUP BY store_id, product_id
),
days AS (
  SELECT s.store_id, s.product_id, d AS sale_date
  FROM series AS s, UNNEST(IF(@step_months > 0,
    GENERATE_DATE_ARRAY(s.first_day, @data_end, INTERVAL GREATEST(@step_months, 1) MONTH),
    GENERATE_DATE_ARRAY(s.first_day, @data_end, INTERVAL @step_days DAY))) AS d
),
promo_days AS (
  SELECT DISTINCT p.store_id, p.product_id, d AS sale_date
  FROM `{dataset}.promotions` AS p,
    UNNEST(GENERATE_DATE_ARRAY(GREATEST(p.start_date, @data_start), LEAST(p.end_date, @data_end))) AS d
  WHERE p.start_date <= @data_end AND p.end_date >= @data_start
),
filled AS (
  SELECT d.store_id, d.product_id, d.sale_date,
    CAST(COALESCE(SUM(x.units), 0) AS FLOAT64) AS units,
    MAX(IF(x.on_promotion, NULL, x.price)) AS regular_price,
    AVG(x.price) AS selling_price,
    LOGICAL_OR(x.on_promotion) AS sold_on_promotion
  FROM days AS d
  LEFT JOIN `{dataset}.sales` AS x
    ON x.store_id = d.store_id AND x.product_id = d.product_id AND x.sale_date = d.sale_date
  GROUP BY d.store_id, d.product_id, d.sale_date
)
SELECT f.store_id, f.product_id, f.sale_date, f.units,
  CAST(COALESCE(
    LAST_VALUE(f.regular_price IGNORE NULLS) OVER (
      PARTITION BY f.store_id, f.product_id ORDER BY f.sale_date
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
    pr.price,
    AVG(f.selling_price) OVER (PARTITION BY f.store_id, f.product_id)) AS FLOAT64) AS price,
  IF(COALESCE(f.sold_on_promotion, ps.sale_date IS NOT NULL OR pc.sale_date IS NOT NULL), 1, 0) AS on_promotion
FROM filled AS f
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = f.product_id
LEFT JOIN promo_days AS ps
  ON ps.store_id = f.store_id AND ps.product_id = f.product_id AND ps.sale_date = f.sale_date
LEFT JOIN promo_days AS pc
  ON pc.store_id IS NULL AND pc.product_id = f.product_id AND pc.sale_date = f.sale_date
