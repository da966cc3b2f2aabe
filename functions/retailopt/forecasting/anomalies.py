"""Sales anomalies: days whose sales fall outside the engine's high-probability interval.

The local twin of BigQuery ML's ``ML.DETECT_ANOMALIES`` on an ARIMA_PLUS model's training data,
built from the local engine's own in-sample distribution rather than a new method:

- the **expected** sales of a day are the engine's first-pass one-step forecast (engine.py step
  3): the deseasonalised series smoothed with the constant the engine uses to find spikes and
  stock-outs, times the series' weekday profile (shrunk towards its store's) and the chain's
  holiday effects, so a day's expectation only uses the days before it;
- its distribution is the engine's negative binomial with that mean and the series' dispersion
  (method of moments on the same residuals);
- a day is an **anomaly** when its mid-PIT ``Fm(y) = P(X < y) + P(X = y)/2`` (calibration.py)
  lies outside ``[(1 - p)/2, (1 + p)/2]`` for ``p = anomaly_prob_threshold`` (0.99): a
  **spike** above, a **dip** below. ``anomaly_probability = |2 Fm(y) - 1|``, the probability
  mass of the central interval that just excludes the day, as ML.DETECT_ANOMALIES defines it;
  ``lower_bound`` and ``upper_bound`` are that interval at ``p`` (calibration.mid_bounds).

Days before a series' first sale, days it cannot sell (a closed weekday, a store-closing
holiday) and its first 28 days are not judged; series the engine forecasts by a fallback
(new, never sold, shorter than 28 days) have no in-sample model and no anomalies.

**Leaving spikes out of training.** With ``exclude="isolated_spikes"`` (the default of the
setting ``exclude_anomalies``) a spike day that stands alone is replaced by its expected value
in the history the forecast is fitted on: its neighbours (the day before and the day after)
are not high even at the looser level ``NEIGHBOUR_PROB`` (0.9; the day after the last day of
history counts as not high), and it is not flagged ``on_promotion``. Runs of high sales over
several days (promotions, a local event, a level shift starting) are demand and are kept, as
are dips (the engine already treats implausible runs of zeros as stock-outs). The engine itself
caps spikes at mean + 5 sd for the level only; the dispersion, the weekly candidates and the
interval calibration see the raw day, which is what the exclusion changes.

Cost: one extra smoothing pass over the dense series x days matrix; exact tail probabilities
only for the days a cheap normal-scale test cannot clear (see ``_candidates``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retailopt import sqlfiles
from retailopt.config import ConfigError, Settings

from .calendar import holiday_table
from .calibration import mid_bounds, mid_pit
from .engine import MIN_OBS_DAYS, _Dense, _densify, _dispersion, _holiday_effects, _weekday_profile

ANOMALY_PROB_THRESHOLD = 0.99  # as ML.DETECT_ANOMALIES' anomaly_prob_threshold
NEIGHBOUR_PROB = 0.9  # a neighbour this unusual on the high side makes a spike part of a run
RECENT_DAYS = 28  # days of history each run writes to sales_anomalies (as forecast_components)
EXCLUDE_CHOICES = ("isolated_spikes", "none")
# The engine's first-pass smoothing constant (engine._fit, pass 1).
_PASS1_ALPHA = 0.05
ANOMALY_COLUMNS = ["store_id", "product_id", "sale_date", "units", "expected", "lower_bound",
                   "upper_bound", "anomaly_probability", "kind", "on_promotion",
                   "excluded_from_training", "method"]


@dataclass(frozen=True)
class Detection:
    """Every anomalous day of the history (ANOMALY_COLUMNS) and the history to fit on: the
    input with the excluded days' units replaced by their expected value (the input frame
    itself when nothing is excluded)."""

    anomalies: pd.DataFrame
    history: pd.DataFrame
    excluded: int


def detect_anomalies(history: pd.DataFrame, positions: pd.DataFrame, *, forecast_start: date,
                     threshold: float = ANOMALY_PROB_THRESHOLD, exclude: str = "isolated_spikes",
                     holiday_country: str | None = "US", holiday_subdivision: str | None = None,
                     holidays: pd.DataFrame | None = None, max_history_days: int = 1100,
                     max_chunk_series: int = 8000) -> Detection:
    """Anomalous days of every position's history before ``forecast_start`` (arguments as
    ``forecast``), and the history with isolated spikes left out when ``exclude`` says so."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold={threshold}: expected 0 < threshold < 1")
    if exclude not in EXCLUDE_CHOICES:
        raise ValueError(f"exclude={exclude!r}: expected one of {', '.join(EXCLUDE_CHOICES)}")
    forecast_start = pd.Timestamp(forecast_start).date()
    keys = positions.loc[:, ["store_id", "product_id"]].astype(str).drop_duplicates().reset_index(drop=True)
    parts, fit_units = [], None
    # Chunks of whole stores bound the memory, as the engine's (weekday profiles pool per store).
    for chunk_keys in _store_chunks(keys, max_chunk_series):
        dense, rows = _dense(history, chunk_keys, forecast_start, max_history_days)
        found, cells = _detect(dense, threshold, exclude == "isolated_spikes", holiday_country,
                               holiday_subdivision, holidays)
        if len(cells[0]) and rows is not None:
            fit_units = _replace_in_rows(history, rows, dense, cells, fit_units)
        parts.append(found)
    anomalies = pd.concat(parts, ignore_index=True) if parts else _empty()
    anomalies = anomalies.sort_values(["store_id", "product_id", "sale_date"], kind="stable").reset_index(drop=True)
    excluded = anomalies[anomalies["excluded_from_training"]]
    if fit_units is not None:
        fit_history = history.copy(deep=False)
        fit_history["units"] = fit_units
    elif len(excluded):  # ids that are not categories: matched by value
        fit_history = _replace_units(history, excluded)
    else:
        fit_history = history
    return Detection(anomalies=anomalies.loc[:, ANOMALY_COLUMNS], history=fit_history, excluded=len(excluded))


