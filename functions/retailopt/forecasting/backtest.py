"""Rolling-origin backtest of the local engine -> `forecast_accuracy` rows.

Each origin refits the engine on the history before it and scores the following ``horizon``
days, so the figures are out-of-sample. Per-series rows sum over origins; one aggregate row
per model covers the chain (WAPE and bias pooled, MASE and RMSSE averaged over series as in
the M5 competition, coverage pooled over all days).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from .engine import forecast
from .metrics import PINBALL_LEVELS, naive_scales, series_metrics

ACCURACY_COLUMNS = ["run_id", "evaluated_on", "level", "store_id", "product_id", "model", "horizon_days",
                    "n_origins", "n_observations", "actual_units", "wape", "mase", "rmsse", "bias",
                    "coverage_80", "coverage_95", "pinball_loss"]


def backtest(history: pd.DataFrame, positions: pd.DataFrame, *, forecast_start: date, horizon: int = 28,
             n_origins: int = 3, step_days: int | None = None, run_id: str | None = None,
             holiday_country: str | None = "US", holiday_subdivision: str | None = None,
             holidays: pd.DataFrame | None = None, variance_scale: float = 1.0,
             planned_promotions: bool = False) -> pd.DataFrame:
    """Accuracy of the engine at ``n_origins`` origins ending the day before ``forecast_start``.

    The latest origin is ``forecast_start - horizon``; earlier ones step back by ``step_days``
    (default: the horizon, so scored windows do not overlap). Returns the `forecast_accuracy`
    columns (run_id None unless given; evaluated_on = forecast_start).
    With ``planned_promotions`` the engine is told the scored days' promotion flags
    from history, as if planned (a retailer knows its own circulars).
    """
    step = step_days or horizon
    keys = positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates().reset_index(drop=True)
    hist = history.copy()
    hist["store_id"] = hist["store_id"].astype(str)
    hist["product_id"] = hist["product_id"].astype(str)
    hist["sale_date"] = pd.to_datetime(hist["sale_date"]).dt.normalize()
    index = pd.MultiIndex.from_frame(keys)
    sums: dict[str, dict[str, np.ndarray]] = {}
    origins = [pd.Timestamp(forecast_start) - pd.Timedelta(days=horizon + k * step) for k in range(n_origins)]
    for origin in sorted(origins):
        train = hist[hist["sale_date"] < origin]
        test = hist[(hist["sale_date"] >= origin) & (hist["sale_date"] < origin + pd.Timedelta(days=horizon))]
        if train.empty:
            continue
        plan = None
        if planned_promotions and "on_promotion" in test.columns:
            plan = test.loc[test["on_promotion"].fillna(False).astype(bool),
                            ["store_id", "product_id", "sale_date", "on_promotion"]]
        res = forecast(train, keys, forecast_start=origin.date(), horizon=horizon,
                       window_days=keys.assign(window_days=horizon), holiday_country=holiday_country,
                       holiday_subdivision=holiday_subdivision, holidays=holidays,
                       variance_scale=variance_scale, future_promotions=plan)
        n = len(keys)
        actual = np.zeros((n, horizon))
        si = index.get_indexer(pd.MultiIndex.from_frame(test[["store_id", "product_id"]]))
        di = (test["sale_date"] - origin).dt.days.to_numpy()
        ok = si >= 0
        np.add.at(actual, (si[ok], di[ok]), test["units"].to_numpy(dtype=float)[ok])
        mean = res.daily["forecast_mean"].to_numpy().reshape(n, horizon)
        (lo80, hi80), (lo95, hi95) = (res.interval(level) for level in (0.8, 0.95))
        train_mat = np.zeros((n, max((origin - train["sale_date"].min()).days, 1)))
        start = train["sale_date"].min()
        tsi = index.get_indexer(pd.MultiIndex.from_frame(train[["store_id", "product_id"]]))
        tdi = (train["sale_date"] - start).dt.days.to_numpy()
        tok = tsi >= 0
        np.add.at(train_mat, (tsi[tok], tdi[tok]), train["units"].to_numpy(dtype=float)[tok])
        mae, mse = naive_scales(train_mat)
        quantiles = {lv: res.daily[f"quantile_{int(round(lv * 100))}"].to_numpy().reshape(n, horizon)
                     for lv in PINBALL_LEVELS}
        m = series_metrics(actual, mean, scale_mae=mae, scale_mse=mse, lo80=lo80.reshape(n, horizon),
                           hi80=hi80.reshape(n, horizon), lo95=lo95.reshape(n, horizon),
                           hi95=hi95.reshape(n, horizon), quantiles=quantiles)
        m["sq_error"] = ((mean - actual) ** 2).sum(axis=1)
        m["scale_mae"], m["scale_mse"] = mae * horizon, mse * horizon
        m["origins"] = np.ones(n)
        models = res.series["model"].to_numpy()
        for key, value in m.items():
            if key in ("wape", "bias", "mase", "rmsse", "coverage_80", "coverage_95", "pinball_loss"):
                continue
            sums.setdefault("_", {}).setdefault(key, np.zeros(n))
            sums["_"][key] = sums["_"][key] + value
        sums["_"]["model"] = models
    if not sums:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    s = sums["_"]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = pd.DataFrame({
            "run_id": run_id, "evaluated_on": pd.Timestamp(forecast_start), "level": "series",
            "store_id": keys["store_id"], "product_id": keys["product_id"], "model": s["model"],
            "horizon_days": horizon, "n_origins": s["origins"].astype(int),
            "n_observations": s["n_observations"].astype(int), "actual_units": s["actual_units"],
            "wape": np.where(s["actual_units"] > 0, s["abs_error"] / s["actual_units"], np.nan),
            "mase": np.where(s["scale_mae"] > 0, s["abs_error"] / s["scale_mae"], np.nan),
            "rmsse": np.sqrt(np.where(s["scale_mse"] > 0, s["sq_error"] / s["scale_mse"], np.nan)),
            "bias": np.where(s["actual_units"] > 0, s["sum_error"] / s["actual_units"], np.nan),
            "coverage_80": s["inside_80"] / s["n_observations"],
            "coverage_95": s["inside_95"] / s["n_observations"],
            "pinball_loss": np.where(s["actual_units"] > 0,
                                     s["pinball_sum"] / s["actual_units"], np.nan),
        })
    rows = [_aggregate(per, s, "all", np.ones(len(per), dtype=bool), run_id, forecast_start, horizon)]
    for model in sorted(set(s["model"])):
        rows.append(_aggregate(per, s, model, s["model"] == model, run_id, forecast_start, horizon))
    out = pd.concat([per, pd.DataFrame(rows)], ignore_index=True)
    return out.loc[:, ACCURACY_COLUMNS]


def _aggregate(per: pd.DataFrame, s: dict, model: str, mask: np.ndarray, run_id: str | None,
               evaluated_on: date, horizon: int) -> dict:
    actual = s["actual_units"][mask].sum()
    n_obs = s["n_observations"][mask].sum()
    return {
        "run_id": run_id, "evaluated_on": pd.Timestamp(evaluated_on), "level": "aggregate",
        "store_id": None, "product_id": None, "model": model, "horizon_days": horizon,
        "n_origins": int(s["origins"].max()), "n_observations": int(n_obs), "actual_units": float(actual),
        "wape": s["abs_error"][mask].sum() / actual if actual > 0 else np.nan,
        "mase": float(np.nanmean(per["mase"][mask])) if np.isfinite(per["mase"][mask]).any() else np.nan,
        "rmsse": float(np.nanmean(per["rmsse"][mask])) if np.isfinite(per["rmsse"][mask]).any() else np.nan,
        "bias": s["sum_error"][mask].sum() / actual if actual > 0 else np.nan,
        "coverage_80": s["inside_80"][mask].sum() / n_obs if n_obs else np.nan,
        "coverage_95": s["inside_95"][mask].sum() / n_obs if n_obs else np.nan,
        "pinball_loss": s["pinball_sum"][mask].sum() / actual if actual > 0 else np.nan,
    }
