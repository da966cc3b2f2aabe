"""Prediction intervals for counts, calibrated on the engine's own rolling-origin forecasts.

Why: the central interval [Q(a/2), Q(1 - a/2)] of a count distribution covers at least 1 - a,
and far more for the low counts of retail (for Poisson(2) the "80%" interval [0, 4] holds 95%
of the mass). Quantiles used for stock levels stay as they are (they are calibrated as
quantiles); only the interval reported at a confidence level changes.

How (conformal calibration on the mid-PIT scale):

- The mid-distribution function of a count X is ``Fm(x) = P(X < x) + P(X = x) / 2``; it is
  strictly increasing over the support, so the interval ``{x : t_lo <= Fm(x) <= t_hi}`` holds
  an actual y exactly when its mid-PIT ``Fm(y)`` lies in [t_lo, t_hi].
- The interval always contains the day's median Q (a product that sells nothing on 55% of
  days must not get [1, 2] as its 80% interval), so it holds y exactly when
  ``min(t_lo, Fm(Q)) <= Fm(y) <= max(t_hi, Fm(Q))``. (Capping each tail at a = 1 - c of the
  day's own probability instead would be stricter: [0, 1], not [0, 0], for P(0) = 0.7.)
- The engine scores its own forecasts at rolling origins over the last year of history (the
  chosen model, every lead time up to the horizon): the calibration sample holds, for each
  scored day, the actual, the forecast mean and variance and the demand class.
- For a level c, the days that can fall below the interval are those under their median;
  t_lo is the quantile of their mid-PITs that leaves (1 - c)/2 of all days below, and likewise
  t_hi above; when one side cannot give its share (intermittent demand: most days sit at a
  median of zero), the other side gives the rest. On the calibration days the interval covers
  c by construction wherever that is possible at all (an interval that holds the median cannot
  cover less than P(median)), whatever the discreteness of the series or an error in the
  dispersion.
- How discrete a forecast is depends on its mean, and the shape of the error on the kind of
  demand, so thresholds are estimated per demand class and band of the daily mean; a cell
  with too few scored days uses its band over all classes, and that the pooled thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .distributions import WALK_MAX_MEAN, count_quantiles, pmf_recursion, unique_rows

# Bands of the daily forecast mean (units/day): discreteness, hence the PIT shape, depends on it.
MEAN_BANDS: tuple[float, ...] = (0.0, 0.25, 0.6, 1.5, 4.0, 12.0, np.inf)
MIN_BAND_DAYS = 400  # fewer scored days than this: the band uses the pooled thresholds
# The calibration sample: scored days (actual, forecast mean and variance, demand class).
CALIBRATION_COLUMNS = ["demand_class", "mean", "var", "actual"]
ALL = "*"  # cells pooled over demand classes
_EDGE = 5e-4  # thresholds at 0 or 1 would ask for unbounded intervals


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


def calibration_sample(actual: np.ndarray, mean: np.ndarray, var: np.ndarray,
                       group: np.ndarray | None = None) -> pd.DataFrame:
    """The scored days as a calibration sample (CALIBRATION_COLUMNS)."""
    actual = np.asarray(actual, dtype=float).ravel()
    return pd.DataFrame({
        "demand_class": (np.full(actual.shape, ALL, dtype=object) if group is None
                         else np.asarray(group, dtype=object).ravel()),
        "mean": np.asarray(mean, dtype=float).ravel(),
        "var": np.asarray(var, dtype=float).ravel(),
        "actual": actual,
    }).loc[:, CALIBRATION_COLUMNS]


def merge_calibrations(frames: list[pd.DataFrame], max_days: int) -> pd.DataFrame:
    """Pool the samples of separately forecast chunks (a fixed random subset if too many)."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    both = pd.concat(frames, ignore_index=True)
    if len(both) > max_days:
        both = both.iloc[np.sort(np.random.default_rng(0).choice(len(both), max_days, replace=False))]
    return both.reset_index(drop=True)