def recent(anomalies: pd.DataFrame, forecast_start: date, days: int = RECENT_DAYS) -> pd.DataFrame:
    """The anomalies of the ``days`` days before ``forecast_start`` (the rows a run writes)."""
    since = pd.Timestamp(forecast_start) - pd.Timedelta(days=days)
    return anomalies[pd.to_datetime(anomalies["sale_date"]) >= since].reset_index(drop=True)


# --------------------------------------------------------------------------- BigQuery ML

_MODEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")


def detect_statement(settings: Settings, model_name: str, *, data_start: date, data_end: date, run_date: date,
                     days: int = RECENT_DAYS, threshold: float = ANOMALY_PROB_THRESHOLD, xreg: bool = False):
    """``sql/forecasting/detect_anomalies.sql`` for an ARIMA_PLUS model trained on the sales of
    [data_start, data_end] (``detect_anomalies_xreg.sql``, whose new data carries the regressors,
    for an ARIMA_PLUS_XREG model): the anomalies of the ``days`` days before ``run_date``. Every
    value is a query parameter; the model name (an identifier, checked) is the only name put in
    the text."""
    from .bigquery_ml import Statement, parse_model_name

    if not _MODEL_NAME_RE.match(model_name):
        raise ConfigError(f"invalid model name {model_name!r}: expected letters, digits and _")
    if not 0 <= threshold < 1:  # ML.DETECT_ANOMALIES' range for anomaly_prob_threshold
        raise ConfigError(f"invalid anomaly_prob_threshold {threshold!r}: expected 0 <= threshold < 1")
    if days < 1:
        raise ConfigError(f"invalid number of days {days!r}: expected at least 1")
    parsed = parse_model_name(model_name)
    if parsed is not None and parsed[1] != xreg:  # a dated model's name says its type
        raise ConfigError(f"model {model_name!r} is not an {'ARIMA_PLUS_XREG' if xreg else 'ARIMA_PLUS'} model")
    path = "forecasting/detect_anomalies_xreg.sql" if xreg else "forecasting/detect_anomalies.sql"
    text = sqlfiles.read_sql(path).replace("{model}", model_name)
    return Statement(sqlfiles.render(text, settings.dataset, settings.project), {
        "anomaly_prob_threshold": float(threshold), "since": run_date - timedelta(days=int(days)),
        "until": run_date - timedelta(days=1), "data_start": data_start, "data_end": data_end})


