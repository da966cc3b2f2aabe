-- ARIMA_PLUS over every store x product series of a chain (retrained weekly; one model per
-- training, named by chain and training date). Missing days are zero sales, so the series are
-- gap-filled here from their first sale: ARIMA_PLUS would otherwise interpolate them. No
-- forecast_limit_lower_bound: it would drop every zero-sales day from training; negative
-- forecasts are clipped when reading. decompose_time_series keeps the components that
-- ML.EXPLAIN_FORECAST returns (an ARIMA_PLUS-only option).
-- The model name, horizon, data frequency and holiday region come from validated settings (OPTIONS
-- take literals). The gap filling follows the data frequency: a row every @step_days days (daily,
-- weekly) or @step_months months (monthly from month starts, quarterly) from the first sale.
CREATE OR REPLACE MODEL `{dataset}.{model}`
OPTIONS(
  model_type = 'ARIMA_PLUS',
  time_series_timestamp_col = 'sale_date',
  time_series_data_col = 'units',
  time_series_id_col = ['store_id', 'product_id'],
  data_frequency = '{data_frequency}',
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
  WHERE sale_date BETWEEN @data_start AND @data_end
  GROUP BY store_id, product_id
),
days AS (
  SELECT s.store_id, s.product_id, d AS sale_date
  FROM series AS s, UNNEST(IF(@step_months > 0,
    GENERATE_DATE_ARRAY(s.first_day, @data_end, INTERVAL GREATEST(@step_months, 1) MONTH),
    GENERATE_DATE_ARRAY(s.first_day, @data_end, INTERVAL @step_days DAY))) AS d
)
SELECT d.store_id, d.product_id, d.sale_date, CAST(COALESCE(SUM(x.units), 0) AS FLOAT64) AS units
FROM days AS d
LEFT JOIN `{dataset}.sales` AS x
  ON x.store_id = d.store_id AND x.product_id = d.product_id AND x.sale_date = d.sale_date
GROUP BY d.store_id, d.product_id, d.sale_date
