"""Pooling of levels towards the store x product prior, and the daily engine's bias for slow
movers grouped by trailing sales (not by the forecast)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from retailopt.forecasting.engine import forecast
from retailopt.forecasting.metrics import bias_by_sales_level
from retailopt.forecasting.pooling import independence_prior, pool_levels, pool_weights
from retailopt.forecasting.synthetic import matrix_to_history


def test_prior_fits_a_multiplicative_table_with_missing_cells():
    a = np.array([1.0, 2.0, 0.5])
    b = np.array([3.0, 0.2, 1.0, 7.0])
    store = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    product = np.array([0, 1, 2, 0, 3, 1, 2, 3])  # product 3 is missing in store 0, and so on
    levels = a[store] * b[product]
    np.testing.assert_allclose(independence_prior(levels, store, product), levels, rtol=1e-6)
    # A product sold in one store only gets its own level back, whatever the store's share.
    single = np.array([1.0, 5.0, 2.0])
    np.testing.assert_allclose(independence_prior(single, np.array([0, 0, 1]), np.array([0, 1, 2])), single,
                               rtol=1e-9)
    # Columns (levels at several origins) are fitted one by one.
    both = independence_prior(np.stack([levels, 2 * levels], axis=1), store, product)
    np.testing.assert_allclose(both[:, 1], 2 * levels, rtol=1e-6)


def test_weights_fall_with_the_level_error():
    w = pool_weights(np.array([0.0, 0.1, 1.0, 4.0]), 0.1)
    assert w[0] == 1.0 and np.all(np.diff(w) < 0) and w[1] == 0.5


def test_pooling_lowers_the_error_and_lifts_quiet_positions():
    rng = np.random.default_rng(5)
    n_store, n_prod = 20, 60
    store = np.repeat(np.arange(n_store), n_prod)
    product = np.tile(np.arange(n_prod), n_store)
    truth = rng.uniform(0.5, 2.0, n_store)[store] * rng.lognormal(-1.5, 1.0, n_prod)[product] \
        * rng.lognormal(0, 0.3, store.size)
    # Each level estimated from 60 days of Poisson sales: relative error variance 1 / (60 level).
    estimate = rng.poisson(60 * truth) / 60
    rel_var = 1.0 / (60 * np.maximum(estimate, 1 / 60))
    pooled, _, w = pool_levels(estimate, rel_var, store, product)
    assert ((pooled - truth) ** 2).sum() < 0.8 * ((estimate - truth) ** 2).sum()
    assert np.all((w > 0) & (w < 1))
    # The quietest estimates (the lowest fifth) are below their truth; pooling lifts them.
    quiet = estimate <= np.quantile(estimate, 0.2)
    raw_ratio = estimate[quiet].sum() / truth[quiet].sum()
    pooled_ratio = pooled[quiet].sum() / truth[quiet].sum()
    assert raw_ratio < 0.85 and abs(pooled_ratio - 1) < abs(raw_ratio - 1) / 2


def _chain(n_store: int, n_prod: int, n_days: int, seed: int) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray,
                                                                       np.ndarray]:
    """Stationary Poisson chain, rate = store x product x affinity: (keys, days, units, rate)."""
    rng = np.random.default_rng(seed)
    store = np.repeat(np.arange(n_store), n_prod)
    product = np.tile(np.arange(n_prod), n_store)
    rate = rng.uniform(0.6, 1.6, n_store)[store] * rng.lognormal(-1.0, 1.0, n_prod)[product] \
        * rng.lognormal(-0.06, 0.35, store.size)
    units = rng.poisson(rate[:, None] * np.ones((1, n_days))).astype(float)
    keys = pd.DataFrame({"store_id": [f"S{s}" for s in store], "product_id": [f"P{p}" for p in product]})
    days = pd.date_range(end="2024-06-30", periods=n_days, freq="D")
    return keys, days, units, rate


def test_slow_movers_are_not_under_forecast_when_grouped_by_trailing_sales():
    keys, days, units, rate = _chain(12, 50, 300, seed=11)
    res = forecast(matrix_to_history(keys, days, units), keys, forecast_start=date(2024, 7, 1), horizon=28,
                   window_days=keys.assign(window_days=28), holiday_country=None)
    mean = res.daily["forecast_mean"].to_numpy().reshape(len(keys), 28)
    # Scored against the true rates (no noise of the future): the bias is the engine's alone.
    expected = np.repeat(rate[:, None], 28, axis=1)
    by_level = bias_by_sales_level(expected, mean, units)
    # Without pooling, positions quiet over the last four weeks are forecast ~20 % below their rate.
    assert abs(by_level["<=0.3"]) < 0.1 and abs(by_level["0.3-1"]) < 0.1
    assert abs(mean.sum() / expected.sum() - 1) < 0.05


def test_capped_spikes_of_lumpy_demand_stay_in_the_mean():
    rng = np.random.default_rng(2)
    n, n_days = 40, 500
    # Lumpy: orders on 3 % of days, sizes 1 + negative binomial with mean 8 (heavy tail).
    hit = rng.random((n, n_days)) < 0.03
    size = 1 + rng.negative_binomial(0.6, 0.6 / (0.6 + 8.0), (n, n_days))
    units = np.where(hit, size, 0).astype(float)
    keys = pd.DataFrame({"store_id": [f"S{i % 4}" for i in range(n)], "product_id": [f"P{i}" for i in range(n)]})
    days = pd.date_range(end="2024-06-30", periods=n_days, freq="D")
    res = forecast(matrix_to_history(keys, days, units), keys, forecast_start=date(2024, 7, 1), horizon=28,
                   window_days=keys.assign(window_days=28), holiday_country=None)
    assert res.series["n_spikes"].sum() > 0  # the cap does bite on this data
    # Against the last year's sales: the capped units are about half of them here, and a level
    # on capped data alone was 52 % low; the share of the capped units is given back.
    ratio = res.daily["forecast_mean"].sum() / (units[:, -365:].mean() * n * 28)
    assert 0.8 < ratio < 1.1
