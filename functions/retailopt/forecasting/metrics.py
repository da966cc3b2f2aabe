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