def detect_anomalies_bigquery(client: Any, settings: Settings, *, model_name: str, data_start: date,
                              data_end: date, run_date: date, days: int = RECENT_DAYS,
                              threshold: float = ANOMALY_PROB_THRESHOLD, xreg: bool = False) -> pd.DataFrame:
    """The cloud twin of ``detect_anomalies``: ML.DETECT_ANOMALIES on the ARIMA_PLUS (``xreg``:
    ARIMA_PLUS_XREG) model a run forecasts from, over the ``days`` days before ``run_date`` ->
    sales_anomalies rows (without run_id and run_date; method bigquery_ml). Both model types
    clean spikes and dips themselves when they are trained (clean_spikes_and_dips), so no day is
    marked excluded_from_training."""
    from .bigquery_ml import run

    statement = detect_statement(settings, model_name, data_start=data_start, data_end=data_end,
                                 run_date=run_date, days=days, threshold=threshold, xreg=xreg)
    return read_detect_rows(run(client, statement))


def read_detect_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """detect_anomalies.sql rows -> sales_anomalies columns (without run_id and run_date)."""
    need = ["store_id", "product_id", "sale_date", "units", "expected", "lower_bound", "upper_bound",
            "anomaly_probability", "kind", "on_promotion"]
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise ValueError(f"ML.DETECT_ANOMALIES rows: missing column(s) {missing}")
    if rows.empty:
        return _empty().loc[:, ANOMALY_COLUMNS]
    out = pd.DataFrame({
        "store_id": rows["store_id"].astype(str).to_numpy(),
        "product_id": rows["product_id"].astype(str).to_numpy(),
        "sale_date": pd.to_datetime(rows["sale_date"]).dt.normalize().to_numpy(),
        "units": rows["units"].to_numpy(dtype=float),
        "expected": rows["expected"].to_numpy(dtype=float),
        "lower_bound": rows["lower_bound"].to_numpy(dtype=float),
        "upper_bound": rows["upper_bound"].to_numpy(dtype=float),
        "anomaly_probability": rows["anomaly_probability"].to_numpy(dtype=float),
        "kind": rows["kind"].astype(str).to_numpy(),
        "on_promotion": rows["on_promotion"].fillna(False).to_numpy(dtype=bool),
        "excluded_from_training": False,
        "method": "bigquery_ml",
    })
    return out.loc[:, ANOMALY_COLUMNS]


# --------------------------------------------------------------------------- detection

