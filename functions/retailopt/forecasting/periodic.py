"""The local engine for weekly, monthly and quarterly data (``forecast(..., frequency=...)``).

Vectorised with numpy across all series at once, like the daily engine, on a dense series x
periods matrix:

1. Gap filling: a period without a row sold nothing; periods before a series' first sale are
   not history.
2. Seasonality: multiplicative indices per position in the season (week of the year, month,
   quarter) from the ratios of each period to its centred moving average over a season, shrunk
   towards the pooled profile of all series (volume-weighted) by empirical Bayes: the shrinkage
   weight compares the spread of the series' indices around the pooled one with each series' own
   sampling noise, so unrelated series keep their own season and a noisy one borrows the chain's.
   Series shorter than two seasons take the pooled profile (or none when there is none). Only
   the last ten seasons' ratios count (seasons drift).
   Holidays act on the periods that contain them: one factor per holiday, pooled over series
   (sales of the holiday's periods over their seasonal, smoothed expectation), shrunk towards no
   effect by the units it rests on; fixed-date holidays fall in the same season position every
   year and so mostly live in the seasonal index already, moving ones (Easter, Thanksgiving
   week) are what this adds.
3. Level and trend on the seasonally adjusted series: simple exponential smoothing, Holt's
   damped trend and the Theta method (SES with half the series' linear drift), each family's
   constants chosen per series by in-sample one-step error, each run on the series
   deseasonalised with the factors of each seasonal window (SEASON_WINDOWS: the last 3, 5, 10
   seasons of ratios). Of these candidates each series averages the two with the smallest
   squared error over its own rolling-origin forecasts of the latest season (selection.py): no
   family or window wins everywhere, and an equal-weight average pays for the poor members.
4. Rolling origins: the last MIN_ORIGINS periods (a season at least) from which a whole horizon
   follows, scored once the series has enough history behind them (origin_min_history). They
   see what a forecast made there would have seen: seasonal factors and Theta's drift fitted on
   the periods before the first origin, level and trend run on the series deseasonalised with
   those factors.
5. Uncertainty from the engine's own forecasts: at those origins the equal-weight average of
   all candidates (its errors were not used to choose, unlike the chosen ones') forecasts the
   next ``horizon`` periods; their squared errors, relative to the forecast, give each series'
   error level (shrunk towards the pooled one by the number of origins) and a pooled growth
   with the lead time. Each period's distribution is a negative binomial with that variance
   (Poisson at least), and the reported intervals are calibrated on the mid-PITs of those
   rolling-origin forecasts (calibration.py).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from .calendar import holiday_table
from .calibration import calibration_sample
from .distributions import QUANTILES, count_quantiles
from .frequency import Frequency
from .selection import top_weights

SES_ALPHAS = (0.03, 0.08, 0.15, 0.25, 0.4, 0.6, 0.8, 0.95)
DAMPED = tuple((a, b, phi) for a in (0.1, 0.25, 0.5, 0.8) for b in (0.02, 0.08, 0.2)
               for phi in (0.8, 0.9, 0.98))
MAX_REL_VAR = 4.0  # largest relative error variance of a period (a CV of 200 %)
# Seasons drift: the seasonal factors average the ratios of the last ten seasons (ten years) at
# most (all seasons were worse on the benchmark's 19-year weekly series).
SEASONS_KEPT = 10
# Each series chooses among these seasonal windows (in seasons of ratios kept) by its own
# rolling-origin errors: a season that drifts is followed by the short window, a stable noisy
# one averaged over the long one.
SEASON_WINDOWS = (3, 5, SEASONS_KEPT)
# Candidates averaged per series (the best ones by rolling-origin error; selection.py).
TOP_CANDIDATES = 2
# Rolling origins: at least a season of them and at least 24 (two years of monthly data), so
# the errors behind the intervals span more than one season's shocks; the candidates are chosen
# on the latest season of origins (at least 8), the recent errors telling most about the next.
MIN_ORIGINS = 24
MIN_SELECT_ORIGINS = 8
ORIGIN_BLOCK_VALUES = 4_000_000  # rolling-origin forecasts held at once (32 MB)


def seasonal_indices(y: np.ndarray, obs: np.ndarray, position: np.ndarray, m: int,
                     position_future: np.ndarray, weight: np.ndarray | None = None,
                     upto: int | None = None, kept: int = SEASONS_KEPT
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiplicative seasonal factors of history (S, T) and future (S, F), mean 1 per series,
    and the weight each series' own profile got (0: pooled profile only). With ``upto`` only
    the periods before it inform the factors (out-of-sample factors for the rolling origins);
    only the ratios of the last ``kept`` seasons count (0: all)."""
    n_series, n_t = y.shape
    ones = (np.ones((n_series, n_t)), np.ones((n_series, len(position_future))), np.zeros(n_series))
    if m <= 1 or n_t < 2 * m:
        return ones
    # Centred moving average over one season (2 x m for an even m).
    if m % 2 == 0:
        w = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        w = np.ones(m) / m
    k = len(w)
    half = k // 2
    yo = np.where(obs, y, 0.0)
    cma = np.zeros((n_series, n_t))
    full = np.zeros((n_series, n_t), dtype=bool)
    cnt = np.cumsum(np.concatenate([np.zeros((n_series, 1)), obs.astype(float)], axis=1), axis=1)
    for j, wj in enumerate(w):
        cma[:, half:n_t - half] += wj * yo[:, j:n_t - k + 1 + j]
    full[:, half:n_t - half] = (cnt[:, k:] - cnt[:, :n_t - k + 1]) == k
    ok = full & (cma > 0)
    if upto is not None:
        ok[:, max(int(upto) - half, 0):] = False
    if kept:
        end = n_t if upto is None else int(upto)
        ok[:, : max(end - half - kept * m, 0)] = False
    ratio = np.divide(yo, cma, out=np.zeros_like(yo), where=ok)
    onehot = (position[:, None] == np.arange(m)[None, :]).astype(float)  # (T, m)
    sums = ratio @ onehot
    counts = ok.astype(float) @ onehot
    raw = np.divide(sums, counts, out=np.ones_like(sums), where=counts > 0)
    covered = (counts > 0).all(axis=1)
    raw = raw / raw.mean(axis=1, keepdims=True)
    # Sampling noise of each index: residual variance of the ratios around their position's
    # mean over the number of seasons behind it.
    resid = np.where(ok, ratio - raw @ onehot.T, 0.0)
    n_ratio = ok.sum(axis=1)
    sigma2 = (resid ** 2).sum(axis=1) / np.maximum(n_ratio - m, 1)
    noise = sigma2 / np.maximum(n_ratio / m, 1.0)
    vol = (cma * ok).sum(axis=1) / np.maximum(n_ratio, 1)
    if weight is not None:
        vol = vol * weight
    long_ok = covered & (n_ratio >= m) & (vol > 0)
    hist = np.ones((n_series, n_t))
    fut = np.ones((n_series, len(position_future)))
    own_weight = np.zeros(n_series)
    if not long_ok.any():
        return hist, fut, own_weight
    # Pooled profile: volume-weighted mean of the series' indices (relative sizes matter, not units).
    wv = np.sqrt(vol[long_ok])
    pooled = (raw[long_ok] * wv[:, None]).sum(axis=0) / wv.sum()
    pooled = pooled / pooled.mean()
    spread = max(float(np.mean((raw[long_ok] - pooled) ** 2) - np.mean(noise[long_ok])), 1e-4)
    own_weight[long_ok] = spread / (spread + noise[long_ok])
    prof = np.broadcast_to(pooled, (n_series, m)).copy()
    prof[long_ok] = own_weight[long_ok, None] * raw[long_ok] + (1 - own_weight[long_ok, None]) * pooled
    # The pooled profile is only worth borrowing when it is seasonal beyond its own noise.
    pooled_noise = float(np.mean(noise[long_ok]) / max(long_ok.sum(), 1))
    if float(np.var(pooled)) < 4 * pooled_noise:
        prof[~long_ok] = 1.0
    prof = np.maximum(prof, 0.0)
    prof = prof / np.where(prof.mean(axis=1, keepdims=True) > 0, prof.mean(axis=1, keepdims=True), 1.0)
    return prof[:, position], prof[:, position_future], own_weight