def _caps(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The highest allowed lower end and the lowest allowed upper end: the median, both."""
    median = count_quantiles(mean, var, [0.5])[..., 0]
    return median, median


def thresholds(calibration: pd.DataFrame | None, mean: np.ndarray, level: float,
               group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mid-PIT thresholds (t_lo, t_hi) of the interval at ``level`` for each forecast mean
    (and demand class, when given)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level}: expected 0 < level < 1")
    alpha = 1 - level
    mean = np.asarray(mean, dtype=float)
    t_lo = np.full(mean.shape, alpha / 2)
    t_hi = np.full(mean.shape, 1 - alpha / 2)
    if calibration is None or calibration.empty:
        return t_lo, t_hi
    c_mean = calibration["mean"].to_numpy(dtype=float)
    c_var = calibration["var"].to_numpy(dtype=float)
    pit = mid_pit(calibration["actual"].to_numpy(dtype=float), c_mean, c_var)
    cap_lo, cap_hi = _caps(c_mean, c_var)
    # Mid-PIT where the day could fall below / above its interval, else a placeholder.
    e_lo = np.where(pit < mid_pit(cap_lo, c_mean, c_var), pit, np.nan)
    e_hi = np.where(pit > mid_pit(cap_hi, c_mean, c_var), pit, np.nan)
    c_band = np.searchsorted(MEAN_BANDS, c_mean, side="right") - 1
    c_group = calibration["demand_class"].to_numpy(dtype=object)
    band = np.searchsorted(MEAN_BANDS, mean, side="right") - 1
    group = None if group is None else np.broadcast_to(np.asarray(group, dtype=object), mean.shape)
    # Pooled first, then bands over all classes, then class x band: the most specific cell wins.
    cells = [(ALL, None)] + [(ALL, b) for b in range(len(MEAN_BANDS) - 1)]
    if group is not None:
        cells += [(cls, b) for cls in sorted({str(g) for g in pd.unique(c_group)} - {ALL})
                  for b in range(len(MEAN_BANDS) - 1)]
    for cls, b in cells:
        in_cell = np.ones(len(pit), dtype=bool) if b is None else c_band == b
        if cls != ALL:
            in_cell &= c_group == cls
        if in_cell.sum() < (1 if b is None else MIN_BAND_DAYS):
            continue
        sel = np.ones(mean.shape, dtype=bool) if b is None else band == b
        if cls != ALL:
            sel &= group == cls
        if sel.any():
            t_lo[sel], t_hi[sel] = _cell_thresholds(e_lo[in_cell], e_hi[in_cell], alpha)
    return t_lo, t_hi


def _cell_thresholds(e_lo: np.ndarray, e_hi: np.ndarray, alpha: float) -> tuple[float, float]:
    """Thresholds leaving alpha/2 of the cell's days below and above the interval, or, where
    one side cannot (its days cannot be excluded), as much as it can there and the rest on the
    other."""
    low, high = e_lo[~np.isnan(e_lo)], e_hi[~np.isnan(e_hi)]
    max_lo, max_hi = low.size / e_lo.size, high.size / e_hi.size
    below = min(alpha / 2, max_lo)
    above = min(alpha - below, max_hi)
    below = min(alpha - above, max_lo)
    t_lo = float(np.quantile(low, below / max_lo)) if below > 0 else 0.0
    t_hi = float(np.quantile(high, 1 - above / max_hi)) if above > 0 else 1.0
    return min(max(t_lo, 0.0), 1 - _EDGE), min(max(t_hi, 0.0), 1 - _EDGE)


def interval(mean: np.ndarray, var: np.ndarray, level: float, calibration: pd.DataFrame | None,
             group: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated interval (lower, upper) at ``level`` for counts with that mean and variance
    (``group``: the demand class of each element, if known)."""
    t_lo, t_hi = thresholds(calibration, mean, level, group)
    lo, hi = mid_bounds(mean, var, t_lo, t_hi)
    cap_lo, cap_hi = _caps(np.asarray(mean, dtype=float), np.asarray(var, dtype=float))
    return np.minimum(lo, cap_lo), np.maximum(hi, cap_hi)


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
    rows, inverse = unique_rows(np.stack([mean.ravel(), var.ravel(), t_lo.ravel(), t_hi.ravel()], axis=1))
    lo, hi = _mid_bounds_unique(*rows.T)
    return lo[inverse].reshape(shape), hi[inverse].reshape(shape)


def _mid_bounds_unique(m: np.ndarray, v: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray):
    lo = np.zeros(m.size)
    hi = np.zeros(m.size)
    log_p0, a_all, b_all = pmf_recursion(m, v)
    positive = m > 1e-12
    walk = positive & (log_p0 > -600) & (m < WALK_MAX_MEAN)
    idx = np.flatnonzero(walk)
    # Walk the pmf upwards, as count_quantiles does.
    a = a_all[idx]
    b = b_all[idx]
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
        res_lo[stop & (res_lo < 0)] = x  # t_lo above t_hi: the single count there
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
