"""The local engine's decomposition as `forecast_components` rows (the ML.EXPLAIN_FORECAST shape).

The engine is multiplicative (level x weekday x yearly x holiday factors); the table, like
ML.EXPLAIN_FORECAST, is additive. Components are attributed in that order, so for every row
``trend + seasonal_weekly + seasonal_yearly + holiday_effect`` is the model's fitted value (the
forecast for forecast rows), ``actual - adjusted`` is ``spikes_and_dips`` (capped spikes,
positive; stock-out days replaced by modelled demand, negative) and ``adjusted - fitted`` is
the residual. The local engine has no step-change component (its level adapts): 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Days of history decomposed next to the forecast in each run (both engines).
COMPONENT_HISTORY_DAYS = 28
COMPONENT_COLUMNS = ["store_id", "product_id", "component_date", "time_series_type", "actual",
                     "adjusted", "forecast_value", "trend", "seasonal_weekly", "seasonal_yearly",
                     "holiday_effect", "spikes_and_dips", "step_changes", "residual", "model"]


def _additive(trend: np.ndarray, weekly: np.ndarray, yearly: np.ndarray,
              holiday: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    w = trend * (weekly - 1)
    y = trend * weekly * (yearly - 1)
    h = trend * weekly * yearly * (holiday - 1)
    return w, y, h, trend + w + y + h


def components_frame(keys: pd.DataFrame, hist_days: pd.DatetimeIndex, future_days: pd.DatetimeIndex,
                     comp: dict[str, np.ndarray], mean: np.ndarray, model: np.ndarray) -> pd.DataFrame:
    """History rows (observed days only) then forecast rows, per series (no run_id)."""
    n_series, n_hist = comp["trend"].shape
    n_fut = len(future_days)
    w, y, h, fitted = _additive(comp["trend"], comp["weekly"], comp["yearly"], comp["holiday"])
    actual = comp["actual"]
    adjusted = np.where(np.isnan(comp["adjusted"]), actual, comp["adjusted"])
    hist = pd.DataFrame({
        "store_id": np.repeat(keys["store_id"].to_numpy(), n_hist),
        "product_id": np.repeat(keys["product_id"].to_numpy(), n_hist),
        "component_date": np.tile(hist_days.to_numpy(), n_series),
        "time_series_type": "history",
        "actual": actual.ravel(),
        "adjusted": adjusted.ravel(),
        "forecast_value": np.nan,
        "trend": comp["trend"].ravel(),
        "seasonal_weekly": w.ravel(),
        "seasonal_yearly": y.ravel(),
        "holiday_effect": h.ravel(),
        "spikes_and_dips": (actual - adjusted).ravel(),
        "step_changes": np.where(np.isnan(comp["trend"]), np.nan, 0.0).ravel(),
        "residual": (adjusted - fitted).ravel(),
        "model": np.repeat(model, n_hist),
    })
    # Days before a series' first sale are not history.
    hist = hist.loc[comp["observed"].ravel()]
    trend_f = comp["trend_f"][:, :n_fut]
    wf, yf, hf, _ = _additive(trend_f, comp["weekly_f"][:, :n_fut], comp["yearly_f"][:, :n_fut],
                              comp["holiday_f"][:, :n_fut])
    fut = pd.DataFrame({
        "store_id": np.repeat(keys["store_id"].to_numpy(), n_fut),
        "product_id": np.repeat(keys["product_id"].to_numpy(), n_fut),
        "component_date": np.tile(future_days.to_numpy(), n_series),
        "time_series_type": "forecast",
        "actual": np.nan,
        "adjusted": np.nan,
        "forecast_value": mean.ravel(),
        "trend": trend_f.ravel(),
        "seasonal_weekly": wf.ravel(),
        "seasonal_yearly": yf.ravel(),
        "holiday_effect": hf.ravel(),
        "spikes_and_dips": np.nan,
        "step_changes": 0.0,
        "residual": np.nan,
        "model": np.repeat(model, n_fut),
    })
    out = pd.concat([hist, fut], ignore_index=True)
    return out.loc[:, COMPONENT_COLUMNS]
