"""Local forecasting engine: contract, fallbacks, seasonality, holidays and calibration."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retailopt.forecasting import ForecastResult, forecast
from retailopt.forecasting.synthetic import matrix_to_history, synthetic_matrix

SCHEMA = Path(__file__).resolve().parents[1] / "sql" / "schema"


def _columns(table: str) -> list[str]:
    text = (SCHEMA / f"{table}.sql").read_text()
    body = text[text.index("(") + 1: text.index("\n)")]
    return [m.group(1) for m in re.finditer(r"^\s+([a-z_0-9]+)\s+[A-Z]", body, re.M)]


def _keys(n_stores: int, n_products: int) -> pd.DataFrame:
    return pd.DataFrame([(f"S{s}", f"P{p}") for s in range(n_stores) for p in range(n_products)],
                        columns=["store_id", "product_id"])


def _run(units: np.ndarray, keys: pd.DataFrame, days: pd.DatetimeIndex, horizon: int = 14,
         window: int = 7, **kw) -> ForecastResult:
    hist = matrix_to_history(keys, days, units)
    return forecast(hist, keys, forecast_start=(days[-1] + pd.Timedelta(days=1)).date(),
                    horizon=horizon, window_days=keys.assign(window_days=window), **kw)


def test_output_columns_match_the_warehouse_tables():
    keys, days, units, promo = synthetic_matrix(60, 400, date(2024, 3, 31), seed=3, n_stores=3)
    res = forecast(matrix_to_history(keys, days, units, promo), keys, forecast_start=date(2024, 4, 1),
                   horizon=10, window_days=keys.assign(window_days=np.arange(60) % 20 + 1))
    assert list(res.daily.columns) == [c for c in _columns("forecasts") if c != "run_id"]
    assert list(res.protection.columns) == [c for c in _columns("demand_windows")
                                            if c not in ("run_id", "run_date")]
    d = res.daily
    assert len(d) == 60 * 10
    assert d["forecast_date"].min() == pd.Timestamp("2024-04-01")
    assert d["forecast_date"].max() == pd.Timestamp("2024-04-10")
    assert (d["forecast_mean"] >= 0).all()
    assert (d["lower_bound"] <= d["quantile_50"]).all() and (d["quantile_50"] <= d["upper_bound"]).all()
    q = d[["quantile_50", "quantile_80", "quantile_90", "quantile_95", "quantile_99"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    p = res.protection
    assert (p["window_days"].to_numpy() == np.arange(60) % 20 + 1).all()
    assert (np.diff(p[["q50", "q80", "q90", "q95", "q99"]].to_numpy(), axis=1) >= 0).all()
    assert d["model"].notna().all() and p["model"].notna().all()


def test_fallbacks_have_reasons_and_never_crash():
    days = pd.date_range(end="2024-06-30", periods=200, freq="D")
    rng = np.random.default_rng(0)
    keys = pd.DataFrame({"store_id": ["A"] * 5, "product_id": ["ok", "short", "gone", "zero", "new"]})
    units = np.zeros((5, 200))
    units[0] = rng.poisson(3, 200)
    units[1, -10:] = rng.poisson(2, 10) + 1
    units[2, :100] = rng.poisson(4, 100)
    hist = matrix_to_history(keys, days, units)
    # An explicit zero-units row: the series exists but never sold.
    hist = pd.concat([hist, pd.DataFrame([{"store_id": "A", "product_id": "zero", "units": 0,
                                           "sale_date": days[5], "price": 1.0,
                                           "on_promotion": False}])], ignore_index=True)
    res = forecast(hist, keys, forecast_start=date(2024, 7, 1), horizon=7,
                   window_days=keys.assign(window_days=5))
    by = res.daily.groupby("product_id").first()
    assert pd.isna(by.loc["ok", "fallback_reason"])
    assert by.loc["short", "fallback_reason"] == "too_short"
    assert by.loc["gone", "fallback_reason"] == "discontinued"
    assert by.loc["zero", "fallback_reason"] == "all_zero"
    assert by.loc["new", "fallback_reason"] == "new_series"
    assert by.loc["gone", "forecast_mean"] == 0 and by.loc["zero", "forecast_mean"] == 0
    assert by.loc["short", "forecast_mean"] > 1
    assert 2 < by.loc["ok", "forecast_mean"] < 4.5


def test_new_product_borrows_the_rate_of_the_same_product_elsewhere():
    days = pd.date_range(end="2024-06-30", periods=120, freq="D")
    rng = np.random.default_rng(1)
    keys = pd.DataFrame({"store_id": ["A", "B", "C", "C"], "product_id": ["X", "X", "Y", "X"]})
    units = np.vstack([rng.poisson(8, 120), rng.poisson(10, 120), rng.poisson(1, 120), np.zeros(120)])
    res = _run(units, keys, days)
    row = res.daily[(res.daily.store_id == "C") & (res.daily.product_id == "X")].iloc[0]
    assert row.fallback_reason == "new_series" and row.model == "fallback_product_median"
    assert 7 < row.forecast_mean < 11


def test_a_product_new_to_the_chain_takes_its_category_rate_with_a_wide_interval():
    days = pd.date_range(end="2024-06-30", periods=120, freq="D")
    rng = np.random.default_rng(2)
    positions = pd.DataFrame({"store_id": ["A", "A", "A", "A", "A"], "product_id": ["X", "Y", "Z", "N", "M"],
                              "category": ["dairy", "dairy", "bakery", "dairy", "toys"]})
    units = np.vstack([rng.poisson(4, 120), rng.poisson(8, 120), rng.poisson(30, 120), np.zeros(120), np.zeros(120)])
    hist = matrix_to_history(positions[["store_id", "product_id"]], days, units)
    res = forecast(hist, positions, forecast_start=date(2024, 7, 1), horizon=7,
                   window_days=positions.assign(window_days=7))
    by = res.daily.groupby("product_id").first()
    assert by.loc["N", "model"] == "fallback_category_median" and by.loc["N", "fallback_reason"] == "new_series"
    assert 5 < by.loc["N", "forecast_mean"] < 7  # between the dairy products' 4 and 8
    assert by.loc["M", "model"] == "fallback_chain_median"
    assert res.daily.drop(columns=["fallback_reason"]).notna().all().all()
    window = res.protection.set_index("product_id")
    # Its window demand is far less certain than an established product's of the same rate.
    cv = window["demand_std"] / window["demand_mean"]
    assert cv["N"] > 2 * cv["Y"]


def test_weekly_seasonality_and_level_are_recovered():
    days = pd.date_range(end="2024-06-30", periods=365, freq="D")
    rng = np.random.default_rng(2)
    profile = np.array([1, 1, 1, 1, 1.5, 2.5, 0.5])
    truth = 6.0 * profile[days.dayofweek.to_numpy()]
    keys = _keys(1, 20)
    units = rng.poisson(np.broadcast_to(truth, (20, 365)))
    res = _run(units, keys, days, horizon=14, holiday_country=None)
    mean = res.daily.groupby(res.daily.forecast_date.dt.dayofweek)["forecast_mean"].mean()
    np.testing.assert_allclose(mean.to_numpy(), 6.0 * profile, rtol=0.12)


def test_window_distribution_is_not_a_sum_of_daily_quantiles():
    days = pd.date_range(end="2024-06-30", periods=300, freq="D")
    rng = np.random.default_rng(3)
    keys = _keys(1, 30)
    units = rng.poisson(5.0, (30, 300))
    res = _run(units, keys, days, horizon=14, window=14, holiday_country=None)
    sum_daily_q95 = res.daily.groupby("product_id")["quantile_95"].sum()
    p = res.protection.set_index("product_id")
    assert (p["q95"] < sum_daily_q95.loc[p.index]).all()
    # A 14-day sum of Poisson(5) has mean 70 and sd ~8.4 (plus a little level uncertainty).
    np.testing.assert_allclose(p["demand_mean"].median(), 70, rtol=0.06)
    assert 7.5 < p["demand_std"].median() < 14


def test_near_zero_levels_do_not_blow_up_the_other_series_windows():
    # A series asleep for months that wakes with a burst has a level near zero where its
    # backtest errors are large; its relative level error must not spill into the pool.
    days = pd.date_range(end="2024-06-30", periods=400, freq="D")
    rng = np.random.default_rng(5)
    keys = _keys(1, 40)
    units = rng.poisson(5.0, (40, 400))
    # One early sale, a year of nothing (the smoothed level decays to ~0), then sales in the
    # last backtest window only: a relative level error in the millions.
    units[:4] = 0
    units[:4, 0] = 1
    units[:4, [390, 393, 397]] = 4
    p = _run(units, keys, days, horizon=14, window=14, holiday_country=None).protection
    steady = p[p.product_id.isin([f"P{i}" for i in range(4, 40)])]
    assert (steady.demand_std < 0.5 * steady.demand_mean).all()
    assert (steady.q50 > 0.7 * steady.demand_mean).all()


def test_christmas_closure_is_learned_from_history():
    days = pd.date_range(start="2021-10-01", end="2023-12-15", freq="D")
    rng = np.random.default_rng(4)
    mu = np.full(len(days), 10.0)
    mu[(days.month == 12) & (days.day == 25)] = 0.0
    keys = _keys(2, 10)
    units = rng.poisson(np.broadcast_to(mu, (20, len(days))))
    res = _run(units, keys, days, horizon=14, holiday_country="US")
    xmas = res.daily[res.daily.forecast_date == pd.Timestamp("2023-12-25")]
    other = res.daily[res.daily.forecast_date == pd.Timestamp("2023-12-21")]
    assert xmas["forecast_mean"].max() < 1.0 < 8 < other["forecast_mean"].min()


def test_intermittent_series_get_count_models_and_honest_coverage():
    keys, days, units, promo = synthetic_matrix(400, 500, date(2024, 5, 31), seed=5, n_stores=8)
    h = 21
    hist = matrix_to_history(keys, days[:-h], units[:, :-h], promo[:, :-h])
    res = forecast(hist, keys, forecast_start=days[-h].date(), horizon=h,
                   window_days=keys.assign(window_days=h))
    # The backtest picks the level model per series; TSB wins most intermittent series.
    chosen = res.series.loc[res.series.demand_class.isin(["intermittent", "lumpy"]), "model"]
    assert chosen.isin(["local_tsb_nb", "local_ses_nb", "local_snaive_nb", "local_weekly_mean_nb"]).all()
    assert (chosen == "local_tsb_nb").mean() > 0.5
    actual = units[:, -h:]
    window = actual.sum(axis=1)
    p = res.protection
    ok = res.series["fallback_reason"].isna().to_numpy()
    cover90 = (window[ok] <= p["q90"].to_numpy()[ok]).mean()
    assert 0.82 <= cover90 <= 0.97
    lo = res.daily["lower_bound"].to_numpy().reshape(400, h)
    hi = res.daily["upper_bound"].to_numpy().reshape(400, h)
    inside = ((actual >= lo) & (actual <= hi))[ok].mean()
    assert 0.86 <= inside <= 0.95  # confidence_level 0.9


def test_bad_input_names_row_and_field():
    keys = _keys(1, 1)
    hist = pd.DataFrame({"store_id": ["S0"], "product_id": ["P0"], "sale_date": [pd.Timestamp("2024-01-01")],
                         "units": [-3], "price": [1.0], "on_promotion": [False]})
    with pytest.raises(ValueError, match="row 0.*units"):
        forecast(hist, keys, forecast_start=date(2024, 2, 1), horizon=7,
                 window_days=keys.assign(window_days=7))
    with pytest.raises(ValueError, match="missing column"):
        forecast(hist.drop(columns=["units"]), keys, forecast_start=date(2024, 2, 1), horizon=7,
                 window_days=keys.assign(window_days=7))
    with pytest.raises(ValueError, match="window_days"):
        forecast(hist.assign(units=1), keys, forecast_start=date(2024, 2, 1), horizon=7,
                 window_days=keys.assign(window_days=0))


def test_chunked_run_equals_positions_order_and_single_run():
    keys, days, units, promo = synthetic_matrix(90, 200, date(2024, 3, 31), seed=9, n_stores=6)
    keys = keys.sample(frac=1.0, random_state=1).reset_index(drop=True)
    hist = matrix_to_history(pd.DataFrame({"store_id": keys.store_id, "product_id": keys.product_id}),
                             days, units)
    kw = dict(forecast_start=date(2024, 4, 1), horizon=5, window_days=keys.assign(window_days=4),
              holiday_country=None)
    whole = forecast(hist, keys, **kw)
    chunked = forecast(hist, keys, max_chunk_series=40, **kw)
    assert (chunked.protection[["store_id", "product_id"]].to_numpy() == keys.to_numpy()).all()
    assert (chunked.daily["store_id"].to_numpy() == whole.daily["store_id"].to_numpy()).all()
    assert (chunked.daily["product_id"].to_numpy() == whole.daily["product_id"].to_numpy()).all()
    # Weekday profiles pool per store, so chunks of whole stores change little.
    np.testing.assert_allclose(chunked.protection["demand_mean"], whole.protection["demand_mean"], rtol=0.05)


def test_planned_promotions_lift_the_forecast_where_they_help():
    from retailopt.forecasting import backtest

    rng = np.random.default_rng(3)
    days = pd.date_range(end="2024-06-30", periods=400, freq="D")
    keys = _keys(4, 12)
    base = rng.gamma(2.0, 2.0, (48, 1))
    promo = np.zeros((48, len(days)), dtype=bool)
    for p in range(12):  # chain-wide circulars per product, a week each
        for start in rng.choice(np.arange(0, len(days) - 7, 7), 8, replace=False):
            promo[np.arange(4) * 12 + p, start:start + 7] = True
    units = rng.poisson(base * np.where(promo, 2.5, 1.0)).astype(float)
    hist = matrix_to_history(keys, days, units, promo)
    kw = dict(forecast_start=date(2024, 7, 1), horizon=14, n_origins=4, holiday_country=None)
    pick = lambda df: df[(df.level == "aggregate") & (df.model == "all")].iloc[0]  # noqa: E731
    blind = pick(backtest(hist, keys, **kw))
    told = pick(backtest(hist, keys, planned_promotions=True, **kw))
    assert told.rmsse < 0.85 * blind.rmsse and told.wape < blind.wape
    assert abs(told.coverage_80 - 0.8) < 0.06
    # The lift shows in the components (with holidays, as calendar events) and still adds up.
    plan = pd.DataFrame({"store_id": keys.store_id, "product_id": keys.product_id,
                         "sale_date": pd.Timestamp("2024-07-03"), "on_promotion": [True] * 24 + [False] * 24})
    res = forecast(hist, keys, forecast_start=date(2024, 7, 1), horizon=7, holiday_country=None,
                   window_days=keys.assign(window_days=7), future_promotions=plan, component_days=14)
    mean = res.daily.forecast_mean.to_numpy().reshape(48, 7)
    assert (mean[:24, 2] > 1.8 * mean[:24, 1]).all() and np.allclose(mean[24:, 2], mean[24:, 1], rtol=0.35)
    fc = res.components[res.components.time_series_type == "forecast"]
    parts = fc[["trend", "seasonal_weekly", "seasonal_yearly", "holiday_effect"]].sum(axis=1)
    assert np.allclose(parts, fc.forecast_value)
    assert (fc[fc.component_date == pd.Timestamp("2024-07-03")].holiday_effect.iloc[:24] > 0).all()


def test_weekly_candidate_replaces_the_pipeline_where_the_backtest_says_so():
    rng = np.random.default_rng(0)
    days = pd.date_range(end="2024-06-30", periods=500, freq="D")
    dow = days.dayofweek.to_numpy()
    mu = np.zeros((40, len(days)))
    for i in range(20):
        # A peak day that moves every eight weeks: a weekday profile fitted over a year cannot
        # follow it, last week's sales can.
        shift = (np.arange(len(days)) // 56 + i) % 7
        mu[i] = np.where((dow + shift) % 7 == 0, 40.0, 2.0)
    mu[20:] = np.where(dow == 5, 12.0, 6.0)  # a stable pattern: the pipeline stays
    units = rng.poisson(mu).astype(float)
    keys = _keys(2, 20)
    res = _run(units, keys, days, horizon=7, window=7, holiday_country=None)
    models = res.series.model.to_numpy()
    assert set(models[:20]) <= {"local_snaive_nb", "local_weekly_mean_nb"} and len(models[:20]) == 20
    assert set(models[20:]) <= {"local_ses_nb", "local_tsb_nb"}
    mean = res.daily.forecast_mean.to_numpy().reshape(40, 7)
    # The peak is forecast on last week's peak weekday.
    last_week_peak = units[:20, -7:].argmax(axis=1)
    assert (mean[:20].argmax(axis=1) == last_week_peak).mean() > 0.9
    assert (res.daily.model.to_numpy().reshape(40, 7)[:, 0] == models).all()