def holiday_factors(y: np.ndarray, obs: np.ndarray, season: np.ndarray, hol_hist: list[list[str]],
                    hol_fut: list[list[str]], m: int) -> tuple[np.ndarray, np.ndarray]:
    """One multiplicative factor per holiday, applied to the periods that contain it (T,), (F,)."""
    n_t = y.shape[1]
    fh, ff = np.ones(n_t), np.ones(len(hol_fut))
    names = sorted({n for names in hol_hist for n in names})
    if not names or n_t < 3:
        return fh, ff
    x = np.divide(y, season, out=np.zeros_like(y), where=obs & (season > 0.05))
    # Expected adjusted sales of a period: the mean of its neighbours (two each side).
    base = np.zeros_like(x)
    nb = np.zeros_like(x)
    usable = (obs & (season > 0.05)).astype(float)
    for d in (-2, -1, 1, 2):
        src = np.clip(np.arange(n_t) + d, 0, n_t - 1)
        valid = (np.arange(n_t) + d >= 0) & (np.arange(n_t) + d < n_t)
        base += x[:, src] * usable[:, src] * valid
        nb += usable[:, src] * valid
    base = np.divide(base, nb, out=np.zeros_like(base), where=nb > 0)
    effects = {}
    for name in names:
        cols = [t for t, hs in enumerate(hol_hist) if name in hs]
        num = float((x[:, cols] * usable[:, cols]).sum())
        den = float((base[:, cols] * usable[:, cols]).sum())
        expected_units = float((base[:, cols] * season[:, cols] * usable[:, cols]).sum())
        if den <= 0:
            continue
        w = expected_units / (expected_units + 1 / 0.3 ** 2)
        # A pooled ratio over many series is precise; the spread of true effects bounds it.
        effects[name] = float(np.clip(w * num / den + (1 - w), 0.2, 5.0))
    for t, hs in enumerate(hol_hist):
        for name in hs:
            fh[t] *= effects.get(name, 1.0)
    for t, hs in enumerate(hol_fut):
        for name in hs:
            ff[t] *= effects.get(name, 1.0)
    return fh, ff


