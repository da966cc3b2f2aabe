"""Prediction intervals for counts, calibrated on the engine's own rolling-origin forecasts.

Why: the central interval [Q(a/2), Q(1 - a/2)] of a count distribution covers at least 1 - a,
and far more for the low counts of retail (for Poisson(2) the "80%" interval [0, 4] holds 95%
of the mass). Quantiles used for stock levels stay as they are (they are calibrated as
quantiles); only the interval reported at a confidence level changes.

How (conformal calibration on the mid-PIT scale):

- The mid-distribution function of a count X is ``Fm(x) = P(X < x) + P(X = x) / 2``; it is
  strictly increasing over the support, so the interval ``{x : t_lo <= Fm(x) <= t_hi}`` holds
  an actual y exactly when its mid-PIT ``Fm(y)`` lies in [t_lo, t_hi].
- The engine scores its own forecasts at rolling origins over the last year of history (the
  chosen model, every lead time up to the horizon) and records the mid-PIT of every actual day.
- For a nominal level c, ``t_lo`` and ``t_hi`` are the empirical (1 - c)/2 and (1 + c)/2
  quantiles of those mid-PITs; so on the calibration days the interval covers c by
  construction, whatever the dispersion errors or the discreteness of the series.
- How discrete a forecast is depends on its mean, and the shape of the error on the kind of
  demand, so thresholds are estimated per demand class and band of the daily mean; a cell
  with too few scored days uses its band over all classes, and that the pooled thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

# Bands of the daily forecast mean (units/day): discreteness, hence the PIT shape, depends on it.
MEAN_BANDS: tuple[float, ...] = (0.0, 0.25, 0.6, 1.5, 4.0, 12.0, np.inf)
MIN_BAND_DAYS = 400  # fewer scored days than this: the band uses the pooled thresholds
TAU_GRID = np.linspace(0.0, 1.0, 401)
CALIBRATION_COLUMNS = ["demand_class", "mean_from", "mean_to", "n_days", "tau", "mid_pit"]
ALL = "*"  # demand_class of the rows pooled over classes


def mid_pit(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """P(X < y) + P(X = y) / 2 for the negative binomial (Poisson) with that mean and variance."""
    y = np.asarray(y, dtype=float)
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    var = np.maximum(np.asarray(var, dtype=float), mean)
    out = np.where(y > 0, 1.0, 0.5)  # degenerate at zero
    pos = mean > 1e-12
    if not pos.any():
        return out
    m, v, k = mean[pos], var[pos], y[pos]
    over = v > m * (1 + 1e-9)
    below = np.empty_like(m)  # P(X <= y - 1)
    at = np.empty_like(m)  # P(X = y)
    if over.any():
        mo, vo, ko = m[over], v[over], k[over]
        n = mo * mo / (vo - mo)
        p = mo / vo
        below[over] = np.where(ko > 0, special.betainc(n, np.maximum(ko, 1.0), p), 0.0)
        at[over] = np.exp(special.gammaln(ko + n) - special.gammaln(n) - special.gammaln(ko + 1)
                          + n * np.log(p) + ko * np.log1p(-p))
    if (~over).any():
        mp, kp = m[~over], k[~over]
        below[~over] = np.where(kp > 0, special.pdtr(np.maximum(kp - 1, 0), mp), 0.0)
        at[~over] = np.exp(kp * np.log(mp) - mp - special.gammaln(kp + 1))
    out[pos] = below + 0.5 * at
    return out


def fit_calibration(pit: np.ndarray, mean: np.ndarray, group: np.ndarray | None = None) -> pd.DataFrame:
    """Empirical quantiles of the mid-PITs per demand class and band of forecast mean.

    Rows with demand_class ``*`` pool the classes (mean_from = -inf: everything). Empty input
    gives an empty frame, which `thresholds` reads as "use the nominal levels".
    """
    pit = np.asarray(pit, dtype=float).ravel()
    mean = np.asarray(mean, dtype=float).ravel()
    group = np.full(pit.shape, ALL, dtype=object) if group is None else np.asarray(group, dtype=object).ravel()
    if pit.size == 0:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    parts = [_band_rows(ALL, -np.inf, np.inf, pit)]
    band = np.searchsorted(MEAN_BANDS, mean, side="right") - 1
    classes = [ALL] + sorted({str(g) for g in group} - {ALL})
    for cls in classes:
        in_class = np.ones(pit.size, dtype=bool) if cls == ALL else group == cls
        for b in range(len(MEAN_BANDS) - 1):
            sel = in_class & (band == b)
            if sel.sum() >= MIN_BAND_DAYS:
                parts.append(_band_rows(cls, MEAN_BANDS[b], MEAN_BANDS[b + 1], pit[sel]))
    return pd.concat(parts, ignore_index=True)


def _band_rows(cls: str, lo: float, hi: float, pit: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"demand_class": cls, "mean_from": lo, "mean_to": hi, "n_days": int(pit.size),
                         "tau": TAU_GRID,
                         "mid_pit": np.interp(TAU_GRID * (pit.size - 1), np.arange(pit.size), np.sort(pit))})


def merge_calibrations(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Pool calibrations of separately forecast chunks (day-weighted mean of the quantiles)."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    both = pd.concat(frames, ignore_index=True)
    both["w"] = both["n_days"] * both["mid_pit"]
    g = both.groupby(["demand_class", "mean_from", "mean_to", "tau"], as_index=False).agg(
        n_days=("n_days", "sum"), w=("w", "sum"))
    g["mid_pit"] = g["w"] / g["n_days"]
    return g.loc[:, CALIBRATION_COLUMNS].reset_index(drop=True)


def thresholds(calibration: pd.DataFrame | None, mean: np.ndarray, level: float,
               group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mid-PIT thresholds (t_lo, t_hi) of the interval at ``level`` for each forecast mean
    (and demand class, when given)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level}: expected 0 < level < 1")
    mean = np.asarray(mean, dtype=float)
    lo_tail, hi_tail = (1 - level) / 2, (1 + level) / 2
    t_lo = np.full(mean.shape, lo_tail)
    t_hi = np.full(mean.shape, hi_tail)
    if calibration is None or calibration.empty:
        return t_lo, t_hi
    group = None if group is None else np.broadcast_to(np.asarray(group, dtype=object), mean.shape)
    # Thresholds at 0 or 1 would ask for unbounded intervals.
    edge = 5e-4
    # Pooled first, then bands over all classes, then class x band: the most specific cell wins.
    cal = calibration.assign(_specific=(calibration["demand_class"] != ALL).astype(int)
                             + np.isfinite(calibration["mean_from"]).astype(int))
    for (_, cls, start, end), g in cal.groupby(["_specific", "demand_class", "mean_from", "mean_to"], sort=True):
        sel = (mean >= start) & (mean < end)
        if cls != ALL:
            if group is None:
                continue
            sel &= group == cls
        t_lo[sel] = np.clip(np.interp(lo_tail, g["tau"], g["mid_pit"]), edge, 1 - edge)
        t_hi[sel] = np.clip(np.interp(hi_tail, g["tau"], g["mid_pit"]), edge, 1 - edge)
    return t_lo, t_hi


def interval(mean: np.ndarray, var: np.ndarray, level: float, calibration: pd.DataFrame | None,
             group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated interval (lower, upper) at ``level`` for counts with that mean and variance
    (``group``: the demand class of each element, if known)."""
    t_lo, t_hi = thresholds(calibration, mean, level, group)
    return mid_bounds(mean, var, t_lo, t_hi)


