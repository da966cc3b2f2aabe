-- ARIMA_PLUS_XREG: as create_model.sql, with price and promotion as external regressors (used
-- when the future price and promotion plan is supplied to ML.FORECAST). Days without sales take
-- the series' last known price and no promotion.
CREATE OR REPLACE MODEL `{dataset}.{model}`
OPTIONS(
  model_type = 'ARIMA_PLUS_XREG',
  time_series_timestamp_col = 'sale_date',
  time_series_data_col = 'units',
  time_series_id_col = ['store_id', 'product_id'],
  data_frequency = 'DAILY',
  horizon = {horizon},
  auto_arima = TRUE,
  holiday_region = '{holiday_region}',
  clean_spikes_and_dips = TRUE,
  adjust_step_changes = TRUE,
  decompose_time_series = TRUE
) AS
WITH series AS (
  SELECT store_id, product_id, MIN(sale_date) AS first_day
  FROM `{dataset}.sales`
  WHERE sale_date BETWEEN DATE_SUB(@train_end, INTERVAL @history_days - 1 DAY) AND @train_end
  GROUP BY store_id, product_id
),
days AS (
  SELECT s.store_id, s.product_id, d AS sale_date
  FROM series AS s, UNNEST(GENERATE_DATE_ARRAY(s.first_day, @train_end)) AS d
),
filled AS (
  SELECT d.store_id, d.product_id, d.sale_date,
    CAST(COALESCE(SUM(x.units), 0) AS FLOAT64) AS units,
    AVG(x.price) AS price,
    LOGICAL_OR(x.on_promotion) AS on_promotion
  FROM days AS d
  LEFT JOIN `{dataset}.sales` AS x
    ON x.store_id = d.store_id AND x.product_id = d.product_id AND x.sale_date = d.sale_date
  GROUP BY d.store_id, d.product_id, d.sale_date
)
SELECT store_id, product_id, sale_date, units,
  LAST_VALUE(price IGNORE NULLS) OVER (
    PARTITION BY store_id, product_id ORDER BY sale_date
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS price,
  CAST(COALESCE(on_promotion, FALSE) AS INT64) AS on_promotion
FROM filled
