"""Synthetic retail demand for tests and the benchmark's scale mode.

Series mix what real store x product demand shows: a wide range of volumes (most series slow
and intermittent, a few fast), weekly and yearly seasonality, a slowly drifting level, holiday
effects (store closed on Christmas), promotions, over-dispersed counts and stock-outs.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd


def synthetic_matrix(n_series: int, n_days: int, end: date, *, seed: int = 0,
                     n_stores: int = 25) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Keys (store_id, product_id), days, units (S, D) and on_promotion (S, D) matrices."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(end=pd.Timestamp(end), periods=n_days, freq="D")
    n_products = int(np.ceil(n_series / n_stores))
    store = np.arange(n_series) % n_stores
    product = np.arange(n_series) // n_stores
    keys = pd.DataFrame({"store_id": [f"S{s:03d}" for s in store],
                         "product_id": [f"P{p:05d}" for p in product]})
    product_rate = np.exp(rng.normal(-0.4, 1.3, n_products))
    store_mult = np.exp(rng.normal(0, 0.35, n_stores))
    base = product_rate[product] * store_mult[store]
    weekly_store = np.array([0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 1.0]) * np.exp(rng.normal(0, 0.08, (n_stores, 7)))
    weekly = weekly_store[store] * np.exp(rng.normal(0, 0.1, (n_series, 7)))
    weekly /= weekly.mean(axis=1, keepdims=True)
    amp = rng.uniform(0, 0.35, n_products)[product] * (rng.random(n_series) < 0.7)
    phase = rng.uniform(0, 2 * np.pi, n_products)[product]
    doy = days.dayofyear.to_numpy()
    yearly = np.exp(amp[:, None] * np.cos(2 * np.pi * doy[None, :] / 365.25 - phase[:, None]))
    # Level drift: a slow random walk in logs, with occasional step changes.
    steps = rng.normal(0, 0.012, (n_series, n_days))
    drift = np.cumsum(steps, axis=1)
    shift_day = rng.integers(0, n_days, n_series)
    shift = np.where(rng.random(n_series) < 0.1, rng.normal(0, 0.4, n_series), 0.0)
    drift += shift[:, None] * (np.arange(n_days)[None, :] >= shift_day[:, None])
    drift -= drift[:, -1:] * 0.5
    mu = base[:, None] * weekly[:, days.dayofweek.to_numpy()] * yearly * np.exp(drift)
    month, day = days.month.to_numpy(), days.day.to_numpy()
    christmas = (month == 12) & (day == 25)
    mu[:, christmas] = 0.0
    thanksgiving = (month == 11) & (days.dayofweek.to_numpy() == 3) & (day >= 22) & (day <= 28)
    mu[:, thanksgiving] *= 0.6
    black_friday = np.roll(thanksgiving, 1)
    mu[:, black_friday] *= 1.8
    promo = rng.random((n_series, n_days)) < rng.choice([0.0, 0.02, 0.05], n_series)[:, None]
    mu = np.where(promo, mu * rng.uniform(1.3, 2.5, n_series)[:, None], mu)
    k = np.exp(rng.normal(0.5, 1.0, n_series))
    units = rng.negative_binomial(k[:, None], k[:, None] / (k[:, None] + np.maximum(mu, 1e-12)))
    units = np.where(mu > 0, units, 0)
    # Stock-outs: 30% of series lose 1-3 runs of 3-20 days.
    for _ in range(3):
        hit = rng.random(n_series) < 0.15
        start = rng.integers(0, n_days, n_series)
        length = rng.integers(3, 21, n_series)
        t = np.arange(n_days)[None, :]
        out = hit[:, None] & (t >= start[:, None]) & (t < (start + length)[:, None])
        units = np.where(out, 0, units)
    return keys, days, units.astype(float), promo


def synthetic_history(n_stores: int, n_products: int, n_days: int, end: date, *,
                      seed: int = 0) -> pd.DataFrame:
    """Long sales rows (only days with sales), shaped like the ``sales`` table."""
    keys, days, units, promo = synthetic_matrix(n_stores * n_products, n_days, end, seed=seed,
                                                n_stores=n_stores)
    return matrix_to_history(keys, days, units, promo)


def matrix_to_history(keys: pd.DataFrame, days: pd.DatetimeIndex, units: np.ndarray,
                      promo: np.ndarray | None = None) -> pd.DataFrame:
    si, di = np.nonzero(units > 0)
    return pd.DataFrame({
        "store_id": keys["store_id"].to_numpy()[si],
        "product_id": keys["product_id"].to_numpy()[si],
        "sale_date": days.to_numpy()[di],
        "units": units[si, di].astype(np.int64),
        "price": 1.0,
        "on_promotion": promo[si, di] if promo is not None else False,
    })
