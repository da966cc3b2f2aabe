"""Local forecasting engine: the ARIMA_PLUS pipeline, vectorised across all series at once.

Steps (each one numpy operation over a dense series x days matrix, never a Python loop over
series):

1. gap filling: history rows go into a dense matrix, missing days are zero sales; days before a
   series' first sale are unobserved;
2. weekly seasonality per series, shrunk towards its store's profile (noisy series borrow
   strength); holiday effects pooled over the chain per holiday; yearly seasonality (Fourier
   terms, shrunk towards the chain profile) when two years of history exist;
3. a first pass with one smoothing constant gives in-sample means, a negative-binomial
   dispersion per series, spikes (capped) and dips (runs of zeros too unlikely to be demand,
   i.e. stock-outs, excluded);
4. a second pass fits every candidate level model on the cleaned, deseasonalised series:
   simple exponential smoothing, i.e. ARIMA(0,1,1), and TSB (demand probability x size, each
   smoothed), several constants each; each series keeps the candidate with the lowest error of
   the mean over the next ``horizon`` days, measured at every in-sample origin (rolling origin);
   the ADI/CV^2 demand class is reported, not imposed;
5. at rolling origins over the last year the chosen forecast is compared day by day with two
   weekly candidates (seasonal naive, four-week weekday mean), which replace it for a series
   only when clearly better there;
6. the same rolling origins give the variance of the level error over a window; with the
   dispersion this gives a count distribution (negative binomial) per day and for the demand
   summed over any window, with the right variance (day-to-day noise plus the level error,
   which is shared by all days of a window);
7. the reported intervals are calibrated on the mid-PITs of those rolling-origin forecasts
   (calibration.py), so they cover their nominal level despite the discreteness of counts.

Planned promotions (``future_promotions``) are a multiplicative regressor: lift per product,
estimated against the level on past promotion days.

Series that cannot be modelled get a documented fallback and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from .calendar import holiday_table
from .components import COMPONENT_COLUMNS, components_frame
from .calibration import CALIBRATION_COLUMNS, calibration_sample, merge_calibrations
from .calibration import interval as calibrated_interval
from .distributions import QUANTILES, count_quantiles
from .frequency import Frequency, history_frequency

MIN_OBS_DAYS = 28  # fewer observed days than this: too short for weekly seasonality
# A trailing zero run at least this long (a quarter) and implausible under the series model means
# discontinued; shorter implausible runs are stock-outs (wrongly zeroing a stocked-out product
# would stop its replenishment, the costlier error).
DISCONTINUED_DAYS = 91
MAX_CALIBRATION_DAYS = 300_000  # scored (series, day) pairs used to calibrate the intervals
# Largest relative variance of a series' level error (a level CV of 200 %).
MAX_LEVEL_VAR = 4.0
# A simpler candidate replaces the pipeline for a series only when its rolling-origin daily
# squared error is lower by more than this share (the choice is itself noisy).
CANDIDATE_MARGIN = 0.05
ADI_CUT = 1.32  # Syntetos-Boylan-Croston classification
CV2_CUT = 0.49
SES_ALPHAS = (0.01, 0.02, 0.04, 0.07, 0.12, 0.2, 0.35)
TSB_PARAMS = ((0.01, 0.02), (0.02, 0.05), (0.04, 0.1), (0.08, 0.1), (0.15, 0.2), (0.02, 0.2))
DAILY_COLUMNS = ["store_id", "product_id", "forecast_date", "forecast_mean", "standard_error",
                 "confidence_level", "lower_bound", "upper_bound", "quantile_50", "quantile_80",
                 "quantile_90", "quantile_95", "quantile_99", "model", "fallback_reason"]
PROTECTION_COLUMNS = ["store_id", "product_id", "window_days", "demand_mean", "demand_std",
                      "q50", "q80", "q90", "q95", "q99", "model"]


@dataclass(frozen=True)
class ForecastResult:
    """Daily forecasts (``forecasts`` table columns without run_id), window demand
    (``demand_windows`` columns without run_id and run_date) and per-series diagnostics."""

    daily: pd.DataFrame
    protection: pd.DataFrame
    series: pd.DataFrame
    # The scored days of the engine's rolling-origin forecasts (calibration.py); empty when
    # there was nothing to score (then intervals use the nominal levels).
    calibration: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CALIBRATION_COLUMNS))
    # forecast_components columns without run_id (empty unless asked for).
    components: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COMPONENT_COLUMNS))

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated daily interval (lower, upper) at ``level``, aligned with ``daily``."""
        mean = self.daily["forecast_mean"].to_numpy(dtype=float)
        var = self.daily["standard_error"].to_numpy(dtype=float) ** 2
        group = None
        if "demand_class" in self.series.columns and len(self.series):
            # daily holds the series in order, the same number of days each.
            group = np.repeat(self.series["demand_class"].to_numpy(dtype=object),
                              len(self.daily) // len(self.series))
        return calibrated_interval(mean, var, level, self.calibration, group)


@dataclass
class _Dense:
    keys: pd.DataFrame  # store_id, product_id in output order
    days: pd.DatetimeIndex
    units: np.ndarray  # (S, T)
    promo: np.ndarray  # (S, T) bool
    has_rows: np.ndarray  # (S,) bool
    first: np.ndarray  # (S,) index of first day with sales (T if none)


def forecast(history: pd.DataFrame, positions: pd.DataFrame, *, forecast_start: date, horizon: int,
             window_days: pd.DataFrame, confidence_level: float = 0.9,
             holiday_country: str | None = "US", holiday_subdivision: str | None = None,
             seed: int = 42, holidays: pd.DataFrame | None = None,
             max_history_days: int = 1100, variance_scale: float = 1.0,
             max_chunk_series: int = 8000, component_days: int = 0,
             future_promotions: pd.DataFrame | None = None,
             frequency: str | Frequency | None = None,
             max_history_periods: int | None = None) -> ForecastResult:
    """Forecast every position for ``horizon`` periods from ``forecast_start``.

    ``frequency`` is the history's period: a pandas offset alias ("D", "W-FRI", "MS", "ME",
    "QS"; or daily/weekly/monthly/quarterly) or None to infer it from the sale dates (a
    ValueError names dates that fit no frequency). Daily data runs the daily engine below;
    weekly, monthly and quarterly data the periodic engine (``periodic.py``): horizon, windows
    and ``max_history_periods`` then count periods, and the forecast rows are dated on the
    history's own grid, the first period on or after ``forecast_start``. Positions may carry a
    ``category`` column: a product without history anywhere then takes its category's rate.

    ``holidays`` (holiday_date, holiday_name) replaces the public-holiday calendar of
    ``holiday_country``. ``variance_scale`` multiplies the predictive variance (set by a
    backtest calibration; 1 means the in-sample estimate). The engine is deterministic;
    ``seed`` is accepted for interface stability with sampling-based engines. More than
    ``max_chunk_series`` series are forecast in chunks of whole stores, which bounds memory
    (pooled estimates then pool within a chunk). ``component_days`` > 0 also returns the
    decomposition of that many days of history and of the forecast (``components``, the
    ``forecast_components`` columns without run_id).
    """
    del seed  # deterministic: quantiles come from closed-form count distributions
    if horizon < 1:
        raise ValueError(f"horizon={horizon}: expected >= 1")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level={confidence_level}: expected 0 < level < 1")
    _require(history, "history", ["store_id", "product_id", "sale_date", "units"])
    # Weekly series anchored on different weekdays (or monthly on starts and ends) in one call:
    # each group of series on one grid is forecast on its own dates (``groups``).
    freq, groups = history_frequency(frequency, history)
    if groups is not None:
        return _forecast_by_grid(history, positions, groups, forecast_start=forecast_start, horizon=horizon,
                                 window_days=window_days, confidence_level=confidence_level,
                                 holiday_country=holiday_country, holiday_subdivision=holiday_subdivision,
                                 holidays=holidays, max_history_periods=max_history_periods,
                                 variance_scale=variance_scale)
    if not freq.daily:
        from .periodic import forecast_periodic

        return forecast_periodic(history, positions, freq, forecast_start=forecast_start, horizon=horizon,
                                 window_days=window_days, confidence_level=confidence_level,
                                 holiday_country=holiday_country, holiday_subdivision=holiday_subdivision,
                                 holidays=holidays, max_history_periods=max_history_periods,
                                 variance_scale=variance_scale)
    if max_history_periods is not None:
        max_history_days = int(max_history_periods)
    keys = positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates()
    if len(keys) > max_chunk_series:
        if "category" in positions.columns:  # chunks keep the categories of new products
            keys = positions.loc[:, ["store_id", "product_id", "category"]].astype(str).drop_duplicates(
                ["store_id", "product_id"])
        return _forecast_in_chunks(history, keys, max_chunk_series, forecast_start=forecast_start,
                                   horizon=horizon, window_days=window_days,
                                   confidence_level=confidence_level, holiday_country=holiday_country,
                                   holiday_subdivision=holiday_subdivision, holidays=holidays,
                                   max_history_days=max_history_days, variance_scale=variance_scale,
                                   component_days=component_days, future_promotions=future_promotions,
                                   frequency=freq)
    forecast_start = pd.Timestamp(forecast_start).date()
    dense = _dense_of(history, positions, forecast_start, max_history_days)
    windows = _window_lengths(window_days, dense.keys)
    n_future = int(max(horizon, windows.max(initial=1)))
    future_days = pd.date_range(forecast_start, periods=n_future, freq="D")
    first_day = dense.days[0].date() if len(dense.days) else forecast_start
    hol = holiday_table(first_day, future_days[-1].date(), holiday_country, holiday_subdivision,
                        holidays)
    promo_future = None if future_promotions is None else _future_flags(future_promotions, dense.keys,
                                                                          future_days)
    from .periodic import category_of

    fit = _fit(dense, future_days, hol, horizon, component_days, promo_future,
               category_of(positions, dense.keys))
    mean = fit["mean"]  # (S, F)
    # Calibration scales the variance beyond Poisson (counts never vary less than that).
    var = np.maximum(mean + variance_scale * (fit["var"] - mean), mean)
    c = fit["calib"]
    calibration = calibration_sample(c["actual"], c["mean"],
                                     c["mean"] + variance_scale * c["extra"] * c["mean"] ** 2, c["group"])
    demand_class = fit["demand_class"]  # "none" for fallbacks
    daily = _daily_frame(dense.keys, future_days[:horizon], mean[:, :horizon], var[:, :horizon],
                         confidence_level, fit["model"], fit["reason"], calibration,
                         np.repeat(demand_class[:, None], horizon, axis=1))
    protection = _protection_frame(dense.keys, windows, mean, var, fit["level_var"] * variance_scale,
                                   fit["model"])
    series = dense.keys.copy()
    for name in ("demand_class", "model", "reason", "adi", "cv2", "dispersion", "level_var",
                 "param", "n_spikes", "n_dip_days", "cv_error"):
        series[name if name != "reason" else "fallback_reason"] = fit[name]
    components = components_frame(dense.keys, dense.days[len(dense.days) - fit["comp"]["trend"].shape[1]:],
                                  future_days[:horizon], fit["comp"], mean[:, :horizon], fit["model"]) \
        if component_days > 0 else pd.DataFrame(columns=COMPONENT_COLUMNS)
    return ForecastResult(daily=daily, protection=protection, series=series, calibration=calibration,
                          components=components)


def _forecast_by_grid(history: pd.DataFrame, positions: pd.DataFrame, groups: pd.Series,
                      **kwargs) -> ForecastResult:
    """One forecast per grid (``groups``: store_id, product_id -> alias), merged back into the
    order of ``positions``; positions without history join the largest group."""
    keys = positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates(["store_id", "product_id"])
    index = pd.MultiIndex.from_frame(keys)
    alias = pd.Series(groups.reindex(index).to_numpy(), index=range(len(keys)))
    alias = alias.fillna(groups.value_counts().idxmax())
    pos = positions.assign(store_id=positions["store_id"].astype(str), product_id=positions["product_id"].astype(str))
    pos = pos.drop_duplicates(["store_id", "product_id"])
    row_alias = groups.reindex(pd.MultiIndex.from_arrays([history["store_id"].astype(str),
                                                          history["product_id"].astype(str)])).to_numpy()
    parts = []
    for name in pd.unique(alias.to_numpy()):
        sel = (alias == name).to_numpy()
        parts.append(forecast(history.loc[row_alias == name], pos.loc[sel], frequency=name, **kwargs))
    order = pd.Series(np.arange(len(keys)), index=index)
    merged = []
    for name in ("daily", "protection", "series"):
        frame = pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        rank = order.reindex(pd.MultiIndex.from_frame(frame[["store_id", "product_id"]])).to_numpy()
        merged.append(frame.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True))
    return ForecastResult(*merged, calibration=merge_calibrations([p.calibration for p in parts],
                                                                       MAX_CALIBRATION_DAYS))


