-- The regressors of an ARIMA_PLUS_XREG model for the days it forecasts: one row per series it
-- was trained on (sales from data_start to data_end) and day from data_end + 1 to
-- data_end + horizon: the table argument of the forecast and explain table functions. (No
-- parameter or function names in these comments: bqemulator reads them as the statement's.)
--   on_promotion  1 where the promotions table (the current plan) covers the day; a NULL
--                 store_id is a chain-wide promotion;
--   price         the product's regular price from the products table (the training used the
--                 series' regular price too), else the series' last regular selling price,
--                 else its mean selling price.
WITH series AS (
  SELECT store_id, product_id, AVG(price) AS mean_price
  FROM `{dataset}.sales`
  WHERE sale_date BETWEEN @data_start AND @data_end
  GROUP BY store_id, product_id
),
regular AS (
  SELECT store_id, product_id, price AS last_regular_price
  FROM `{dataset}.sales`
  WHERE sale_date BETWEEN @data_start AND @data_end AND NOT on_promotion
  QUALIFY ROW_NUMBER() OVER (PARTITION BY store_id, product_id ORDER BY sale_date DESC) = 1
),
days AS (
  SELECT s.store_id, s.product_id, d AS sale_date, r.last_regular_price, s.mean_price
  FROM series AS s
  LEFT JOIN regular AS r ON r.store_id = s.store_id AND r.product_id = s.product_id,
    UNNEST(GENERATE_DATE_ARRAY(DATE_ADD(@data_end, INTERVAL 1 DAY), DATE_ADD(@data_end, INTERVAL @horizon DAY))) AS d
),
promo_days AS (
  SELECT DISTINCT p.store_id, p.product_id, d AS sale_date
  FROM `{dataset}.promotions` AS p,
    UNNEST(GENERATE_DATE_ARRAY(
      GREATEST(p.start_date, DATE_ADD(@data_end, INTERVAL 1 DAY)),
      LEAST(p.end_date, DATE_ADD(@data_end, INTERVAL @horizon DAY)))) AS d
  WHERE p.start_date <= DATE_ADD(@data_end, INTERVAL @horizon DAY) AND p.end_date > @data_end
)
SELECT d.store_id, d.product_id, d.sale_date,
  CAST(COALESCE(pr.price, d.last_regular_price, d.mean_price) AS FLOAT64) AS price,
  IF(ps.sale_date IS NOT NULL OR pc.sale_date IS NOT NULL, 1, 0) AS on_promotion
FROM days AS d
LEFT JOIN `{dataset}.products` AS pr ON pr.product_id = d.product_id
LEFT JOIN promo_days AS ps
  ON ps.store_id = d.store_id AND ps.product_id = d.product_id AND ps.sale_date = d.sale_date
LEFT JOIN promo_days AS pc
  ON pc.store_id IS NULL AND pc.product_id = d.product_id AND pc.sale_date = d.sale_date