def _detect(dense: _Dense, threshold: float, exclude: bool, holiday_country: str | None,
            holiday_subdivision: str | None, holidays: pd.DataFrame | None
            ) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The anomalies of the dense series, and the excluded days as (series, day, expected)."""
    none = (np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
    y = dense.units
    n_series, n_days = y.shape
    t_idx = np.arange(n_days)
    obs = t_idx[None, :] >= dense.first[:, None]
    total = y.sum(axis=1)
    # The series the engine models (the others get a fallback and have no in-sample model).
    ok = np.flatnonzero(dense.has_rows & (total > 0) & (n_days - dense.first >= MIN_OBS_DAYS))
    if not ok.size:
        return _empty(), none
    yk, ok_obs, first = y[ok], obs[ok], dense.first[ok]
    dow = dense.days.dayofweek.to_numpy()
    store_codes = pd.factorize(dense.keys["store_id"])[0]
    prof = _weekday_profile(yk, ok_obs, dow, store_codes[ok])
    hol = holiday_table(dense.days[0].date(), dense.days[-1].date(), holiday_country, holiday_subdivision,
                        holidays)
    hol_hist, _ = _holiday_effects(yk, ok_obs, dense.days, pd.DatetimeIndex([]), hol)
    season = prof[:, dow] * hol_hist[None, :]
    usable = ok_obs & (season > 0.05)
    x = np.divide(yk, season, out=np.zeros_like(yk), where=usable)
    mean = _one_step_level(x, usable, first) * season
    del x
    scored = usable & (t_idx[None, :] >= first[:, None] + MIN_OBS_DAYS)
    inv_k = _dispersion(yk, mean, scored)
    si, di = np.nonzero(scored & _candidates(yk, mean, inv_k, threshold))
    m = mean[si, di]
    v = m + m ** 2 * inv_k[si]
    units = yk[si, di]
    pit = mid_pit(units, m, v)
    lo_t, hi_t = (1 - threshold) / 2, (1 + threshold) / 2
    hit = (pit > hi_t) | (pit < lo_t)
    si, di, m, v, units, pit = si[hit], di[hit], m[hit], v[hit], units[hit], pit[hit]
    spike = pit > hi_t
    promo = dense.promo[ok][si, di]
    excluded = np.zeros(si.size, dtype=bool)
    if exclude and spike.any():
        excluded = spike & ~promo & ~_high(yk, mean, inv_k, scored, si, di - 1) \
            & ~_high(yk, mean, inv_k, scored, si, di + 1)
    lower, upper = mid_bounds(m, v, np.full(m.size, lo_t), np.full(m.size, hi_t))
    keys = dense.keys.iloc[ok[si]]
    frame = pd.DataFrame({
        "store_id": keys["store_id"].to_numpy(),
        "product_id": keys["product_id"].to_numpy(),
        "sale_date": dense.days[di].to_numpy(),
        "units": units,
        "expected": m,
        "lower_bound": lower,
        "upper_bound": upper,
        "anomaly_probability": np.abs(2 * pit - 1),
        "kind": np.where(spike, "spike", "dip"),
        "on_promotion": promo,
        "excluded_from_training": excluded,
        "method": "local",
    })
    return frame, (ok[si[excluded]], di[excluded], m[excluded])


def _one_step_level(x: np.ndarray, obs: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The engine's first-pass level path (engine._smooth_pass with the single smoothing
    constant _PASS1_ALPHA, ``keep_path=True``): the level forecast for each day from the days
    before it, in the same float32 arithmetic. Only the path is computed, not the pass's
    rolling-origin scores, which makes it several times faster; a test keeps the two equal."""
    n_series, n_days = x.shape
    path = np.zeros((n_days, n_series), dtype=np.float32)
    if not n_days:
        return path.T
    xo = np.where(obs, x, 0.0)
    idx = np.clip(first[:, None] + np.arange(56)[None, :], 0, n_days - 1)
    take = np.take_along_axis(xo, idx, axis=1)
    take_obs = np.take_along_axis(obs, idx, axis=1)
    level = ((take * take_obs).sum(axis=1) / np.maximum(take_obs.sum(axis=1), 1)).astype(np.float32)
    alpha = np.float32(_PASS1_ALPHA)
    xo_t = np.ascontiguousarray(xo.T, dtype=np.float32)
    active_t = np.ascontiguousarray((obs & (np.arange(n_days)[None, :] >= first[:, None])).T)
    for t in range(n_days):
        path[t] = level
        level += alpha * (xo_t[t] - level) * active_t[t]
    return path.T


# Days a shortcut clears without the exact tail probability (see _candidates): a count within
# mean + 2.5 sd (2 sd for thresholds below 0.988) cannot be a spike; one at or above
# mean - f sd cannot be a dip, f by the series' dispersion 1/k (none above 1.7: there a count
# near zero can be a dip whatever the sd says).
_DIP_SD = ((0.2, 1.5), (0.7, 1.0), (1.7, 0.75))


def _candidates(y: np.ndarray, mean: np.ndarray, inv_k: np.ndarray, threshold: float) -> np.ndarray:
    """Days that can be anomalies at ``threshold``; the others are cleared without the exact
    (costly) tail probability.

    Checked over a grid of means 1e-3..1e6 and every dispersion the engine can produce (1/k
    from 0 to 50; a test repeats it): a count at most mean + 2.5 sd has a mid-PIT below 0.9938
    (the normal limit, Phi(2.5)), one at most mean + 2 sd below 0.982; a count at least
    max(0, mean - f sd) a mid-PIT above 0.025 for the (1/k, f) bands of _DIP_SD. So for
    thresholds of 0.965 and more only the other days can be anomalies. A dip also needs
    P(X = 0) below 1 - threshold (the mid-PIT of any count is at least half of it) and a count
    below the mean.
    """
    if threshold < 0.965:
        return np.ones(y.shape, dtype=bool)
    high = 2.5 if threshold >= 0.988 else 2.0
    factor = np.zeros(len(inv_k), dtype=np.float32)
    for top, f in reversed(_DIP_SD):
        factor[inv_k <= top] = f
    # Squared standardised distance, in float32 (a screen, not the test; one pass less memory).
    m32 = mean.astype(np.float32)
    dev = y.astype(np.float32) - m32
    var = m32 + m32 * m32 * inv_k.astype(np.float32)[:, None]
    z2 = np.divide(dev * dev, var, out=np.full(dev.shape, np.inf, dtype=np.float32), where=var > 0)
    out = (dev > 0) & (z2 > high * high * 0.999)
    low = (dev < 0) & (z2 > (factor * factor * 0.999)[:, None])
    r, c = np.nonzero(low)
    m, k = mean[r, c], inv_k[r]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p0 = np.where(k > 1e-9, -np.log1p(m * k) / np.maximum(k, 1e-9), -m)
    keep = log_p0 < np.log1p(-threshold)
    out[r[keep], c[keep]] = True
    return out