def _forecast_in_chunks(history: pd.DataFrame, keys: pd.DataFrame, max_chunk_series: int,
                        **kwargs) -> ForecastResult:
    counts = keys.groupby("store_id", sort=True).size()
    chunk_of_store: dict[str, int] = {}
    chunk, filled = 0, 0
    for store, n in counts.items():
        if filled and filled + n > max_chunk_series:
            chunk, filled = chunk + 1, 0
        chunk_of_store[store] = chunk
        filled += n
    store_chunk = history["store_id"].astype(str).map(chunk_of_store)
    key_chunk = keys["store_id"].map(chunk_of_store)
    parts = []
    for c in range(chunk + 1):
        parts.append(forecast(history.loc[store_chunk == c], keys.loc[key_chunk == c],
                              max_chunk_series=max_chunk_series, **kwargs))
    # Back to the order of `positions`, as an unchunked run returns it.
    order = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["store_id", "product_id"]]))
    merged = []
    for name in ("daily", "protection", "series"):
        frame = pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        rank = order.reindex(pd.MultiIndex.from_frame(frame[["store_id", "product_id"]])).to_numpy()
        merged.append(frame.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True))
    components = pd.concat([p.components for p in parts], ignore_index=True)
    return ForecastResult(*merged, calibration=merge_calibrations([p.calibration for p in parts],
                                                                       MAX_CALIBRATION_DAYS),
                          components=components)


