-- Sales anomalies of the days [@since, @until] from the ARIMA_PLUS model the daily forecast reads
-- (sales_anomalies rows without run_id, run_date; read by
-- retailopt.forecasting.anomalies.read_detect_rows).
-- ML.DETECT_ANOMALIES is called with documented arguments only: MODEL, STRUCT(anomaly_prob_threshold)
-- and a query statement -- https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-detect-anomalies
--   * the days the model was trained on (up to @data_end): without input data (the model is
--     created with decompose_time_series = TRUE, create_model.sql); this statement is for
--     ARIMA_PLUS models, detect_anomalies_xreg.sql for ARIMA_PLUS_XREG ones;
--   * the days after them: as new data, within the model's horizon, gap-filled with zero sales from
--     @data_end + 1 like the training query (the series are the ones trained on; a series the model
--     does not know gets NULLs and is dropped with them).
-- Output columns follow the reference: the time series ids, sale_date (TIMESTAMP) and units
-- (FLOAT64) named after the model's columns, is_anomaly, lower_bound, upper_bound,
-- anomaly_probability. ARIMA_PLUS's interval is symmetric around its prediction, so the expected
-- units are its middle. Only anomalous days are returned.
WITH detected AS (
  SELECT store_id, product_id, DATE(sale_date) AS sale_date, units, lower_bound, upper_bound,
    anomaly_probability
  FROM ML.DETECT_ANOMALIES(MODEL `{dataset}.{model}`,
    STRUCT(@anomaly_prob_threshold AS anomaly_prob_threshold))
  WHERE is_anomaly AND DATE(sale_date) BETWEEN @since AND LEAST(@until, @data_end)
  UNION ALL
  SELECT store_id, product_id, DATE(sale_date) AS sale_date, units, lower_bound, upper_bound,
    anomaly_probability
  FROM ML.DETECT_ANOMALIES(MODEL `{dataset}.{model}`,
    STRUCT(@anomaly_prob_threshold AS anomaly_prob_threshold),
    (
      WITH series AS (
        SELECT DISTINCT store_id, product_id
        FROM `{dataset}.sales`
        WHERE sale_date BETWEEN @data_start AND @data_end
      ),
      new_days AS (
        SELECT s.store_id, s.product_id, d AS sale_date
        FROM series AS s,
          UNNEST(GENERATE_DATE_ARRAY(DATE_ADD(@data_end, INTERVAL 1 DAY), @until)) AS d
      )
      SELECT n.store_id, n.product_id, n.sale_date, CAST(COALESCE(SUM(x.units), 0) AS FLOAT64) AS units
      FROM new_days AS n
      LEFT JOIN `{dataset}.sales` AS x
        ON x.store_id = n.store_id AND x.product_id = n.product_id AND x.sale_date = n.sale_date
      GROUP BY n.store_id, n.product_id, n.sale_date
    ))
  WHERE is_anomaly AND DATE(sale_date) BETWEEN @since AND @until
),
promoted AS (
  SELECT store_id, product_id, sale_date, LOGICAL_OR(on_promotion) AS on_promotion
  FROM `{dataset}.sales`
  WHERE sale_date BETWEEN @since AND @until
  GROUP BY store_id, product_id, sale_date
)
SELECT
  d.store_id,
  d.product_id,
  d.sale_date,
  d.units,
  (d.lower_bound + d.upper_bound) / 2 AS expected,
  d.lower_bound,
  d.upper_bound,
  d.anomaly_probability,
  IF(d.units > d.upper_bound, 'spike', 'dip') AS kind,
  COALESCE(p.on_promotion, FALSE) AS on_promotion
FROM detected AS d
LEFT JOIN promoted AS p
  ON p.store_id = d.store_id AND p.product_id = d.product_id AND p.sale_date = d.sale_date
ORDER BY d.store_id, d.product_id, d.sale_date
