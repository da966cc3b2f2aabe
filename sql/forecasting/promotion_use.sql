-- Whether a chain's training uses promotions (ARIMA_PLUS_XREG): the plan (promotions table) has
-- rows over the training history or the model's horizon, and the history has promotion days to
-- learn the lift from (sales flags, or planned days).
SELECT
  (SELECT COUNT(*) FROM `{dataset}.promotions`
   WHERE start_date <= DATE_ADD(@data_end, INTERVAL @horizon DAY) AND end_date >= @data_start) AS plan_rows,
  (SELECT COUNTIF(on_promotion) FROM `{dataset}.sales` WHERE sale_date BETWEEN @data_start AND @data_end)
  + (SELECT COUNT(*) FROM `{dataset}.promotions` WHERE start_date <= @data_end AND end_date >= @data_start)
    AS promoted_history