# --------------------------------------------------------------------------- input

def _require(df: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}")


def _dense_of(history: pd.DataFrame, positions: pd.DataFrame, forecast_start: date,
              max_history_days: int) -> _Dense:
    """`_densify`'s matrix, built from the category codes when the ids are categorical (the
    planning run's chunks, `anomalies._dense`): the same matrix without turning every history
    row's ids into strings and matching them (a tenth of a chunk's forecast)."""
    from .anomalies import _dense

    _require(positions, "positions", ["store_id", "product_id"])
    keys = (positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates()
            .reset_index(drop=True))
    return _dense(history, keys, forecast_start, max_history_days)[0]


def _densify(history: pd.DataFrame, positions: pd.DataFrame, forecast_start: date,
             max_history_days: int) -> _Dense:
    _require(history, "history", ["store_id", "product_id", "sale_date", "units"])
    _require(positions, "positions", ["store_id", "product_id"])
    keys = (positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates()
            .reset_index(drop=True))
    n_series = len(keys)
    end = pd.Timestamp(forecast_start) - pd.Timedelta(days=1)
    hist = history.loc[:, [c for c in ("store_id", "product_id", "sale_date", "units", "on_promotion")
                           if c in history.columns]]
    sale_date = pd.to_datetime(hist["sale_date"]).dt.tz_localize(None).dt.normalize() \
        if getattr(hist["sale_date"].dtype, "tz", None) else pd.to_datetime(hist["sale_date"]).dt.normalize()
    units = pd.to_numeric(hist["units"], errors="coerce")
    bad = units.isna() | (units < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"history row {row}: field units={hist['units'].iloc[row]!r} "
                         "is not a non-negative number")
    after = sale_date > end
    if after.any():
        row = int(np.flatnonzero(after.to_numpy())[0])
        raise ValueError(f"history row {row}: sale_date {sale_date.iloc[row].date()} is on or after "
                         f"forecast_start {forecast_start}")
    start = end - pd.Timedelta(days=max_history_days - 1)
    if len(sale_date):
        start = max(start, sale_date.min())
    days = pd.date_range(start, end, freq="D") if start <= end else pd.DatetimeIndex([])
    n_days = len(days)
    index = pd.MultiIndex.from_frame(keys)
    row_key = pd.MultiIndex.from_arrays([hist["store_id"].astype(str), hist["product_id"].astype(str)])
    series_idx = index.get_indexer(row_key)
    day_idx = ((sale_date - start).dt.days).to_numpy()
    ok = (series_idx >= 0) & (day_idx >= 0)
    mat = np.zeros((n_series, n_days))
    promo = np.zeros((n_series, n_days), dtype=bool)
    has_rows = np.zeros(n_series, dtype=bool)
    if ok.any():
        si, di = series_idx[ok], day_idx[ok]
        np.add.at(mat, (si, di), units.to_numpy(dtype=float)[ok])
        if "on_promotion" in hist.columns:
            promo[si, di] = hist["on_promotion"].fillna(False).to_numpy(dtype=bool)[ok]
        has_rows[si] = True
    # Rows outside the kept window still prove the series exists (it is not new).
    has_rows[np.unique(series_idx[series_idx >= 0])] = True
    sold = mat > 0
    first = np.where(sold.any(axis=1), sold.argmax(axis=1), n_days)
    return _Dense(keys=keys, days=days, units=mat, promo=promo, has_rows=has_rows, first=first)


def _future_flags(plan: pd.DataFrame, keys: pd.DataFrame, future: pd.DatetimeIndex) -> np.ndarray:
    """(S, F) planned promotion days; a day without a row is not on promotion."""
    _require(plan, "future_promotions", ["store_id", "product_id", "sale_date", "on_promotion"])
    flags = np.zeros((len(keys), len(future)), dtype=bool)
    si = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_arrays(
        [plan["store_id"].astype(str), plan["product_id"].astype(str)]))
    di = future.get_indexer(pd.to_datetime(plan["sale_date"]).dt.normalize())
    on = plan["on_promotion"].fillna(False).to_numpy(dtype=bool)
    ok = (si >= 0) & (di >= 0) & on
    flags[si[ok], di[ok]] = True
    return flags


