-- Fitted ARIMA per series (order, drift, AIC, variance, detected effects) of an ARIMA_PLUS or
-- ARIMA_PLUS_XREG model, for model_diagnostics (written when its training has finished).
SELECT store_id, product_id, non_seasonal_p, non_seasonal_d, non_seasonal_q, has_drift,
  log_likelihood, AIC, variance, seasonal_periods, has_holiday_effect, has_spikes_and_dips,
  has_step_changes, error_message
FROM ML.ARIMA_EVALUATE(MODEL `{dataset}.{model}`, STRUCT(FALSE AS show_all_candidate_models))
