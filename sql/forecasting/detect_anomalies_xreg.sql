-- Sales anomalies of the days [@since, @until] from the ARIMA_PLUS_XREG model the daily forecast
-- reads (sales_anomalies rows without run_id, run_date; read by
-- retailopt.forecasting.anomalies.read_detect_rows): as detect_anomalies.sql, with the model's
-- regressors in the new data.
-- ML.DETECT_ANOMALIES takes ARIMA_PLUS_XREG models with the same arguments as ARIMA_PLUS ones:
-- MODEL, STRUCT(anomaly_prob_threshold) and an optional query statement --
-- https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-detect-anomalies
-- Google's tutorial for this model type runs it on the training data without input data and on
-- new data given with every feature column --
-- https://cloud.google.com/bigquery/docs/time-series-anomaly-detection-tutorial
--   * the days the model was trained on (up to @data_end): without input data;
--   * the days after them: as new data, within the model's horizon, one row per series trained
--     on and day from @data_end + 1, gap-filled with zero sales, with the regressors computed
--     as create_model_xreg.sql computes them for training:
--       on_promotion  1 when the day's sales say so, or, on a day without sales, when the
--                     promotions table covers it (a NULL store_id is chain-wide);
--       price         the regular price: the last selling price of a day not on promotion,
--                     carried forward from the training days into these, else the product's
--                     price, else the series' mean selling price.
-- Output columns follow the reference: the time series ids, sale_date (TIMESTAMP) and units
-- (FLOAT64) named after the model's columns, is_anomaly, lower_bound, upper_bound,
-- anomaly_probability, then the input columns. The interval is symmetric around the prediction,
-- so the expected units are its middle. Only anomalous days are returned.
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
        SELECT store_id, product_id, AVG(price) AS mean_price
        FROM `{dataset}.sales`
        WHERE sale_date BETWEEN @data_start AND @data_end
        GROUP BY store_id, product_id
      ),
      trained_regular AS (
        SELECT store_id, product_id, price AS last_regular_price
        FROM `{dataset}.sales`
        WHERE sale_date BETWEEN @data_start AND @data_end AND NOT on_promotion
        QUALIFY ROW_NUMBER() OVER (PARTITION BY store_id, product_id ORDER BY sale_date DESC) = 1
      ),
      new_days AS (
        SELECT s.store_id, s.product_id, d AS sale_date, s.mean_price, r.last_regular_price
        FROM series AS s
        LEFT JOIN trained_regular AS r ON r.store_id = s.store_id AND r.product_id = s.product_id,
          UNNEST(GENERATE_DATE_ARRAY(DATE_ADD(@data_end, INTERVAL 1 DAY), @until)) AS d
      ),
      promo_days AS (
        SELECT DISTINCT p.store_id, p.product_id, d AS sale_date
        FROM `{dataset}.promotions` AS p,
          UNNEST(GENERATE_DATE_ARRAY(
            GREATEST(p.start_date, DATE_ADD(@data_end, INTERVAL 1 DAY)), LEAST(p.end_date, @until))) AS d
        WHERE p.start_date <= @until AND p.end_date > @data_end
      ),
      filled AS (
        SELECT n.store_id, n.product_id, n.sale_date,
          ANY_VALUE(n.mean_price) AS mean_price,
          ANY_VALUE(n.last_regular_price) AS last_regular_price,
          CAST(COALESCE(SUM(x.units), 0) AS FLOAT64) AS units,
          MAX(IF(x.on_promotion, NULL, x.price)) AS regular_price,
          LOGICAL_OR(x.on_promotion) AS sold_on_promotion
        FROM new_days AS n
        LEFT JOIN `{dataset}.sales` AS x
          ON x.store_id = n.store_id AND x.product_id = n.product_id AND x.sale_date = n.sale_date
        GROUP BY n.store_id, n.product_id, n.sale_date
      )
      SELECT f.store_id, f.product_id, f.sale_date, f.units,
        CAST(COALESCE(
          LAST_VALUE(f.regular_price IGNORE NULLS) OVER (
            PARTITION BY f.store_id, f.product_id ORDER BY f.sale_date
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
          f.last_regular_price,
          pr.price,
          f.mean_price) AS FLOAT64) AS price,
        IF(COALESCE(f.sold_on_promotion, ps.sale_date IS NOT NULL OR pc.sale_date IS NOT NULL), 1, 0) AS on_promotion
      FROM filled AS f
      LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = f.product_id
      LEFT JOIN promo_days AS ps
        ON ps.store_id = f.store_id AND ps.product_id = f.product_id AND ps.sale_date = f.sale_date
      LEFT JOIN promo_days AS pc
        ON pc.store_id IS NULL AND pc.product_id = f.product_id AND pc.sale_date = f.sale_date
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