def _window_lengths(window_days: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    _require(window_days, "window_days", ["store_id", "product_id", "window_days"])
    w = window_days.loc[:, ["store_id", "product_id", "window_days"]].copy()
    w["store_id"] = w["store_id"].astype(str)
    w["product_id"] = w["product_id"].astype(str)
    w = w.drop_duplicates(["store_id", "product_id"], keep="last")
    merged = keys.merge(w, on=["store_id", "product_id"], how="left")
    if merged["window_days"].isna().any():
        row = merged.loc[merged["window_days"].isna()].iloc[0]
        raise ValueError(f"window_days: no row for store_id={row.store_id} product_id={row.product_id}")
    values = merged["window_days"].to_numpy(dtype=float)
    if (values < 1).any() or (values != np.round(values)).any():
        row = merged.iloc[int(np.flatnonzero((values < 1) | (values != np.round(values)))[0])]
        raise ValueError(f"window_days: store_id={row.store_id} product_id={row.product_id}: "
                         f"window_days={row.window_days!r} is not a positive whole number")
    return values.astype(int)


# --------------------------------------------------------------------------- model

def _weekday_profile(y: np.ndarray, obs: np.ndarray, dow: np.ndarray, store_codes: np.ndarray,
                     last: int = 364) -> np.ndarray:
    """Day-of-week factors (S, 7), mean 1, shrunk towards the store profile by volume."""
    t0 = max(0, y.shape[1] - last)
    yy, oo, dd = y[:, t0:], obs[:, t0:], dow[t0:]
    onehot = (dd[:, None] == np.arange(7)[None, :]).astype(float)  # (T, 7)
    sums = (yy * oo) @ onehot
    counts = oo.astype(float) @ onehot
    rate = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    n_stores = int(store_codes.max(initial=-1)) + 1
    store_sums = np.zeros((max(n_stores, 1), 7))
    store_counts = np.zeros((max(n_stores, 1), 7))
    np.add.at(store_sums, store_codes, sums)
    np.add.at(store_counts, store_codes, counts)
    store_rate = np.divide(store_sums, store_counts, out=np.zeros_like(store_sums), where=store_counts > 0)
    store_prof = _normalise(store_rate)
    # A weekday never observed at store level stays 1 rather than looking like a closed day.
    store_prof[store_counts == 0] = 1.0
    raw = _normalise(rate)
    # Shrinkage weight: the relative noise of a weekday mean is about sqrt(7 / units).
    volume = sums.sum(axis=1)
    weight = (volume / (volume + 400.0))[:, None] * (counts > 0)
    return _normalise(weight * raw + (1 - weight) * store_prof[store_codes])


def _normalise(rates: np.ndarray) -> np.ndarray:
    m = rates.mean(axis=1, keepdims=True)
    return np.divide(rates, m, out=np.ones_like(rates), where=m > 0)


def _holiday_effects(y: np.ndarray, obs: np.ndarray, days: pd.DatetimeIndex,
                     future: pd.DatetimeIndex, hol: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicative holiday factor per day of history (T,) and future (F,), pooled over series.

    The effect of a holiday is the chain's sales on it relative to the same weekday one and two
    weeks before and after; pooling over every series makes it estimable from a few occurrences.
    """
    hist_factor = np.ones(len(days))
    fut_factor = np.ones(len(future))
    if hol.empty or len(days) == 0:
        return hist_factor, fut_factor
    total = (y * obs).sum(axis=0)
    n_obs = obs.sum(axis=0).astype(float)
    hol_days = set(hol["holiday_date"])
    day_pos = {d: i for i, d in enumerate(days)}
    effects: dict[str, float] = {}
    for name, group in hol.groupby("holiday_name"):
        num = den = expected_units = 0.0
        for d in group["holiday_date"]:
            i = day_pos.get(d)
            if i is None or n_obs[i] == 0:
                continue
            refs = [day_pos.get(d + pd.Timedelta(days=k)) for k in (-14, -7, 7, 14)]
            refs = [j for j in refs if j is not None and days[j] not in hol_days and n_obs[j] > 0]
            if not refs:
                continue
            num += total[i] / n_obs[i]
            den += float(np.mean([total[j] / n_obs[j] for j in refs]))
            expected_units += float(np.mean([total[j] for j in refs]))
        if den > 0:
            # Empirical-Bayes shrinkage towards no effect: the ratio's sampling variance is about
            # 1 / expected units, the spread of true holiday effects about 0.3^2.
            raw = num / den
            w = expected_units / (expected_units + 1 / 0.3 ** 2)
            effects[name] = float(np.clip(w * raw + (1 - w), 0.0, 5.0))
    for _, row in hol.iterrows():
        effect = effects.get(row.holiday_name)
        if effect is None:
            continue
        i = day_pos.get(row.holiday_date)
        if i is not None:
            hist_factor[i] *= effect
        j = future.get_indexer([row.holiday_date])[0]
        if j >= 0:
            fut_factor[j] *= effect
    return hist_factor, fut_factor


def _yearly_profile(x: np.ndarray, obs: np.ndarray, days: pd.DatetimeIndex,
                    future: pd.DatetimeIndex, eligible: np.ndarray, order: int = 3
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Yearly multiplicative factors (S, T) and (S, F) from Fourier terms on weekly log means.

    Fitted by least squares for all eligible series in one solve (with a linear trend so growth
    is not mistaken for season), then shrunk towards the chain profile in proportion to each
    series' noise, as a single series' year is mostly noise.
    """
    n_series, n_days = x.shape
    hist = np.ones((n_series, n_days))
    fut = np.ones((n_series, len(future)))
    if n_days < 728 or not eligible.any():
        return hist, fut
    n_weeks = n_days // 7
    t0 = n_days - 7 * n_weeks
    xe, oe = x[eligible][:, t0:], obs[eligible][:, t0:]
    wsum = (xe * oe).reshape(len(xe), n_weeks, 7).sum(axis=2)
    wcnt = oe.reshape(len(xe), n_weeks, 7).sum(axis=2)
    wmean = np.divide(wsum, wcnt, out=np.zeros_like(wsum), where=wcnt > 0)
    scale = wmean.mean(axis=1, keepdims=True)
    # log of the level relative to its mean; +0.5/7 keeps weeks without sales finite.
    pad = 0.5 / 7
    z = np.log((wmean + pad) / (scale + pad))
    # Weeks mostly unobserved (stock-outs) carry no seasonal information: neutral value.
    z[wcnt < 4] = 0.0
    mid = days[t0:].to_numpy().reshape(n_weeks, 7)[:, 3]
    design = _fourier(pd.DatetimeIndex(mid), order)
    trend = np.linspace(-1, 1, n_weeks)[:, None]
    full = np.hstack([np.ones((n_weeks, 1)), trend, design])
    coef, *_ = np.linalg.lstsq(full, z.T, rcond=None)  # (P, S_e)
    resid = z.T - full @ coef
    sigma2 = (resid ** 2).sum(axis=0) / max(n_weeks - full.shape[1], 1)
    beta = coef[2:].T  # (S_e, 2*order)
    # Weight by the volume of each series: chain profile from the volume-weighted mean.
    vol = scale[:, 0]
    chain = (beta * vol[:, None]).sum(axis=0) / max(vol.sum(), 1e-9)
    # Between-series variance of the true coefficients vs. sampling noise of each estimate.
    noise = sigma2 / (n_weeks / 2)
    spread = max(float(np.mean((beta - chain) ** 2) - np.mean(noise)), 1e-4)
    w = (spread / (spread + noise))[:, None]
    shrunk = w * beta + (1 - w) * chain
    hist_terms = _fourier(days, order)
    fut_terms = _fourier(future, order)
    fh = np.exp(shrunk @ hist_terms.T)
    ff = np.exp(shrunk @ fut_terms.T)
    norm = fh.mean(axis=1, keepdims=True)
    hist[eligible] = fh / norm
    fut[eligible] = ff / norm
    return hist, fut


def _fourier(days: pd.DatetimeIndex, order: int) -> np.ndarray:
    t = 2 * np.pi * (days.dayofyear.to_numpy() - 1) / 365.25
    return np.column_stack([f(k * t) for k in range(1, order + 1) for f in (np.sin, np.cos)])


def _smooth_pass(x: np.ndarray, obs: np.ndarray, first: np.ndarray, ses: tuple[float, ...],
                 tsb: tuple[tuple[float, float], ...], horizon: int, keep_path: bool = False,
                 origins: np.ndarray | None = None, tail_from: int | None = None):
    """Run every candidate level model over time for all series together.

    Returns the final level per candidate (S, C), the rolling-origin squared error of the mean
    over the next ``horizon`` days and of the next day, the number of scored origins, the mean
    (squared) level at those origins, when asked the one-step path of the first candidate, and
    the forecast level of every candidate at each day of ``origins`` (S, J, C) and, when
    ``tail_from`` is given, at every day from it on (S, T - tail_from, C).
    """
    n_series, n_days = x.shape
    n_ses, n_tsb = len(ses), len(tsb)
    n_c = n_ses + n_tsb
    a_ses = np.asarray(ses, dtype=np.float32)[None, :]
    a_p = np.asarray([p for p, _ in tsb], dtype=np.float32)[None, :]
    a_z = np.asarray([z for _, z in tsb], dtype=np.float32)[None, :]
    xo = np.where(obs, x, 0.0)
    # Initial state from the first weeks of each series.
    init_len = 56
    idx = np.clip(first[:, None] + np.arange(init_len)[None, :], 0, max(n_days - 1, 0))
    take = np.take_along_axis(xo, idx, axis=1) if n_days else np.zeros((n_series, init_len))
    take_obs = np.take_along_axis(obs, idx, axis=1) if n_days else np.zeros((n_series, init_len), bool)
    cnt = np.maximum(take_obs.sum(axis=1), 1)
    level0 = (take * take_obs).sum(axis=1) / cnt
    occ0 = (take > 0) & take_obs
    p0 = np.maximum(occ0.sum(axis=1) / cnt, 1.0 / cnt)
    z0 = np.divide((take * occ0).sum(axis=1), occ0.sum(axis=1), out=np.ones(n_series),
                   where=occ0.sum(axis=1) > 0)
    # One state array: SES levels, then TSB probabilities, then TSB sizes (float32 halves the
    # memory traffic of the time loop; errors are accumulated in float64).
    state = np.empty((n_series, n_ses + 2 * n_tsb), dtype=np.float32)
    state[:, :n_ses] = level0[:, None]
    state[:, n_ses:n_c] = p0[:, None]
    state[:, n_c:] = z0[:, None]
    level, prob, size = state[:, :n_ses], state[:, n_ses:n_c], state[:, n_c:]
    pred = np.empty((n_series, n_c), dtype=np.float32)
    # Mean of the next `horizon` observed days from each day: the rolling-origin targets.
    cs = np.concatenate([np.zeros((n_series, 1)), np.cumsum(xo, axis=1)], axis=1)
    cn = np.concatenate([np.zeros((n_series, 1)), np.cumsum(obs, axis=1)], axis=1)
    score_from = max(0, n_days - 365 - horizon)
    t_idx = np.arange(n_days)
    active = obs & (t_idx[None, :] >= first[:, None])
    warm = t_idx[None, :] >= first[:, None] + 28
    n_tgt = max(n_days - horizon + 1, 0)
    cnt_h = cn[:, horizon:horizon + n_tgt] - cn[:, :n_tgt]
    target = np.divide(cs[:, horizon:horizon + n_tgt] - cs[:, :n_tgt], cnt_h,
                       out=np.zeros_like(cnt_h), where=cnt_h > 0).astype(np.float32)
    valid_h = warm[:, :n_tgt] & (cnt_h >= horizon / 2)
    del cs, cn, cnt_h
    sse_h = np.zeros((n_series, n_c))
    lvl2 = np.zeros((n_series, n_c))
    lvl1 = np.zeros((n_series, n_c))
    n_h = valid_h[:, score_from:].sum(axis=1).astype(float)
    n_1 = (active & warm)[:, score_from:].sum(axis=1).astype(float)
    path = np.zeros((n_series, n_days), dtype=np.float32) if keep_path else None
    # Time-major copies: each step reads contiguous memory.
    xo_t = np.ascontiguousarray(xo.T, dtype=np.float32)[:, :, None]
    act_t = np.ascontiguousarray(active.T)[:, :, None]
    tgt_t = np.ascontiguousarray(target.T)[:, :, None]
    valid_t = np.ascontiguousarray(valid_h.T)[:, :, None]
    err = np.empty((n_series, n_c), dtype=np.float32)
    origins = np.asarray([] if origins is None else origins, dtype=int)
    at_origins = np.zeros((n_series, len(origins), n_c), dtype=np.float32)
    origin_slot = {int(o): j for j, o in enumerate(origins)}
    tail_from = n_days if tail_from is None else max(int(tail_from), 0)
    tail = np.zeros((n_series, n_days - tail_from, n_c), dtype=np.float32)
    for t in range(n_days):
        pred[:, :n_ses] = level
        np.multiply(prob, size, out=pred[:, n_ses:])
        if keep_path:
            path[:, t] = pred[:, 0]
        if t in origin_slot:
            at_origins[:, origin_slot[t]] = pred
        if t >= tail_from:
            tail[:, t - tail_from] = pred
        xt = xo_t[t]
        at = act_t[t]
        if t >= score_from:
            if t < n_tgt:
                vt = valid_t[t]
                np.subtract(tgt_t[t], pred, out=err)
                err *= vt
                sse_h += err * err
                pv = pred * vt
                lvl1 += pv
                lvl2 += pv * pred
        # Updates only on observed days: unobserved days (stock-outs, closures) keep the state.
        level += a_ses * (xt - level) * at
        if n_tsb:
            occ_t = (xt > 0) & at
            prob += a_p * (occ_t - prob) * at
            size += a_z * (xt - size) * occ_t
    final = np.concatenate([level, prob * size], axis=1).astype(float)
    return dict(final=final, sse_h=sse_h, n_h=n_h, n_1=n_1, lvl2=lvl2, lvl1=lvl1,
                path=None if path is None else path.astype(float), at_origins=at_origins, tail=tail)


def _runs_of_zeros_logp(y: np.ndarray, obs: np.ndarray, logp0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each day in a run of zero sales: total log-probability of that whole run and its length."""
    n_series, n_days = y.shape
    zero = (y == 0) & obs
    run_sum = np.zeros((n_series, n_days))
    run_len = np.zeros((n_series, n_days))
    acc = np.zeros(n_series)
    length = np.zeros(n_series)
    for t in range(n_days):
        acc = np.where(zero[:, t], acc + logp0[:, t], 0.0)
        length = np.where(zero[:, t], length + 1, 0.0)
        run_sum[:, t] = acc
        run_len[:, t] = length
    # Propagate each run's total back to all its days.
    for t in range(n_days - 2, -1, -1):
        cont = zero[:, t] & zero[:, t + 1]
        run_sum[:, t] = np.where(cont, run_sum[:, t + 1], run_sum[:, t])
        run_len[:, t] = np.where(cont, run_len[:, t + 1], run_len[:, t])
    return run_sum, run_len


def _fit(dense: _Dense, future: pd.DatetimeIndex, hol: pd.DataFrame, horizon: int,
         component_days: int = 0, promo_future: np.ndarray | None = None,
         category: np.ndarray | None = None) -> dict:
    y = dense.units
    n_series, n_days = y.shape
    n_future = len(future)
    t_idx = np.arange(n_days)
    obs = t_idx[None, :] >= dense.first[:, None]
    n_obs = n_days - dense.first
    total = y.sum(axis=1)
    last_sale = np.where(y.any(axis=1), n_days - 1 - np.argmax(y[:, ::-1] > 0, axis=1), -1)

    reason = np.full(n_series, None, dtype=object)
    reason[~dense.has_rows] = "new_series"
    reason[dense.has_rows & (total == 0)] = "all_zero"
    reason[(reason == None) & (n_obs < MIN_OBS_DAYS)] = "too_short"  # noqa: E711
    model_ok = reason == None  # noqa: E711

    # Intermittency classification on the last year of observed days.
    t0 = max(0, n_days - 365)
    yy, oo = y[:, t0:], obs[:, t0:]
    nz = (yy > 0) & oo
    n_nz = nz.sum(axis=1)
    adi = np.divide(oo.sum(axis=1), n_nz, out=np.full(n_series, np.inf), where=n_nz > 0)
    nz_mean = np.divide((yy * nz).sum(axis=1), n_nz, out=np.zeros(n_series), where=n_nz > 0)
    nz_var = np.divide(((yy - nz_mean[:, None]) ** 2 * nz).sum(axis=1), np.maximum(n_nz - 1, 1))
    cv2 = np.divide(nz_var, nz_mean ** 2, out=np.zeros(n_series), where=nz_mean > 0)
    demand_class = np.where(adi < ADI_CUT, np.where(cv2 < CV2_CUT, "smooth", "erratic"),
                            np.where(cv2 < CV2_CUT, "intermittent", "lumpy"))

    dow_hist = days_dow = dense.days.dayofweek.to_numpy()
    dow_fut = future.dayofweek.to_numpy()
    store_codes = pd.factorize(dense.keys["store_id"])[0]
    mean = np.zeros((n_series, n_future))
    var = np.zeros((n_series, n_future))
    level_var = np.zeros(n_series)
    model = np.full(n_series, "fallback_zero", dtype=object)
    dispersion = np.zeros(n_series)
    param = np.full(n_series, np.nan)
    cv_error = np.full(n_series, np.nan)
    n_spikes = np.zeros(n_series, dtype=int)
    n_dip_days = np.zeros(n_series, dtype=int)
    rate_recent = np.zeros(n_series)
    calib = dict(mean=np.zeros(0), actual=np.zeros(0), extra=np.zeros(0), group=np.zeros(0, dtype=object))
    # Multiplicative decomposition of the last `component_days` days of history and of the
    # forecast (components.py turns it into additive forecast_components rows).
    n_comp = min(component_days, n_days)
    comp = {name: np.full((n_series, n_comp), np.nan)
            for name in ("trend", "weekly", "yearly", "holiday", "adjusted")}
    comp.update({f"{name}_f": np.ones((n_series, n_future))
                 for name in ("weekly", "yearly", "holiday")})
    comp["trend_f"] = np.zeros((n_series, n_future))
    comp["observed"] = obs[:, n_days - n_comp:]
    comp["actual"] = y[:, n_days - n_comp:]

    if model_ok.any():
        ok = np.flatnonzero(model_ok)
        yk, ok_obs = y[ok], obs[ok]
        prof = _weekday_profile(yk, ok_obs, dow_hist, store_codes[ok])
        hol_hist, hol_fut = _holiday_effects(yk, ok_obs, dense.days, future, hol)
        season = prof[:, days_dow] * hol_hist[None, :]
        season_f = prof[:, dow_fut] * hol_fut[None, :]
        # Days the series cannot sell (closed weekday, store-closing holiday) carry no level info.
        usable = ok_obs & (season > 0.05)
        x = np.divide(yk, season, out=np.zeros_like(yk), where=usable)
        first = dense.first[ok]

        # Pass 1: one moderate smoother for in-sample means -> dispersion, spikes, dips.
        # With planned promotions given, promotion days do not move the level; their lift is
        # estimated against it and applied to the planned days. Without a plan, promotions
        # stay part of the demand the level learns (a lift on unknown days cannot be placed).
        promo_h = dense.promo[ok] & usable if promo_future is not None else np.zeros_like(usable)
        p1 = _smooth_pass(x, usable & ~promo_h, first, (0.05,), (), horizon, keep_path=True)
        promo_hf = np.ones_like(season)
        promo_ff = np.ones_like(season_f)
        if promo_h.any():
            lift = _promotion_lift(yk, p1["path"] * season, promo_h, dense.keys["product_id"].to_numpy()[ok])
            promo_hf = np.where(promo_h, lift[:, None], 1.0)
            promo_ff = np.where(promo_future[ok], lift[:, None], 1.0)
            season = season * promo_hf
            season_f = season_f * promo_ff
        mu1 = p1["path"] * season
        scored = usable & (t_idx[None, :] >= first[:, None] + 28)
        inv_k = _dispersion(yk, mu1, scored)
        sd1 = np.sqrt(mu1 + mu1 ** 2 * inv_k[:, None])
        cap = np.ceil(mu1 + 5.0 * sd1 + 2.0)
        spikes = scored & (yk > cap)
        n_spikes[ok] = spikes.sum(axis=1)
        y_clean = np.where(spikes, cap, yk)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp0 = np.where(inv_k[:, None] > 1e-9,
                             -np.log1p(mu1 * inv_k[:, None]) / np.maximum(inv_k[:, None], 1e-9), -mu1)
        run_logp, run_len = _runs_of_zeros_logp(yk, scored, logp0)
        # A run of zeros this unlikely under the demand model is a stock-out, not demand.
        dips = scored & (run_logp < np.log(1e-5))
        trailing = dips[:, -1] & (run_len[:, -1] >= DISCONTINUED_DAYS) if n_days else np.zeros(len(ok), bool)
        dips[trailing] = dips[trailing] & False
        n_dip_days[ok] = dips.sum(axis=1)
        clean_obs = usable & ~dips
        # Yearly seasonality on cleaned data (a stock-out must not look like a seasonal trough).
        x = np.divide(y_clean, season, out=np.zeros_like(yk), where=clean_obs)
        season0 = season
        yr_hist, yr_fut = _yearly_profile(x, clean_obs, dense.days, future, n_obs[ok] >= 728)
        season = season * yr_hist
        season_f = season_f * yr_fut
        x = np.divide(y_clean, season, out=np.zeros_like(yk), where=clean_obs)

        # Pass 2: every candidate on the cleaned series; each series keeps the one with the lowest
        # rolling-origin error of the mean over the next h days (SES or TSB, whatever its
        # ADI/CV2 class says: the class is reported, the backtest decides).
        h = int(np.clip(horizon, 7, 56))
        n_ses = len(SES_ALPHAS)
        n_c = n_ses + len(TSB_PARAMS)
        # Rolling origins of the last year, one window of h days each: the chosen model's own
        # out-of-sample forecasts there calibrate the intervals and test simpler candidates.
        origins = np.arange(n_days - h, max(n_days - h * (364 // h + 1), -1), -h)[::-1]
        origins = origins[origins >= 0]
        n_o = len(origins)
        p2 = _smooth_pass(x, clean_obs, first, SES_ALPHAS, TSB_PARAMS, h, origins=origins,
                          tail_from=n_days - n_comp)
        err_h = p2["sse_h"] / np.maximum(p2["n_h"], 1)[:, None]
        best = np.argmin(err_h, axis=1)
        rows = np.arange(len(ok))
        lvl = np.maximum(p2["final"][rows, best], 0.0)
        params = np.concatenate([np.asarray(SES_ALPHAS), np.asarray([p for p, _ in TSB_PARAMS])])
        param[ok] = params[best]
        model[ok] = np.where(best < n_ses, "local_ses_nb", "local_tsb_nb")

        # Variance: day-to-day dispersion from cleaned residuals, level error from the
        # rolling-origin error of the window mean minus its day-to-day part.
        mu_clean = p1["path"] * season0
        # Spikes are cleaned for the level, not for the noise: future days will have them too.
        inv_k2 = _dispersion(yk, mu_clean, scored & ~dips)
        nh = np.maximum(p2["n_h"], 1)
        mse_h = p2["sse_h"][rows, best] / nh
        mean_l2 = np.maximum(p2["lvl2"][rows, best] / nh, 1e-9)
        mean_l1 = np.maximum(p2["lvl1"][rows, best] / nh, 1e-9)
        noise_of_mean = (mean_l1 + mean_l2 * inv_k2) / h
        excess = np.maximum(mse_h - noise_of_mean, 0.0)
        # A level near zero makes the relative error explode; a level CV above 200 % says the
        # series has no level worth the name, not that its window demand is 100 times its mean.
        v_rel = np.minimum(excess / mean_l2, MAX_LEVEL_VAR)
        # Few independent windows per series: shrink towards the pooled relative level error,
        # pooled as a ratio of sums so a few near-zero levels cannot dominate it.
        n_windows = p2["n_h"] / h
        has_score = p2["n_h"] > 0
        pooled = (float(np.minimum(excess[has_score].sum() / mean_l2[has_score].sum(), MAX_LEVEL_VAR))
                  if has_score.any() else 0.05)
        v_rel = np.where(has_score, (n_windows * v_rel + 4 * pooled) / (n_windows + 4), pooled)
        cv_error[ok] = np.sqrt(mse_h) / mean_l1 * np.sqrt(has_score) / np.where(has_score, 1, np.nan)

        # Calibration sample: forecast at each origin (level then x season) vs. the raw actuals.
        win = origins[:, None] + np.arange(h)[None, :]  # (J, h)
        lvl_o = np.maximum(p2["at_origins"][rows[:, None], np.arange(n_o)[None, :], best[:, None]], 0.0)
        calib_mu = lvl_o[:, :, None] * season[:, win]
        calib_use = scored[:, win] & (origins[None, :, None] >= first[:, None, None] + 28)

        mu_f = lvl[:, None] * season_f
        var_f = mu_f + mu_f ** 2 * inv_k2[:, None]
        extra = inv_k2 + v_rel

        # Per-series model choice by the same rolling-origin windows: simpler weekly candidates
        # replace the pipeline where their daily squared error there is clearly lower.
        weekly = np.zeros(len(ok), dtype=bool)
        if n_o:
            y_win = yk[:, win]
            n_use = calib_use.sum(axis=(1, 2))
            mse_engine = ((y_win - calib_mu) ** 2 * calib_use).sum(axis=(1, 2)) / np.maximum(n_use, 1)
            best_mse = mse_engine * (1 - CANDIDATE_MARGIN)
            for name, back, fut in _weekly_candidates(yk, origins, h, n_future):
                mse = ((y_win - back) ** 2 * calib_use).sum(axis=(1, 2)) / np.maximum(n_use, 1)
                pick = (mse < best_mse) & (n_use >= 4 * h)
                if not pick.any():
                    continue
                best_mse = np.where(pick, mse, best_mse)
                # Its own dispersion from its rolling-origin residuals (these include the level
                # error; v_rel keeps that part shared by the days of a window).
                r2 = (((y_win - back) ** 2 - back) * calib_use).sum(axis=(1, 2))
                m2 = (back ** 2 * calib_use).sum(axis=(1, 2))
                inv_total = np.clip(np.divide(r2, m2, out=np.zeros_like(r2), where=m2 > 0), 0.0, 50.0)
                noise = np.maximum(inv_total - v_rel, 0.0)
                calib_mu[pick] = back[pick]
                mu_f[pick] = fut[pick]
                var_f[pick] = fut[pick] + fut[pick] ** 2 * noise[pick, None]
                inv_k2 = np.where(pick, noise, inv_k2)
                extra = np.where(pick, noise + v_rel, extra)
                chosen = ok[pick]
                model[chosen] = name
                param[chosen] = np.nan
                weekly |= pick
        if n_comp:
            _fill_components(comp, ok, n_days - n_comp, p2["tail"], best, lvl, prof, dow_hist,
                             dow_fut, yr_hist, yr_fut, hol_hist[None, :] * promo_hf,
                             hol_fut[None, :] * promo_ff, y_clean, dips, usable, weekly, mu_f)

        mean[ok] = mu_f
        var[ok] = var_f
        level_var[ok] = v_rel
        dispersion[ok] = inv_k2
        recent = slice(max(0, n_days - 91), n_days)
        rate_recent[ok] = (yk[:, recent].sum(axis=1) / np.maximum(ok_obs[:, recent].sum(axis=1), 1))

        # Discontinued: a long trailing run of zeros that the demand model finds implausible.
        disc = np.zeros(n_series, dtype=bool)
        disc[ok] = trailing & (n_days - 1 - last_sale[ok] >= DISCONTINUED_DAYS)
        reason[disc] = "discontinued"
        model[disc] = "fallback_zero"
        keep = np.flatnonzero(calib_use & ~disc[ok][:, None, None])
        if keep.size > MAX_CALIBRATION_DAYS:
            # A fixed random subset estimates the quantiles as well at a fraction of the cost.
            keep = np.sort(np.random.default_rng(0).choice(keep, MAX_CALIBRATION_DAYS, replace=False))
        calib = dict(mean=calib_mu.ravel()[keep], actual=yk[:, win].ravel()[keep],
                     extra=np.broadcast_to(extra[:, None, None], calib_mu.shape).ravel()[keep],
                     group=np.broadcast_to(demand_class[ok][:, None, None], calib_mu.shape).ravel()[keep])
        mean[disc] = 0.0
        var[disc] = 0.0
        level_var[disc] = 0.0

    # Fallbacks.
    keys = dense.keys
    short = reason == "too_short"
    if short.any():
        rate = total[short] / np.maximum(n_obs[short], 1)
        mean[short] = rate[:, None]
        # Poisson-gamma with the uncertainty of a rate estimated from few units.
        var[short] = rate[:, None] + rate[:, None] ** 2
        level_var[short] = 1.0 / np.maximum(total[short], 1) + 0.1
        dispersion[short] = 1.0
        model[short] = "fallback_recent_mean"
    new = reason == "new_series"
    if new.any():
        # The same product elsewhere, else its category, else the chain: the median daily rate,
        # with the spread of the rates it comes from as the level's uncertainty (at least 0.5).
        from .periodic import new_series_rates

        rate, rel, source = new_series_rates(keys, category, rate_recent, model_ok, new)
        mean[new] = rate[:, None]
        var[new] = rate[:, None] + rate[:, None] ** 2
        level_var[new] = rel
        dispersion[new] = 1.0
        model[new] = source
    var = var + level_var[:, None] * mean ** 2
    # Fallback forecasts (and discontinued series) are all trend.
    flat = ~model_ok | (reason == "discontinued")
    comp["trend_f"][flat] = mean[flat]
    for name in ("weekly_f", "yearly_f", "holiday_f"):
        comp[name][flat] = 1.0
    return dict(comp=comp, mean=mean, var=var, level_var=level_var, model=model, reason=reason,
                demand_class=np.where(reason == None, demand_class, "none"),  # noqa: E711
                adi=adi, cv2=cv2, dispersion=dispersion, param=param, n_spikes=n_spikes,
                n_dip_days=n_dip_days, cv_error=cv_error, calib=calib)


def _promotion_lift(y: np.ndarray, mu: np.ndarray, promo: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Multiplicative promotion lift per series: sales on promotion days over the level model's
    demand there, pooled per product over its stores (promotions are mostly chain-wide
    circulars) and shrunk towards the chain's lift by the units expected (prior of 4 units)."""
    codes, _ = pd.factorize(product)
    num = np.bincount(codes, (y * promo).sum(axis=1))
    den = np.bincount(codes, (mu * promo).sum(axis=1))
    chain = num.sum() / den.sum() if den.sum() > 0 else 1.0
    lift = (num + 4.0 * chain) / (den + 4.0)
    return np.clip(lift[codes], 0.2, 20.0)


def _fill_components(comp: dict, ok: np.ndarray, t0: int, tail: np.ndarray, best: np.ndarray,
                     lvl: np.ndarray, prof: np.ndarray, dow_hist: np.ndarray, dow_fut: np.ndarray,
                     yr_hist: np.ndarray, yr_fut: np.ndarray, hol_hist: np.ndarray,
                     hol_fut: np.ndarray, y_clean: np.ndarray, dips: np.ndarray, usable: np.ndarray,
                     weekly: np.ndarray, mu_f: np.ndarray) -> None:
    """Decomposition of the modelled series (rows ``ok``) from history day ``t0`` on."""
    n = tail.shape[1]
    trend = np.maximum(tail[np.arange(len(ok))[:, None], np.arange(n)[None, :], best[:, None]], 0.0)
    wk = prof[:, dow_hist[t0:]]
    yr = yr_hist[:, t0:]
    hd = np.broadcast_to(hol_hist[:, t0:], wk.shape)
    fitted = trend * wk * yr * hd
    comp["trend"][ok] = trend
    comp["weekly"][ok], comp["yearly"][ok], comp["holiday"][ok] = wk, yr, hd
    # Adjusted history: spikes capped; stock-out days (dips) replaced by the model's demand;
    # days the series could not sell (closed) kept as they are.
    adjusted = np.where(dips[:, t0:], fitted, y_clean[:, t0:])
    comp["adjusted"][ok] = np.where(usable[:, t0:], adjusted, comp["actual"][ok])
    comp["trend_f"][ok] = lvl[:, None]
    comp["weekly_f"][ok] = prof[:, dow_fut]
    comp["yearly_f"][ok] = yr_fut
    comp["holiday_f"][ok] = np.broadcast_to(hol_fut, mu_f.shape)  # holidays x planned promotions
    if weekly.any():
        # A weekly candidate's forecast: its weekly average as trend, the rest weekly season.
        rows = ok[weekly]
        avg = mu_f[weekly][:, :7].mean(axis=1, keepdims=True)
        comp["trend_f"][rows] = np.broadcast_to(avg, mu_f[weekly].shape)
        comp["weekly_f"][rows] = np.divide(mu_f[weekly], avg, out=np.ones_like(mu_f[weekly]), where=avg > 0)
        comp["yearly_f"][rows] = 1.0
        comp["holiday_f"][rows] = 1.0


def _weekly_candidates(y: np.ndarray, origins: np.ndarray, h: int, n_future: int):
    """Seasonal naive (last week again) and the mean of the same weekday over the last four
    weeks: their forecasts at each origin (S, J, h) and for the future (S, F)."""
    n_days = y.shape[1]
    lead = np.arange(h)
    lead_f = np.arange(n_future)
    for name, weeks in (("local_snaive_nb", 1), ("local_weekly_mean_nb", 4)):
        back = np.zeros((len(y), len(origins), h))
        fut = np.zeros((len(y), n_future))
        for w in range(1, weeks + 1):
            # Day o + k copies day o - 7w + (k mod 7); before the first day it reads day 0, and
            # such origins are not scored (they precede first sale + 28 days).
            src = np.maximum(origins[:, None] - 7 * w + lead[None, :] % 7, 0)
            back += y[:, src]
            fut += y[:, np.maximum(n_days - 7 * w + lead_f % 7, 0)]
        yield name, back / weeks, fut / weeks


def _dispersion(y: np.ndarray, mu: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Negative-binomial 1/k per series by the method of moments: Var = mu + mu^2/k."""
    r2 = ((y - mu) ** 2 - mu) * mask
    m2 = (mu ** 2) * mask
    num = r2.sum(axis=1)
    den = m2.sum(axis=1)
    inv_k = np.divide(num, den, out=np.zeros(len(y)), where=den > 1e-9)
    return np.clip(inv_k, 0.0, 50.0)


# --------------------------------------------------------------------------- output

def _daily_frame(keys: pd.DataFrame, days: pd.DatetimeIndex, mean: np.ndarray, var: np.ndarray,
                 confidence_level: float, model: np.ndarray, reason: np.ndarray,
                 calibration: pd.DataFrame, group: np.ndarray) -> pd.DataFrame:
    n_series, n_days = mean.shape
    q = count_quantiles(mean, var, QUANTILES)  # (S, D, 5)
    lo, hi = calibrated_interval(mean, var, confidence_level, calibration, group)
    out = pd.DataFrame({
        "store_id": np.repeat(keys["store_id"].to_numpy(), n_days),
        "product_id": np.repeat(keys["product_id"].to_numpy(), n_days),
        "forecast_date": np.tile(days.to_numpy(), n_series),
        "forecast_mean": mean.ravel(),
        "standard_error": np.sqrt(np.maximum(var - 0, 0)).ravel(),
        "confidence_level": float(confidence_level),
        "lower_bound": lo.ravel(),
        "upper_bound": hi.ravel(),
    })
    for i, level in enumerate(QUANTILES):
        out[f"quantile_{int(round(level * 100))}"] = q[..., i].ravel()
    out["model"] = np.repeat(model, n_days)
    out["fallback_reason"] = np.repeat(reason, n_days)
    return out.loc[:, DAILY_COLUMNS]


def _protection_frame(keys: pd.DataFrame, windows: np.ndarray, mean: np.ndarray, var: np.ndarray,
                      level_var: np.ndarray, model: np.ndarray) -> pd.DataFrame:
    # Day-to-day noise adds up; the level error is shared by every day of the window, so its
    # standard deviation grows with the window length, not its square root.
    n_future = mean.shape[1]
    in_window = np.arange(n_future)[None, :] < windows[:, None]
    m = (mean * in_window).sum(axis=1)
    noise = ((var - level_var[:, None] * mean ** 2) * in_window).sum(axis=1)
    v = noise + level_var * m ** 2
    return protection_rows(keys, windows, m, v, model)


def protection_rows(keys: pd.DataFrame, windows: np.ndarray, m: np.ndarray, v: np.ndarray,
                    model: np.ndarray) -> pd.DataFrame:
    """Protection rows from each window's demand mean `m` and variance `v`: the quantiles follow
    from the count distribution with those moments (daily and periodic paths alike)."""
    q = count_quantiles(m, v, QUANTILES)
    out = keys.copy()
    out["window_days"] = windows.astype(int)
    out["demand_mean"] = m
    out["demand_std"] = np.sqrt(np.maximum(v, 0))
    for i, level in enumerate(QUANTILES):
        out[f"q{int(round(level * 100))}"] = q[:, i]
    out["model"] = model
    return out.loc[:, PROTECTION_COLUMNS]