def smooth(x: np.ndarray, obs: np.ndarray, first: np.ndarray, origins: np.ndarray,
           a_s: np.ndarray | None = None, damped: np.ndarray | None = None) -> dict:
    """SES and damped-trend states over time for every candidate, in-sample one-step errors, and
    the states right after each origin (S, J, C).

    Candidates: ``a_s`` SES constants and ``damped`` (alpha, beta, phi) rows, shared (1, C) or
    per series (S, C); by default the grids SES_ALPHAS and DAMPED."""
    n_series, n_t = x.shape
    a_s = np.asarray(SES_ALPHAS)[None, :] if a_s is None else np.atleast_2d(a_s)
    damped = np.asarray(DAMPED)[None, :, :] if damped is None else damped
    a_d, b_d, phi = damped[..., 0], damped[..., 1], damped[..., 2]
    n_s, n_d = a_s.shape[1], a_d.shape[1]
    xo = np.where(obs, x, 0.0)
    # Initial level: mean of the first (up to) four observed periods; initial trend from the
    # first eight when there are that many.
    idx = np.clip(first[:, None] + np.arange(8)[None, :], 0, max(n_t - 1, 0))
    take = np.take_along_axis(xo, idx, axis=1)
    tobs = np.take_along_axis(obs, idx, axis=1) & (idx >= first[:, None])
    c4 = np.maximum(tobs[:, :4].sum(axis=1), 1)
    level0 = (take[:, :4] * tobs[:, :4]).sum(axis=1) / c4
    late = tobs[:, 4:].sum(axis=1)
    level_late = (take[:, 4:] * tobs[:, 4:]).sum(axis=1) / np.maximum(late, 1)
    trend0 = np.where(late >= 2, (level_late - level0) / 4.0, 0.0)
    ls = np.repeat(level0[:, None], n_s, axis=1)
    ld = np.repeat(level0[:, None], n_d, axis=1)
    bd = np.repeat(trend0[:, None], n_d, axis=1)
    sse_s = np.zeros((n_series, n_s))
    sse_d = np.zeros((n_series, n_d))
    slot = {int(o): j for j, o in enumerate(origins)}
    at_s = np.zeros((n_series, len(origins), n_s))
    at_ld = np.zeros((n_series, len(origins), n_d))
    at_bd = np.zeros((n_series, len(origins), n_d))
    # One-step errors are scored once the initial periods are behind (the initial state saw them).
    scored = obs & (np.arange(n_t)[None, :] >= first[:, None] + 4)
    n_err = scored.sum(axis=1).astype(float)
    seen = np.cumsum(obs, axis=1)
    n_seen = seen[:, -1].astype(float) if n_t else np.zeros(n_series)
    at_seen = seen[:, origins].astype(float) if len(origins) else np.zeros((n_series, 0))
    # Time-major copies (contiguous reads per step); updates only on observed periods.
    x_t = np.ascontiguousarray(xo.T)[:, :, None]
    act_t = np.ascontiguousarray(obs.T, dtype=float)[:, :, None]
    sc_t = np.ascontiguousarray(scored.T, dtype=float)[:, :, None]
    ab = a_d * b_d
    phi1 = phi - 1.0
    for t in range(n_t):
        act, xt, sc = act_t[t], x_t[t], sc_t[t]
        e_s = xt - ls
        e_d = xt - ld - phi * bd
        tmp = e_s * sc
        sse_s += tmp * tmp
        tmp = e_d * sc
        sse_d += tmp * tmp
        # Holt's damped trend in error-correction form: l = l + phi b + alpha e,
        # b = phi b + alpha beta e (beta as in l_new - l_old - phi b); SES: l = l + alpha e.
        inc_l = phi * bd + a_d * e_d
        inc_b = phi1 * bd + ab * e_d
        ld += act * inc_l
        bd += act * inc_b
        ls += act * (a_s * e_s)
        if t in slot:
            j = slot[t]
            at_s[:, j], at_ld[:, j], at_bd[:, j] = ls, ld, bd
    return dict(ls=ls, ld=ld, bd=bd, sse_s=sse_s, sse_d=sse_d, n_err=n_err, at_s=at_s, at_ld=at_ld,
                at_bd=at_bd, n_seen=n_seen, at_seen=at_seen)


