"""Interval calibration on the mid-PIT scale: exact definitions and coverage on fresh data."""

from __future__ import annotations

from datetime import date

import numpy as np
from scipy import stats

from retailopt.forecasting import forecast
from retailopt.forecasting.calibration import calibration_sample, interval, mid_bounds, mid_pit
from retailopt.forecasting.synthetic import matrix_to_history, synthetic_matrix


def test_mid_pit_matches_scipy_for_negative_binomial_and_poisson():
    y = np.array([0, 1, 3, 7, 0, 2, 5])
    mean = np.array([0.5, 1.0, 2.0, 6.0, 3.0, 2.0, 4.0])
    var = np.array([1.5, 3.0, 2.0, 20.0, 3.0, 2.0, 9.0])  # Poisson where var == mean
    expected = []
    for k, m, v in zip(y, mean, var):
        dist = stats.poisson(m) if v <= m else stats.nbinom(m * m / (v - m), m / v)
        expected.append(dist.cdf(k - 1) + 0.5 * dist.pmf(k))
    assert np.allclose(mid_pit(y, mean, var), expected)
    assert mid_pit(np.array([0, 2]), np.zeros(2), np.zeros(2)).tolist() == [0.5, 1.0]


def test_mid_bounds_follow_their_definition():
    rng = np.random.default_rng(1)
    mean = rng.gamma(1.0, 3.0, 300)
    var = mean * (1 + rng.gamma(1.0, 1.0, 300))
    t_lo = rng.uniform(0.01, 0.3, 300)
    t_hi = rng.uniform(0.7, 0.99, 300)
    lo, hi = mid_bounds(mean, var, t_lo, t_hi)
    xs = np.arange(400)
    for i in range(300):
        fm = mid_pit(xs, np.full(400, mean[i]), np.full(400, var[i]))
        inside = xs[(fm >= t_lo[i]) & (fm <= t_hi[i])]
        if inside.size:
            assert (lo[i], hi[i]) == (inside.min(), inside.max())
        else:  # one atom straddles both thresholds
            assert lo[i] == hi[i] == xs[fm >= t_lo[i]].min()


def test_calibration_fixes_a_wrong_dispersion_on_fresh_data():
    rng = np.random.default_rng(7)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        mean = rng.gamma(0.8, 2.0, n)
        # True demand is far more dispersed than the model below assumes (Poisson).
        return mean, rng.negative_binomial(0.6, 0.6 / (0.6 + mean))

    mean, y = draw(60_000)
    calibration = calibration_sample(y, mean, mean)
    mean, y = draw(60_000)
    for level in (0.8, 0.95):
        lo, hi = interval(mean, mean, level, calibration)
        assert abs(((y >= lo) & (y <= hi)).mean() - level) < 0.03
        lo, hi = interval(mean, mean, level, None)  # nominal thresholds: badly under-covers
        assert ((y >= lo) & (y <= hi)).mean() < level - 0.05


def test_engine_reports_calibrated_intervals():
    keys, days, units, promo = synthetic_matrix(150, 500, date(2024, 5, 31), seed=5, n_stores=3)
    res = forecast(matrix_to_history(keys, days[:-28], units[:, :-28], promo[:, :-28]), keys, forecast_start=days[-28].date(), horizon=28, window_days=keys.assign(window_days=7),
                   confidence_level=0.8)
    assert not res.calibration.empty
    lo, hi = res.interval(0.8)
    d = res.daily
    assert np.array_equal(d["lower_bound"].to_numpy(), np.minimum(lo, d["quantile_50"].to_numpy()))
    assert np.array_equal(d["upper_bound"].to_numpy(), np.maximum(hi, d["quantile_50"].to_numpy()))
    actual = units[:, -28:].ravel()
    cover = ((actual >= lo) & (actual <= hi)).mean()
    assert 0.74 <= cover <= 0.86


def test_each_demand_class_gets_its_own_thresholds():
    rng = np.random.default_rng(11)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = rng.gamma(2.0, 2.0, n)
        group = np.where(rng.random(n) < 0.5, "smooth", "lumpy")
        shape = np.where(group == "lumpy", 0.4, 50.0)  # the model below says NB with shape 2
        return mean, rng.negative_binomial(shape, shape / (shape + mean)), group

    mean, y, group = draw(80_000)
    var = mean + mean ** 2 / 2.0
    pooled = calibration_sample(y, mean, var)
    by_class = calibration_sample(y, mean, var, group)
    mean, y, group = draw(80_000)
    var = mean + mean ** 2 / 2.0
    for cls in ("smooth", "lumpy"):
        sel = group == cls
        lo, hi = interval(mean[sel], var[sel], 0.8, by_class, group[sel])
        assert abs(((y[sel] >= lo) & (y[sel] <= hi)).mean() - 0.8) < 0.03
        lo, hi = interval(mean[sel], var[sel], 0.8, pooled)
        assert abs(((y[sel] >= lo) & (y[sel] <= hi)).mean() - 0.8) > 0.05


def test_intervals_hold_the_median_and_never_cover_less_than_it():
    rng = np.random.default_rng(5)
    mean = rng.gamma(0.5, 1.0, 50_000)  # mostly a median of zero
    var = mean + mean ** 2 / 2
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mean))
    calibration = calibration_sample(y, mean, var)
    median = stats.nbinom.ppf(0.5, 2.0, 2.0 / (2.0 + mean))
    for level in (0.5, 0.8, 0.95):
        lo, hi = interval(mean, var, level, calibration)
        assert (lo <= median).all() and (median <= hi).all()
        cover = ((y >= lo) & (y <= hi)).mean()
        # As close to the level as intervals holding the median allow (they hold every day
        # whose actual equals its median).
        floor = (y == median).mean()
        assert max(level, floor) - 0.01 <= cover <= max(level, floor) + 0.08


def test_unique_rows_matches_numpy_unique_and_keeps_nan_rows_apart():
    from retailopt.forecasting.distributions import unique_rows

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 4, (5000, 3)).astype(float) / 2
    rows[:5] = np.nan  # rows with NaN: never merged, each its own
    rows[5:8, 0] = -0.0  # the same number as 0.0
    distinct, inverse = unique_rows(rows)
    assert np.array_equal(distinct[inverse], rows, equal_nan=True)
    reference = np.unique(rows[5:], axis=0)
    assert len(distinct) == len(reference) + 5
    assert not np.isnan(distinct[inverse[5:]]).any()
    empty, none = unique_rows(np.zeros((0, 2)))
    assert empty.shape == (0, 2) and none.size == 0