def _high(y: np.ndarray, mean: np.ndarray, inv_k: np.ndarray, scored: np.ndarray, si: np.ndarray,
          di: np.ndarray) -> np.ndarray:
    """Whether day ``di`` of series ``si`` is unusually high (mid-PIT above (1 + NEIGHBOUR_PROB)/2);
    days outside the history or not judged are not."""
    inside = (di >= 0) & (di < y.shape[1])
    out = np.zeros(si.size, dtype=bool)
    s, d = si[inside], di[inside]
    judged = scored[s, d]
    s, d = s[judged], d[judged]
    m = mean[s, d]
    pit = mid_pit(y[s, d], m, m + m ** 2 * inv_k[s])
    flags = np.zeros(judged.size, dtype=bool)
    flags[judged] = pit > (1 + NEIGHBOUR_PROB) / 2
    out[inside] = flags
    return out


# --------------------------------------------------------------------------- input and output

def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
        ("store_id", object), ("product_id", object), ("sale_date", "datetime64[ns]"), ("units", float),
        ("expected", float), ("lower_bound", float), ("upper_bound", float), ("anomaly_probability", float),
        ("kind", object), ("on_promotion", bool), ("excluded_from_training", bool), ("method", object))})


def _store_chunks(keys: pd.DataFrame, max_series: int) -> list[pd.DataFrame]:
    if len(keys) <= max_series:
        return [keys]
    chunks: list[list[str]] = [[]]
    filled = 0
    for store, n in keys.groupby("store_id", sort=True).size().items():
        if filled and filled + n > max_series:
            chunks.append([])
            filled = 0
        chunks[-1].append(store)
        filled += n
    return [keys[keys["store_id"].isin(stores)].reset_index(drop=True) for stores in chunks]


