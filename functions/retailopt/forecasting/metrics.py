"""Forecast accuracy measures per series (vectorised over a series x days matrix)."""

from __future__ import annotations

import numpy as np

PINBALL_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


def naive_scales(train: np.ndarray, first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """In-sample mean absolute and mean squared one-step naive errors per series (MASE, RMSSE
    denominators), counted from each series' first sale as in the M5 competition."""
    n_series, n_days = train.shape
    if first is None:
        sold = train > 0
        first = np.where(sold.any(axis=1), sold.argmax(axis=1), n_days)
    diff = np.diff(train, axis=1)
    valid = np.arange(1, n_days)[None, :] > first[:, None]
    cnt = np.maximum(valid.sum(axis=1), 1)
    mae = (np.abs(diff) * valid).sum(axis=1) / cnt
    mse = (diff ** 2 * valid).sum(axis=1) / cnt
    return mae, mse


def pinball(actual: np.ndarray, quantile: np.ndarray, level: float) -> np.ndarray:
    diff = actual - quantile
    return np.maximum(level * diff, (level - 1) * diff)


def series_metrics(actual: np.ndarray, mean: np.ndarray, *, scale_mae: np.ndarray, scale_mse: np.ndarray,
                   lo80: np.ndarray | None = None, hi80: np.ndarray | None = None,
                   lo95: np.ndarray | None = None, hi95: np.ndarray | None = None,
                   quantiles: dict[float, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-series sums and ratios; every input is (S, H)."""
    err = mean - actual
    total = actual.sum(axis=1)
    out = {
        "actual_units": total,
        "n_observations": np.full(len(actual), actual.shape[1]),
        "abs_error": np.abs(err).sum(axis=1),
        "sum_error": err.sum(axis=1),
        "wape": np.divide(np.abs(err).sum(axis=1), total, out=np.full(len(total), np.nan), where=total > 0),
        "bias": np.divide(err.sum(axis=1), total, out=np.full(len(total), np.nan), where=total > 0),
        "mase": np.divide(np.abs(err).mean(axis=1), scale_mae, out=np.full(len(total), np.nan),
                          where=scale_mae > 0),
        "rmsse": np.sqrt(np.divide((err ** 2).mean(axis=1), scale_mse, out=np.full(len(total), np.nan),
                                   where=scale_mse > 0)),
    }
    if lo80 is not None:
        out["inside_80"] = ((actual >= lo80) & (actual <= hi80)).sum(axis=1)
        out["coverage_80"] = out["inside_80"] / actual.shape[1]
    if lo95 is not None:
        out["inside_95"] = ((actual >= lo95) & (actual <= hi95)).sum(axis=1)
        out["coverage_95"] = out["inside_95"] / actual.shape[1]
    if quantiles:
        loss = np.mean([pinball(actual, q, level).mean(axis=1) for level, q in quantiles.items()], axis=0)
        out["pinball_sum"] = loss * actual.shape[1]
        mean_actual = total / actual.shape[1]
        out["pinball_loss"] = np.divide(loss, mean_actual, out=np.full(len(total), np.nan),
                                        where=mean_actual > 0)
    return out


# Trailing mean daily sales that separate slow from fast movers (slow movers are planned on
# discrete distributions below 1 a day): groups known at forecast time. Grouping by the forecast
# itself would show under-forecasting at the low end for any forecast (regression to the mean).
SALES_LEVEL_EDGES = (0.3, 1.0, 3.0)


def bias_by_sales_level(actual: np.ndarray, mean: np.ndarray, train: np.ndarray, trailing_days: int = 28,
                        edges: tuple[float, ...] = SALES_LEVEL_EDGES) -> dict[str, float]:
    """Bias (forecast - actual) / actual, summed over the series of each group of trailing mean
    daily sales (the last ``trailing_days`` of ``train``): keys such as ``"<=0.3"``, ``"0.3-1"``,
    ``">3"``; NaN for a group without actual sales."""
    rate = train[:, -trailing_days:].mean(axis=1) if train.shape[1] else np.zeros(len(train))
    group = np.searchsorted(np.asarray(edges), rate, side="left")
    names = [f"<={edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])] + [f">{edges[-1]:g}"]
    out = {}
    for g, name in enumerate(names):
        sel = group == g
        act = float(actual[sel].sum())
        out[name] = float((mean[sel].sum() - act) / act) if act > 0 else float("nan")
    return out