def mid_bounds(mean: np.ndarray, var: np.ndarray, t_lo: np.ndarray,
               t_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest x with Fm(x) >= t_lo and largest x with Fm(x) <= t_hi (per element).

    When no count has its mid-PIT inside [t_lo, t_hi] (one atom straddles both), the interval
    is that single count.
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    var = np.maximum(np.asarray(var, dtype=float), mean)
    shape = mean.shape
    t_lo = np.broadcast_to(np.asarray(t_lo, dtype=float), shape)
    t_hi = np.broadcast_to(np.asarray(t_hi, dtype=float), shape)
    # Forecasts repeat the same (mean, variance) for many days: solve each distinct row once.
    rows, inverse = np.unique(np.stack([mean.ravel(), var.ravel(), t_lo.ravel(), t_hi.ravel()], axis=1),
                              axis=0, return_inverse=True)
    lo, hi = _mid_bounds_unique(*rows.T)
    inverse = inverse.ravel()
    return lo[inverse].reshape(shape), hi[inverse].reshape(shape)


def _mid_bounds_unique(m: np.ndarray, v: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray):
    lo = np.zeros(m.size)
    hi = np.zeros(m.size)
    positive = m > 1e-12
    over = positive & (v > m * (1 + 1e-9))
    n = np.divide(m * m, v - m, out=np.zeros_like(m), where=over)
    q = np.where(over, 1 - m / np.where(over, v, 1.0), 0.0)
    with np.errstate(divide="ignore"):
        log_p0 = np.where(over, n * np.log1p(-q), -m)
    walk = positive & (log_p0 > -600)
    idx = np.flatnonzero(walk)
    # Walk the pmf upwards (pmf(x+1) = pmf(x) * (b + a x) / (x + 1)), as count_quantiles does.
    a = q[idx]
    b = np.where(over[idx], n[idx] * q[idx], m[idx])
    pmf = np.exp(log_p0[idx])
    below = np.zeros(idx.size)
    tl, th = t_lo[idx], t_hi[idx]
    res_lo = np.full(idx.size, -1.0)
    res_hi = np.full(idx.size, -1.0)
    found = np.zeros(idx.size, dtype=bool)
    x = 0
    while idx.size and x < 20000:
        fm = below + 0.5 * pmf
        res_lo[(res_lo < 0) & (fm >= tl)] = x
        # The first count above t_hi ends the interval just before it (t_lo <= t_hi, so the
        # lower end is known by then).
        stop = ~found & (fm > th)
        res_hi[stop] = x - 1
        found |= stop
        if x % 16 == 0 and found.any():
            lo[idx[found]] = res_lo[found]
            hi[idx[found]] = res_hi[found]
            keep = ~found
            idx, a, b, pmf, below = idx[keep], a[keep], b[keep], pmf[keep], below[keep]
            tl, th, res_lo, res_hi, found = tl[keep], th[keep], res_lo[keep], res_hi[keep], found[keep]
        below = below + pmf
        pmf = pmf * (b + a * x) / (x + 1)
        x += 1
    if idx.size:
        lo[idx[found]] = res_lo[found]
        hi[idx[found]] = res_hi[found]
        idx = idx[~found]
    rest = np.concatenate([idx, np.flatnonzero(positive & ~walk)])
    if rest.size:
        # Huge means: the mid-PIT is the continuous CDF to within a fraction of a unit.
        from scipy import stats

        sd = np.sqrt(v[rest])
        lo[rest] = np.maximum(np.ceil(stats.norm.ppf(t_lo[rest], m[rest], sd) - 0.5), 0.0)
        hi[rest] = np.maximum(np.floor(stats.norm.ppf(t_hi[rest], m[rest], sd) + 0.5), 0.0)
    # One atom straddles both thresholds: the interval is that count.
    hi = np.maximum(hi, lo)
    return lo, hi