def _dense(history: pd.DataFrame, keys: pd.DataFrame, forecast_start: date, max_history_days: int
           ) -> tuple[_Dense, tuple[np.ndarray, np.ndarray] | None]:
    """The engine's dense matrix (engine._densify) and, when known, each history row's series
    and day in it (-1: outside). The planning run's history has categorical ids; for it the
    matrix is built from the category codes, which saves the engine's conversion of millions
    of ids to strings (most of _densify's second), with the same result."""
    fast = (isinstance(history.get("store_id", pd.Series(dtype=object)).dtype, pd.CategoricalDtype)
            and isinstance(history.get("product_id", pd.Series(dtype=object)).dtype, pd.CategoricalDtype)
            and "sale_date" in history and pd.api.types.is_datetime64_dtype(history["sale_date"].dtype)
            and "units" in history and pd.api.types.is_numeric_dtype(history["units"].dtype)
            and not pd.api.types.is_bool_dtype(history["units"].dtype))
    if fast:
        units = history["units"].to_numpy(dtype=float)
        sale_date = history["sale_date"].to_numpy(dtype="datetime64[ns]")
        end = np.datetime64(pd.Timestamp(forecast_start) - pd.Timedelta(days=1), "ns")
        # Bad values: the engine's own error (file, row and field) comes from _densify.
        fast = not (np.isnan(units).any() or (units < 0).any() or np.isnat(sale_date).any()
                    or (sale_date > end).any() or (sale_date != sale_date.astype("datetime64[D]")).any())
    if not fast:
        return _densify(history, keys, forecast_start, max_history_days), None
    keys = keys.reset_index(drop=True)
    stores = history["store_id"].cat.categories.astype(str)
    products = history["product_id"].cat.categories.astype(str)
    lookup = np.full((len(stores) + 1, len(products) + 1), -1, dtype=np.int64)  # code -1: missing id
    s_code = pd.Index(stores).get_indexer(keys["store_id"])
    p_code = pd.Index(products).get_indexer(keys["product_id"])
    known = (s_code >= 0) & (p_code >= 0)
    lookup[s_code[known], p_code[known]] = np.flatnonzero(known)
    series_idx = lookup[history["store_id"].cat.codes.to_numpy(), history["product_id"].cat.codes.to_numpy()]
    start = end - np.timedelta64(max_history_days - 1, "D")
    if len(sale_date):
        start = max(start, sale_date.min())
    days = pd.date_range(start, end, freq="D") if start <= end else pd.DatetimeIndex([])
    n_series, n_days = len(keys), len(days)
    day_idx = ((sale_date - start) // np.timedelta64(1, "D")).astype(np.int64)
    in_window = (series_idx >= 0) & (day_idx >= 0)
    flat = series_idx[in_window] * n_days + day_idx[in_window]
    mat = np.bincount(flat, weights=units[in_window], minlength=n_series * n_days).reshape(n_series, n_days)
    promo = np.zeros(n_series * n_days, dtype=bool)
    if "on_promotion" in history:
        promo[flat] = history["on_promotion"].fillna(False).to_numpy(dtype=bool)[in_window]
    has_rows = np.bincount(series_idx[series_idx >= 0], minlength=n_series) > 0
    sold = mat > 0
    first = np.where(sold.any(axis=1), sold.argmax(axis=1), n_days)
    dense = _Dense(keys=keys, days=days, units=mat, promo=promo.reshape(n_series, n_days), has_rows=has_rows,
                   first=first)
    return dense, (np.where(in_window, series_idx, -1), np.where(in_window, day_idx, -1))


def _replace_in_rows(history: pd.DataFrame, rows: tuple[np.ndarray, np.ndarray], dense: _Dense,
                     cells: tuple[np.ndarray, np.ndarray, np.ndarray], units: np.ndarray | None) -> np.ndarray:
    """History units (``units``, else the input's) with the excluded days' rows set to their
    expected value (rows of one store, product and day share it in proportion to their units)."""
    if units is None:
        units = history["units"].to_numpy(dtype=float).copy()
    n_days = len(dense.days)
    series_idx, day_idx = rows
    cell = np.flatnonzero(series_idx >= 0)
    row_flat = series_idx[cell] * n_days + day_idx[cell]
    flat = cells[0] * n_days + cells[1]
    order = np.argsort(flat)
    flat, expected = flat[order], cells[2][order]
    pos = np.minimum(np.searchsorted(flat, row_flat), len(flat) - 1)
    hit = flat[pos] == row_flat
    rows_hit, pos = cell[hit], pos[hit]
    share = units[rows_hit] / dense.units[cells[0][order][pos], cells[1][order][pos]]
    units[rows_hit] = expected[pos] * share
    return units


def _replace_units(history: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """The history with each excluded day's units replaced by its expected value (rows of one
    store, product and day share it in proportion to their units); other columns are shared."""
    dates = pd.to_datetime(history["sale_date"])
    if getattr(dates.dtype, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    dates = dates.dt.normalize()
    rows = np.flatnonzero(dates.isin(pd.DatetimeIndex(excluded["sale_date"].unique())).to_numpy())
    sub = pd.DataFrame({"row": rows,
                        "store_id": history["store_id"].iloc[rows].astype(str).to_numpy(),
                        "product_id": history["product_id"].iloc[rows].astype(str).to_numpy(),
                        "sale_date": dates.iloc[rows].to_numpy(),
                        "units": pd.to_numeric(history["units"].iloc[rows]).to_numpy(dtype=float)})
    hits = sub.merge(excluded[["store_id", "product_id", "sale_date", "expected"]],
                     on=["store_id", "product_id", "sale_date"])
    day_total = hits.groupby(["store_id", "product_id", "sale_date"])["units"].transform("sum")
    new_units = pd.to_numeric(history["units"]).to_numpy(dtype=float).copy()
    new_units[hits["row"].to_numpy()] = (hits["expected"] * hits["units"] / day_total).to_numpy()
    out = history.copy(deep=False)
    out["units"] = new_units
    return out