def drift(x: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Least-squares slope per period of each series over its observed periods (Theta's b0)."""
    t = np.arange(x.shape[1], dtype=float)[None, :]
    n = obs.sum(axis=1)
    tm = np.divide((t * obs).sum(axis=1), n, out=np.zeros(len(x)), where=n > 0)
    xm = np.divide((x * obs).sum(axis=1), n, out=np.zeros(len(x)), where=n > 0)
    dt = (t - tm[:, None]) * obs
    num = (dt * (x - xm[:, None])).sum(axis=1)
    den = (dt ** 2).sum(axis=1)
    return np.divide(num, den, out=np.zeros(len(x)), where=den > 0)


def component_paths(level_s: np.ndarray, level_d: np.ndarray, trend_d: np.ndarray, phi: np.ndarray,
                    alpha: np.ndarray, b0: np.ndarray, n_seen: np.ndarray, lead: np.ndarray,
                    use_trend: np.ndarray) -> np.ndarray:
    """SES, damped-trend and Theta forecasts at leads ``lead`` (1-based) -> (3, ..., L).

    Every argument but ``lead`` has one value per forecast (any shape); series without enough
    history for a trend (``use_trend`` False) get the SES forecast in all three places."""
    k = lead.astype(float)
    ses = level_s[..., None] * np.ones_like(k)
    damp_sum = np.cumsum(phi[..., None] ** k, axis=-1)
    damped = level_d[..., None] + damp_sum * trend_d[..., None]
    a = alpha[..., None]
    theta = level_s[..., None] + 0.5 * b0[..., None] * (k - 1 + 1 / a - (1 - a) ** n_seen[..., None] / a)
    trend = use_trend[..., None]
    out = np.stack([ses, np.where(trend, damped, ses), np.where(trend, theta, ses)])
    return np.maximum(out, 0.0)


def season_windows(n_t: int, m: int) -> tuple[int, ...]:
    """The seasonal windows (SEASON_WINDOWS) that differ on ``n_t`` periods: a window longer
    than the history keeps every ratio, so the longer ones would repeat it."""
    seasons = -(-n_t // max(m, 1))
    return tuple(sorted({min(int(k), seasons) for k in SEASON_WINDOWS}))


def origin_min_history(n_obs: np.ndarray, horizon: int) -> np.ndarray:
    """Periods of history a series needs behind a rolling origin for that origin to be scored:
    a horizon's worth, or half the history it has at the last origin when that is shorter (at
    least two).

    Why: the errors are to tell how far the forecast made now will be off, and a forecast made
    from a few periods is far worse than one from the whole history (on the 39-week bike
    series, origins from their first weeks made the 80 % interval cover 88 % of the held-out
    weeks). A long series has that much history at every origin; a short one keeps its later
    origins (half of them), so it still has errors of its own."""
    at_last = np.asarray(n_obs) - int(horizon)
    return np.maximum(np.minimum(int(horizon), at_last // 2), 2)


def fit(y: np.ndarray, first: np.ndarray, position: np.ndarray, position_future: np.ndarray, m: int,
        horizon: int, hol_hist: list[list[str]] | None = None, hol_fut: list[list[str]] | None = None
        ) -> dict:
    """Fit every series of ``y`` (S, T; periods before ``first`` are not history) and forecast
    ``len(position_future)`` periods. Series need at least one observed period.

    Candidates: each smoothing family (SES, damped trend, Theta) on the series deseasonalised
    with each seasonal window (``season_windows``); each series averages the TOP_CANDIDATES
    with the smallest squared error over its rolling-origin forecasts (selection.py).

    Returns mean and variance (S, F), relative error variance per lead (S, F), the scored
    rolling-origin forecasts (calib: mean, var, actual, flat) and per-series diagnostics."""
    n_series, n_t = y.shape
    n_f = len(position_future)
    t_idx = np.arange(n_t)
    obs = t_idx[None, :] >= first[:, None]
    n_obs = n_t - first
    windows = season_windows(n_t, m)
    base_kept = windows[-1]
    season, season_f, own_weight = seasonal_indices(y, obs, position, m, position_future, kept=base_kept)
    hol_f = np.ones(n_f)
    hh = np.ones(n_t)
    if hol_hist is not None and any(hol_hist):
        hh, hol_f = holiday_factors(y, obs, season, hol_hist, hol_fut or [[] for _ in range(n_f)], m)
    # Rolling origins: the last MIN_ORIGINS periods (a season at least) from which a whole
    # horizon of history follows, scored once a series has enough history behind them.
    h = max(int(horizon), 1)
    n_orig = max(m, MIN_ORIGINS)
    origins = np.arange(max(n_t - h - n_orig, 0), max(n_t - h, 0))
    n_o = len(origins)
    lead = np.arange(1, h + 1)
    lead_f = np.arange(1, n_f + 1)
    win = origins[:, None] + lead[None, :]  # (J, h) period index of each target
    # A trend needs a few seasons (or, without a season, a dozen periods) to be told from noise.
    use_trend = n_obs >= max(2 * m, 12) if m > 1 else n_obs >= 12
    usable_base = obs & (season * hh[None, :] > 0.05)
    if n_o:
        y_o = y[:, win]
        use_o = (origins[None, :, None] >= first[:, None, None] + origin_min_history(n_obs, h)[:, None, None]
                 ) & usable_base[:, win]
    else:
        y_o = np.zeros((n_series, 0, h))
        use_o = np.zeros((n_series, 0, h), dtype=bool)
    # Every window's series are smoothed together, stacked as rows (W * S): one pass over time
    # for all windows (the per-period overhead dominates on few series).
    n_w = len(windows)
    cut = int(origins[0]) + 1 if n_o else n_t
    s_hist, s_fut, s_o = [], [], []
    for kept in windows:
        sh, sf = (season, season_f) if kept == base_kept else seasonal_indices(
            y, obs, position, m, position_future, kept=kept)[:2]
        s_hist.append(sh * hh[None, :])
        s_fut.append(sf * hol_f[None, :])
        if n_o:
            # The origins see what a forecast made there would have seen: seasonal factors and
            # Theta's drift from the periods before the first origin only, and the level and
            # trend run on the series deseasonalised with those factors. Factors fitted on the
            # scored periods themselves would make the errors look smaller than a forecast's
            # (the intervals too narrow, and the short windows, which fit the last seasons most
            # closely, chosen too often).
            s_o.append(seasonal_indices(y, obs, position, m, position_future, upto=cut, kept=kept)[0]
                       * hh[None, :])
    s_hist, s_fut = np.concatenate(s_hist), np.concatenate(s_fut)  # (W*S, T), (W*S, F)
    y_w, obs_w, first_w = np.tile(y, (n_w, 1)), np.tile(obs, (n_w, 1)), np.tile(first, n_w)
    trend_w = np.tile(use_trend, n_w)
    usable = obs_w & (s_hist > 0.05)
    x = np.divide(y_w, s_hist, out=np.zeros_like(y_w, dtype=float), where=usable)
    # Each family's constants are chosen per series and window by in-sample one-step error; the
    # final states are those of the chosen constants.
    sm = smooth(x, usable, first_w, origins[:0])
    best_s, best_d = np.argmin(sm["sse_s"], axis=1), np.argmin(sm["sse_d"], axis=1)
    alpha = np.asarray(SES_ALPHAS)[best_s]
    chosen = np.asarray(DAMPED)[best_d]
    phi = chosen[:, 2]
    b0 = drift(x, usable)
    rows = np.arange(n_w * n_series)
    paths_f = component_paths(sm["ls"][rows, best_s], sm["ld"][rows, best_d], sm["bd"][rows, best_d],
                              phi, alpha, b0, sm["n_seen"], lead_f, trend_w) * s_fut[None]
    # Candidates (K = 3 W) in a fixed order: window by window, SES, damped, Theta within each.
    cand_f = paths_f.reshape(3, n_w, n_series, n_f).transpose(1, 0, 2, 3).reshape(3 * n_w, n_series, n_f)
    # The choice rests on the latest season of origins only (MIN_ORIGINS).
    choose = use_o & (np.arange(n_o) >= n_o - max(m, MIN_SELECT_ORIGINS))[None, :, None]
    sse = np.zeros((n_series, 3 * n_w))
    # The errors behind the intervals must not be those the choice was made on: the chosen
    # candidates' errors on the periods that chose them are optimistic (the intervals came out
    # too narrow on later periods, and splitting the scored periods in time did not cure it, the
    # halves sharing their origins' level errors). The equal-weight average of all candidates
    # involves no choice; its errors bound the chosen average's from above (it is the less
    # accurate forecast on these series), so the intervals err on the wide side.
    mu_o = np.zeros((n_series, n_o, h))
    if n_o:
        s_o = np.concatenate(s_o)
        usable_o = obs_w & (s_o > 0.05)
        x_o = np.divide(y_w, s_o, out=np.zeros_like(y_w, dtype=float), where=usable_o)
        sm_o = smooth(x_o, usable_o, first_w, origins, alpha[:, None], chosen[:, None, :])
        b0_o = drift(x_o, usable_o & (t_idx[None, :] < cut))
        rep = (lambda v: np.repeat(v[:, None], n_o, 1))
        # The origins' forecasts of a window and a block of series at a time: all candidates'
        # at once would take K times the memory of one (gigabytes for tens of thousands of
        # monthly series).
        block = max(1, ORIGIN_BLOCK_VALUES // (3 * n_o * h))
        for w in range(n_w):
            for lo in range(0, n_series, block):
                hi = min(lo + block, n_series)
                r = slice(w * n_series + lo, w * n_series + hi)
                paths_o = component_paths(sm_o["at_s"][r, :, 0], sm_o["at_ld"][r, :, 0], sm_o["at_bd"][r, :, 0],
                                          rep(phi[r]), rep(alpha[r]), rep(b0_o[r]), sm_o["at_seen"][r], lead,
                                          rep(trend_w[r])) * s_o[r][:, win][None]
                err = np.where(choose[lo:hi][None], (y_o[lo:hi][None] - paths_o) ** 2, 0.0)
                sse[lo:hi, 3 * w:3 * w + 3] = err.sum(axis=(2, 3)).T
                mu_o[lo:hi] += paths_o.sum(axis=0) / (3 * n_w)
    weights = top_weights(sse, choose.any(axis=(1, 2)), TOP_CANDIDATES)
    mean = np.einsum("sk,ksf->sf", weights, cand_f)
    # The base window's future seasonal shape and the level it implies (the fallbacks borrow the
    # pooled shape, weighted by level).
    season_f = season_f * hol_f[None, :]
    lvl = np.divide(mean, season_f, out=np.zeros_like(mean), where=season_f > 0)
    # Diagnostics: the longest window's constants.
    base = slice((n_w - 1) * n_series, n_w * n_series)
    alpha, phi, b0 = alpha[base], phi[base], b0[base]
    # Relative squared error beyond the count noise, per series and per lead.
    e2 = np.where(use_o, (y_o - mu_o) ** 2 - mu_o, 0.0)
    m2 = np.where(use_o, mu_o ** 2, 0.0)
    n_use = use_o.sum(axis=(1, 2))
    rel_s = np.divide(e2.sum(axis=(1, 2)), m2.sum(axis=(1, 2)), out=np.full(n_series, np.nan),
                      where=m2.sum(axis=(1, 2)) > 0)
    has = np.isfinite(rel_s)
    pooled = float(np.median(np.clip(rel_s[has], 0, MAX_REL_VAR))) if has.any() else 0.25
    # Lead-time growth, pooled over series (each series' relative errors by lead over its mean).
    by_lead = np.divide(e2.sum(axis=1), m2.sum(axis=1), out=np.full((n_series, h), np.nan),
                        where=m2.sum(axis=1) > 0)
    ratio = by_lead / np.where(has & (rel_s > 0), rel_s, np.nan)[:, None]
    finite = np.isfinite(ratio)
    growth = np.ones(h)
    for k in np.flatnonzero(finite.any(axis=0)):  # a lead no series scored keeps 1
        growth[k] = np.median(ratio[finite[:, k], k])
    growth = np.where(np.isfinite(growth), growth, 1.0)
    growth = np.maximum.accumulate(np.maximum(growth, 1e-3))
    growth = growth / growth.mean()
    # Shrink each series' error level towards the pooled one by its number of scored periods.
    n_eff = n_use / max(h, 1)
    rel = np.where(has, (n_eff * np.clip(rel_s, 0, MAX_REL_VAR) + 4 * pooled) / (n_eff + 4), pooled)
    # Short series: the error of a level estimated from n periods is at least about 1/n of a
    # period's own variance on top.
    rel = rel + np.where(n_obs < max(2 * m, 12), 1.0 / np.maximum(n_obs, 1), 0.0)
    growth_f = np.concatenate([growth, np.full(max(n_f - h, 0), growth[-1])])[:n_f] if n_f else growth[:0]
    rel_f = np.minimum(rel[:, None] * growth_f[None, :], MAX_REL_VAR)
    var = mean + rel_f * mean ** 2
    rel_o = np.minimum(rel[:, None, None] * growth[None, None, :], MAX_REL_VAR)
    calib = dict(mean=mu_o[use_o], var=(mu_o + rel_o * mu_o ** 2)[use_o], actual=y_o[use_o])
    model = np.where(use_trend, "local_comb_nb", "local_ses_nb")
    return dict(mean=mean, var=var, rel=rel_f, model=model, alpha=alpha, phi=phi, drift=b0,
                season_weight=own_weight, cv_error=np.sqrt(np.clip(rel_s, 0, None)), calib=calib,
                season_f=season_f, level_f=lvl, n_obs=n_obs)


# --------------------------------------------------------------------------- frames

MAX_HISTORY_PERIODS = {"weekly": 1100, "monthly": 600, "quarterly": 200}
MIN_OBS_PERIODS = 3  # fewer observed periods: the recent mean (fallback_recent_mean)
MAX_CALIBRATION_PERIODS = 20_000  # scored (series, period) pairs kept to calibrate the intervals


def forecast_periodic(history: pd.DataFrame, positions: pd.DataFrame, freq: Frequency, *,
                      forecast_start: date, horizon: int, window_days: pd.DataFrame,
                      confidence_level: float, holiday_country: str | None,
                      holiday_subdivision: str | None, holidays: pd.DataFrame | None,
                      max_history_periods: int | None, variance_scale: float):
    """``forecast()`` for weekly, monthly or quarterly data: one row per period."""
    from .engine import ForecastResult, _daily_frame, _require, _window_lengths

    _require(history, "history", ["store_id", "product_id", "sale_date", "units"])
    _require(positions, "positions", ["store_id", "product_id"])
    keys = (positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates()
            .reset_index(drop=True))
    category = category_of(positions, keys)
    first_future = freq.next_on_or_after(pd.Timestamp(forecast_start))
    windows = _window_lengths(window_days, keys)
    n_future = int(max(horizon, windows.max(initial=1)))
    future = pd.date_range(first_future, periods=n_future, freq=freq.alias)
    limit = int(max_history_periods or MAX_HISTORY_PERIODS[freq.kind])
    last = first_future - freq.offset
    sale_date = pd.to_datetime(history["sale_date"])
    if getattr(sale_date.dtype, "tz", None):
        sale_date = sale_date.dt.tz_localize(None)
    sale_date = sale_date.dt.normalize()
    units = pd.to_numeric(history["units"], errors="coerce")
    bad = units.isna() | (units < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"history row {row}: field units={history['units'].iloc[row]!r} "
                         "is not a non-negative number")
    after = sale_date >= pd.Timestamp(forecast_start)
    if after.any():
        row = int(np.flatnonzero(after.to_numpy())[0])
        raise ValueError(f"history row {row}: sale_date {sale_date.iloc[row].date()} is on or after "
                         f"forecast_start {forecast_start}")
    start = max(sale_date.min(), last - (limit - 1) * freq.offset) if len(sale_date) else last
    periods = pd.date_range(start, last, freq=freq.alias) if start <= last else pd.DatetimeIndex([])
    n_t = len(periods)
    si = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_arrays(
        [history["store_id"].astype(str), history["product_id"].astype(str)]))
    ti = periods.get_indexer(sale_date)
    ok = (si >= 0) & (ti >= 0)
    y = np.zeros((len(keys), n_t))
    np.add.at(y, (si[ok], ti[ok]), units.to_numpy(dtype=float)[ok])
    has_rows = np.zeros(len(keys), dtype=bool)
    has_rows[np.unique(si[si >= 0])] = True
    sold = y > 0
    first = np.where(sold.any(axis=1), sold.argmax(axis=1), n_t)

    m = freq.season_length
    hol_hist = hol_fut = None
    if n_t:
        hol = holiday_table(periods[0].date() - timedelta(days=int(freq.period_days) + 1),
                            future[-1].date(), holiday_country, holiday_subdivision, holidays)
        if len(hol):
            hp = freq.periods(pd.DatetimeIndex(hol["holiday_date"]))
            by_period: dict = {}
            for p, name in zip(hp, hol["holiday_name"]):
                by_period.setdefault(p, set()).add(str(name))
            hol_hist = [sorted(by_period.get(p, ())) for p in freq.periods(periods)]
            hol_fut = [sorted(by_period.get(p, ())) for p in freq.periods(future)]

    n_series = len(keys)
    mean = np.zeros((n_series, n_future))
    var = np.zeros((n_series, n_future))
    rel = np.zeros((n_series, n_future))
    model = np.full(n_series, "fallback_zero", dtype=object)
    reason = np.full(n_series, None, dtype=object)
    n_obs = n_t - first
    total = y.sum(axis=1)
    reason[~has_rows] = "new_series"
    reason[has_rows & (total == 0)] = "all_zero"
    reason[(reason == None) & (n_obs < MIN_OBS_PERIODS)] = "too_short"  # noqa: E711
    fit_ok = reason == None  # noqa: E711
    diag = {name: np.full(n_series, np.nan) for name in ("param", "cv_error", "dispersion", "level_var")}
    calib = dict(mean=np.zeros(0), var=np.zeros(0), actual=np.zeros(0))
    season_f_pool = np.ones(n_future)
    if fit_ok.any():
        okx = np.flatnonzero(fit_ok)
        pos = freq.position(periods)
        pos_f = freq.position(future)
        res = fit(y[okx], first[okx], pos, pos_f, m, horizon, hol_hist, hol_fut)
        mean[okx], var[okx], rel[okx] = res["mean"], res["var"], res["rel"]
        model[okx] = res["model"]
        diag["param"][okx] = res["alpha"]
        diag["cv_error"][okx] = res["cv_error"]
        diag["level_var"][okx] = res["rel"][:, 0]
        calib = res["calib"]
        # The pooled seasonal shape of the future periods (relative), for series without their own.
        sf = res["season_f"]
        w = np.maximum(res["level_f"][:, :1], 0)
        season_f_pool = (sf * w).sum(axis=0) / w.sum() if w.sum() > 0 else season_f_pool
    # Fallbacks, every one with a wide, honest distribution.
    recent = slice(max(0, n_t - m), n_t)
    rate_recent = np.divide(y[:, recent].sum(axis=1), np.maximum(np.minimum(n_obs, m), 1))
    short = reason == "too_short"
    if short.any():
        rate = total[short] / np.maximum(n_obs[short], 1)
        mean[short] = rate[:, None] * season_f_pool[None, :]
        r = 1.0 / np.maximum(n_obs[short], 1) + 0.25
        rel[short] = r[:, None]
        model[short] = "fallback_recent_mean"
    new = reason == "new_series"
    if new.any():
        mu, r, source = new_series_rates(keys, category, rate_recent, fit_ok | short, new)
        mean[new] = mu[:, None] * season_f_pool[None, :]
        rel[new] = r[:, None]
        model[new] = source
    fb = short | new
    var[fb] = mean[fb] + rel[fb] * mean[fb] ** 2
    mean = np.nan_to_num(mean, nan=0.0)
    var = np.maximum(np.nan_to_num(var, nan=0.0), mean)
    var = mean + variance_scale * (var - mean)
    keep = np.arange(len(calib["mean"]))
    if keep.size > MAX_CALIBRATION_PERIODS:
        # A fixed random subset estimates the thresholds as well at a fraction of the cost.
        keep = np.sort(np.random.default_rng(0).choice(keep, MAX_CALIBRATION_PERIODS, replace=False))
    calibration = calibration_sample(calib["actual"][keep], calib["mean"][keep],
                                     calib["mean"][keep] + variance_scale * (calib["var"][keep] - calib["mean"][keep]))
    demand_class = _demand_class(y, first)
    demand_class = np.where(reason == None, demand_class, "none")  # noqa: E711
    daily = _daily_frame(keys, future[:horizon], mean[:, :horizon], var[:, :horizon], confidence_level,
                         model, reason, calibration, np.repeat(demand_class[:, None], horizon, axis=1))
    protection = _protection(keys, windows, mean, var, rel, model)
    series = keys.copy()
    series["demand_class"] = demand_class
    series["model"] = model
    series["fallback_reason"] = reason
    series["frequency"] = freq.alias
    series["n_periods"] = n_obs
    for name, values in diag.items():
        series[name] = values
    return ForecastResult(daily=daily, protection=protection, series=series, calibration=calibration)


def category_of(positions: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray | None:
    if "category" not in positions.columns:
        return None
    cat = positions.loc[:, ["store_id", "product_id", "category"]].astype(str).drop_duplicates(
        ["store_id", "product_id"])
    return keys.merge(cat, on=["store_id", "product_id"], how="left")["category"].to_numpy(dtype=object)


def new_series_rates(keys: pd.DataFrame, category: np.ndarray | None, rate: np.ndarray,
                     known: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate per period of series without history: the same product's median over the stores
    that sell it, else its category's median, else the chain's; with the relative variance of
    the rates it was taken from (a new product may sell like any of them), at least 0.5.

    Returns (rate, relative variance, model name) for the ``new`` series."""
    product = keys["product_id"].to_numpy(dtype=object)
    out_rate = np.zeros(int(new.sum()))
    out_rel = np.full(int(new.sum()), 0.5)
    source = np.full(int(new.sum()), "fallback_chain_median", dtype=object)
    pools = [("fallback_product_median", product)]
    if category is not None:
        pools.append(("fallback_category_median", np.asarray(category, dtype=object)))
    done = np.zeros(int(new.sum()), dtype=bool)
    for name, label in pools:
        frame = pd.DataFrame({"label": label[known], "rate": rate[known]})
        stats = frame.groupby("label")["rate"].agg(["median", "mean", "var", "size"])
        got = pd.Series(label[new]).map(stats["median"]).to_numpy(dtype=float)
        mean_r = pd.Series(label[new]).map(stats["mean"]).to_numpy(dtype=float)
        var_r = pd.Series(label[new]).map(stats["var"]).fillna(0).to_numpy(dtype=float)
        take = ~done & np.isfinite(got)
        out_rate[take] = got[take]
        out_rel[take] = np.maximum(np.divide(var_r[take], np.maximum(mean_r[take], 1e-9) ** 2), 0.5)
        source[take] = name
        done |= take
    if known.any() and (~done).any():
        out_rate[~done] = float(np.median(rate[known]))
        out_rel[~done] = max(float(np.var(rate[known]) / max(np.mean(rate[known]), 1e-9) ** 2), 0.5)
    return out_rate, np.minimum(out_rel, MAX_REL_VAR), source


def _demand_class(y: np.ndarray, first: np.ndarray) -> np.ndarray:
    obs = np.arange(y.shape[1])[None, :] >= first[:, None]
    nz = (y > 0) & obs
    n_nz = nz.sum(axis=1)
    adi = np.divide(obs.sum(axis=1), n_nz, out=np.full(len(y), np.inf), where=n_nz > 0)
    nz_mean = np.divide((y * nz).sum(axis=1), n_nz, out=np.zeros(len(y)), where=n_nz > 0)
    nz_var = np.divide(((y - nz_mean[:, None]) ** 2 * nz).sum(axis=1), np.maximum(n_nz - 1, 1))
    cv2 = np.divide(nz_var, nz_mean ** 2, out=np.zeros(len(y)), where=nz_mean > 0)
    return np.where(adi < 1.32, np.where(cv2 < 0.49, "smooth", "erratic"),
                    np.where(cv2 < 0.49, "intermittent", "lumpy")).astype(object)


def _protection(keys: pd.DataFrame, windows: np.ndarray, mean: np.ndarray, var: np.ndarray,
                rel: np.ndarray, model: np.ndarray) -> pd.DataFrame:
    """Demand summed over each window of periods: the count noise adds up, the relative error
    (level and trend) is shared by the periods of a window, so its standard deviations add."""
    from .engine import protection_rows

    in_window = np.arange(mean.shape[1])[None, :] < windows[:, None]
    m = (mean * in_window).sum(axis=1)
    noise = ((var - rel * mean ** 2) * in_window).sum(axis=1)
    shared = ((np.sqrt(np.maximum(rel, 0)) * mean) * in_window).sum(axis=1)
    v = np.maximum(noise, 0) + shared ** 2
    return protection_rows(keys, windows, m, v, model)


def protection_for_days(protection: pd.DataFrame, days: np.ndarray, period_days: float) -> pd.DataFrame:
    """Window demand of whole periods (``window_days`` counting periods) restated for windows of
    ``days`` days: the share of the periods' days the window covers scales the mean and the
    standard deviation (the error of a period's forecast is shared by its days), and the
    quantiles follow from the count distribution with those moments. ``window_days`` becomes
    ``days``."""
    days = np.asarray(days, dtype=float)
    span = protection["window_days"].to_numpy(dtype=float) * period_days
    share = np.clip(days / np.maximum(span, 1e-9), 0.0, 1.0)
    out = protection.copy()
    mean = out["demand_mean"].to_numpy(dtype=float) * share
    std = out["demand_std"].to_numpy(dtype=float) * share
    q = count_quantiles(mean, np.maximum(std ** 2, mean), QUANTILES)
    out["window_days"] = days.astype(int)
    out["demand_mean"] = mean
    out["demand_std"] = std
    for i, level in enumerate(QUANTILES):
        out[f"q{int(round(level * 100))}"] = q[:, i]
    return out


def forecast_for_days(history: pd.DataFrame, positions: pd.DataFrame, freq: Frequency, *,
                      forecast_start: date, horizon_days: int, window_days: pd.DataFrame,
                      history_days: int | None = None, **kwargs):
    """``forecast()`` of weekly or monthly sales for a planner who counts in days (the planning
    run, the replay): the horizon, the history and each protection window (``window_days`` in
    days) become whole periods, rounded up; the window demand is then restated for the window's
    own days (``protection_for_days``), so the policy plans the same lead time and review period
    as with daily data. ``daily`` holds one row per period."""
    import dataclasses

    from .engine import forecast
    from .frequency import periods_for_days

    w = window_days.loc[:, ["store_id", "product_id", "window_days"]].copy()
    w["store_id"] = w["store_id"].astype(str)
    w["product_id"] = w["product_id"].astype(str)
    res = forecast(history, positions, forecast_start=forecast_start,
                   horizon=int(periods_for_days(horizon_days, freq)),
                   window_days=w.assign(window_days=periods_for_days(w["window_days"].to_numpy(), freq)),
                   # The kind, not the alias: series on several weekly grids are forecast per grid.
                   frequency=freq.kind,
                   max_history_periods=None if history_days is None else int(periods_for_days(history_days, freq)),
                   **kwargs)
    days = res.protection[["store_id", "product_id"]].merge(
        w.drop_duplicates(["store_id", "product_id"], keep="last"), on=["store_id", "product_id"],
        how="left")["window_days"].to_numpy()
    return dataclasses.replace(res, protection=protection_for_days(res.protection, days, freq.period_days))
