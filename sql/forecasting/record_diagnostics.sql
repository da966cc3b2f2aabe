-- ML.ARIMA_EVALUATE of a trained model (arima_evaluate.sql, inlined at the end as the FROM query) written into
-- model_diagnostics by BigQuery itself, one INSERT however many series the model has (a chain of
-- 20 million series would otherwise take 10,000 INSERT batches from the training check).
-- Parameters: model_name, trained_on (its training date) and kind (ARIMA, or ARIMA_XREG for an
-- ARIMA_PLUS_XREG model). model reads kind(p,d,q), or kind alone where the order is unknown;
-- seasonal_periods is comma-separated; the local engine's columns stay NULL.
INSERT INTO `{dataset}.model_diagnostics` (model_name, trained_on, store_id, product_id, engine, model,
  demand_class, non_seasonal_p, non_seasonal_d, non_seasonal_q, has_drift, log_likelihood, aic,
  variance, seasonal_periods, has_holiday_effect, has_spikes_and_dips, has_step_changes,
  smoothing_parameter, dispersion, error_message)
SELECT
  @model_name,
  @trained_on,
  CAST(e.store_id AS STRING),
  CAST(e.product_id AS STRING),
  'bigquery_ml',
  IF(e.non_seasonal_p IS NULL OR e.non_seasonal_d IS NULL OR e.non_seasonal_q IS NULL, @kind,
    CONCAT(@kind, '(', CAST(e.non_seasonal_p AS STRING), ',', CAST(e.non_seasonal_d AS STRING), ',',
      CAST(e.non_seasonal_q AS STRING), ')')),
  CAST(NULL AS STRING),
  e.non_seasonal_p,
  e.non_seasonal_d,
  e.non_seasonal_q,
  e.has_drift,
  e.log_likelihood,
  e.AIC,
  e.variance,
  ARRAY_TO_STRING(e.seasonal_periods, ','),
  e.has_holiday_effect,
  e.has_spikes_and_dips,
  e.has_step_changes,
  CAST(NULL AS FLOAT64),
  CAST(NULL AS FLOAT64),
  e.error_message
FROM (
{evaluate}
) AS e
