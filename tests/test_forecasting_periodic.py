"""The engine on weekly and monthly data (forecasting/periodic.py through forecast(frequency=))."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from retailopt.forecasting import forecast
from retailopt.forecasting.periodic import new_series_rates


def _weekly(n_stores=2, n_products=4, n_weeks=156, end="2024-12-27", seed=0, freq="W-FRI"):
    """Weekly sales with a yearly season (peak in December), a level per product, noise."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(end=end, periods=n_weeks, freq=freq)
    season = 1 + 0.5 * np.cos(2 * np.pi * (weeks.dayofyear.to_numpy() - 355) / 365.25)
    rows = []
    for s in range(n_stores):
        for p in range(n_products):
            level = 20 + 15 * p
            units = rng.poisson(level * season * rng.gamma(20, 1 / 20, n_weeks))
            rows.append(pd.DataFrame({"store_id": f"S{s}", "product_id": f"P{p}", "sale_date": weeks,
                                      "units": units, "category": "cat" if p < 2 else "dog"}))
    return pd.concat(rows, ignore_index=True), weeks


def _keys(hist):
    return hist[["store_id", "product_id"]].drop_duplicates().reset_index(drop=True)


def test_weekly_forecast_is_on_the_input_grid_with_the_season():
    hist, weeks = _weekly()
    keys = _keys(hist)
    res = forecast(hist, keys, forecast_start=date(2024, 12, 28), horizon=26,
                   window_days=keys.assign(window_days=4))
    d = res.daily
    assert len(d) == len(keys) * 26
    expected = pd.date_range("2025-01-03", periods=26, freq="W-FRI")
    assert (d.groupby(["store_id", "product_id"])["forecast_date"].apply(list).map(
        lambda v: list(pd.DatetimeIndex(v)) == list(expected))).all()
    assert d[["forecast_mean", "standard_error", "lower_bound", "upper_bound"]].notna().all().all()
    assert (res.series["frequency"] == "W-FRI").all()
    # January (week 1) sells about three times mid-year (week 26): the yearly season carries over.
    one = d[(d.store_id == "S0") & (d.product_id == "P3")].set_index("forecast_date")["forecast_mean"]
    assert one.iloc[0] > 2 * one.iloc[25]
    assert (d["lower_bound"] <= d["quantile_50"]).all() and (d["quantile_50"] <= d["upper_bound"]).all()
    # Windows count periods: four weeks summed.
    p = res.protection.set_index(["store_id", "product_id"])
    first4 = d.groupby(["store_id", "product_id"])["forecast_mean"].apply(lambda v: v.iloc[:4].sum())
    assert np.allclose(p["demand_mean"].to_numpy(), first4.reindex(p.index).to_numpy())
    assert (p["window_days"] == 4).all()


def test_a_run_date_inside_a_week_forecasts_from_the_next_period():
    hist, _ = _weekly(n_weeks=80)
    keys = _keys(hist)
    res = forecast(hist, keys, forecast_start=date(2024, 12, 30), horizon=3, frequency="W-FRI",
                   window_days=keys.assign(window_days=1))
    assert res.daily["forecast_date"].min() == pd.Timestamp("2025-01-03")


def test_monthly_frequency_is_inferred_and_accurate_on_a_seasonal_series():
    months = pd.date_range("2010-01-01", periods=120, freq="MS")
    rng = np.random.default_rng(1)
    season = np.tile([0.8, 0.7, 0.9, 1.0, 1.1, 1.2, 1.3, 1.2, 1.0, 0.9, 0.9, 1.0], 10)
    trend = np.linspace(100, 200, 120)
    units = rng.poisson(trend * season)
    hist = pd.DataFrame({"store_id": "S", "product_id": "P", "sale_date": months, "units": units})
    keys = _keys(hist)
    train = hist.iloc[:-12]
    res = forecast(train, keys, forecast_start=date(2019, 1, 1), horizon=12, window_days=keys.assign(window_days=1))
    assert (res.daily["forecast_date"] == pd.date_range("2019-01-01", periods=12, freq="MS")).all()
    err = res.daily["forecast_mean"].to_numpy() - units[-12:]
    naive = np.full(12, units[-13]) - units[-12:]
    assert np.sqrt((err ** 2).mean()) < 0.6 * np.sqrt((naive ** 2).mean())
    assert res.series.loc[0, "model"] == "local_comb_nb"


def test_irregular_dates_raise_a_clear_error():
    hist = pd.DataFrame({"store_id": "S", "product_id": "P", "units": [3, 4, 5, 6],
                         "sale_date": pd.to_datetime(["2024-01-01", "2024-01-09", "2024-01-20", "2024-02-03"])})
    keys = _keys(hist)
    with pytest.raises(ValueError, match="irregular"):
        forecast(hist, keys, forecast_start=date(2024, 3, 1), horizon=2, window_days=keys.assign(window_days=1))
    with pytest.raises(ValueError, match="not on its grid"):
        forecast(hist, keys, forecast_start=date(2024, 3, 1), horizon=2, frequency="W-MON",
                 window_days=keys.assign(window_days=1))


def test_short_histories_late_starters_and_new_products_get_honest_forecasts():
    hist, weeks = _weekly(n_weeks=60)
    # P1 at S1 starts 20 weeks before the end (inside the window, shorter than two seasons), P2
    # at S1 has two weeks, P3 at S1 never sold anywhere in S1; "new" is a new product of
    # category dog, "alien" a new product of an unknown category.
    late = (hist.store_id == "S1") & (hist.product_id == "P1") & (hist.sale_date < weeks[-20])
    short = (hist.store_id == "S1") & (hist.product_id == "P2") & (hist.sale_date < weeks[-2])
    gone = (hist.store_id == "S1") & (hist.product_id == "P3")
    hist = hist.loc[~(late | short | gone)]
    keys = pd.concat([_keys(hist.assign()), pd.DataFrame({"store_id": ["S1", "S1", "S1"],
                                                          "product_id": ["P3", "new", "alien"]})],
                     ignore_index=True)
    cats = hist[["product_id", "category"]].drop_duplicates()
    positions = keys.merge(cats, on="product_id", how="left")
    positions.loc[positions.product_id == "new", "category"] = "dog"
    res = forecast(hist, positions, forecast_start=date(2024, 12, 28), horizon=8,
                   window_days=keys.assign(window_days=2))
    d = res.daily
    assert d.drop(columns=["fallback_reason"]).notna().all().all()
    by = d.groupby(["store_id", "product_id"]).first()
    assert pd.isna(by.loc[("S1", "P1"), "fallback_reason"]) and by.loc[("S1", "P1"), "forecast_mean"] > 5
    assert by.loc[("S1", "P2"), "model"] == "fallback_recent_mean"
    assert by.loc[("S1", "P3"), "model"] == "fallback_product_median"
    assert by.loc[("S1", "new"), "model"] == "fallback_category_median"
    assert by.loc[("S1", "alien"), "model"] == "fallback_chain_median"
    assert (by.loc[[("S1", "P3"), ("S1", "new"), ("S1", "alien")], "fallback_reason"] == "new_series").all()
    # A new product's interval is wide: it may sell like any product of its category.
    new = by.loc[("S1", "new")]
    dog = by.loc[("S0", "P3")]
    assert new.upper_bound - new.lower_bound > dog.upper_bound - dog.lower_bound


def test_new_series_rates_come_from_the_category_with_its_spread():
    keys = pd.DataFrame({"store_id": ["A"] * 5, "product_id": ["a", "b", "c", "d", "e"]})
    rate = np.array([10.0, 30.0, 2.0, 0.0, 0.0])
    known = np.array([True, True, True, False, False])
    new = ~known
    category = np.array(["x", "x", "y", "x", "z"], dtype=object)
    mu, rel, source = new_series_rates(keys, category, rate, known, new)
    assert list(source) == ["fallback_category_median", "fallback_chain_median"]
    assert mu[0] == 20.0 and mu[1] == 10.0
    assert rel[0] >= 0.5


def test_history_is_limited_in_periods():
    hist, _ = _weekly(n_weeks=200, n_stores=1, n_products=1)
    keys = _keys(hist)
    res = forecast(hist, keys, forecast_start=date(2024, 12, 28), horizon=4, max_history_periods=52,
                   window_days=keys.assign(window_days=1))
    assert res.series.loc[0, "n_periods"] == 52


def test_holiday_weeks_move_with_the_holiday():
    # An event in a different week each year (like Easter) doubles that week's sales.
    weeks = pd.date_range(end="2024-12-27", periods=260, freq="W-FRI")
    events = pd.to_datetime(["2020-04-12", "2021-04-04", "2022-04-17", "2023-04-09", "2024-03-31", "2025-04-20"])
    rng = np.random.default_rng(3)
    frames = []
    for p in range(6):
        units = rng.poisson(50, len(weeks)).astype(float)
        in_event = np.isin(weeks.to_period("W-FRI"), events.to_period("W-FRI"))
        units[in_event] *= 2
        frames.append(pd.DataFrame({"store_id": "S", "product_id": f"P{p}", "sale_date": weeks, "units": units}))
    hist = pd.concat(frames, ignore_index=True)
    keys = _keys(hist)
    cal = pd.DataFrame({"holiday_date": events, "holiday_name": "Spring event"})
    res = forecast(hist, keys, forecast_start=date(2024, 12, 28), horizon=20, holidays=cal,
                   window_days=keys.assign(window_days=1))
    one = res.daily[res.daily.product_id == "P0"].set_index("forecast_date")["forecast_mean"]
    event_week = pd.Timestamp("2025-04-25")  # the W-FRI week holding Sunday 2025-04-20
    others = one.drop(event_week)
    assert one[event_week] > 1.6 * others.median()


def test_intervals_cover_their_level_on_held_out_weeks():
    rng = np.random.default_rng(7)
    weeks = pd.date_range(end="2024-12-27", periods=130, freq="W-FRI")
    frames = []
    for p in range(150):
        level = rng.gamma(2, 10)
        walk = np.exp(np.cumsum(rng.normal(0, 0.03, len(weeks))))
        frames.append(pd.DataFrame({"store_id": f"S{p % 5}", "product_id": f"P{p}", "sale_date": weeks,
                                    "units": rng.poisson(level * walk)}))
    hist = pd.concat(frames, ignore_index=True)
    keys = _keys(hist)
    h = 8
    train = hist[hist.sale_date < weeks[-h]]
    res = forecast(train, keys, forecast_start=(weeks[-h - 1] + pd.Timedelta(days=1)).date(), horizon=h,
                   window_days=keys.assign(window_days=1))
    actual = hist[hist.sale_date >= weeks[-h]].set_index(["store_id", "product_id", "sale_date"])["units"]
    d = res.daily.set_index(["store_id", "product_id", "forecast_date"])
    y = actual.reindex(d.index).to_numpy()
    for level in (0.8, 0.95):
        lo, hi = res.interval(level)
        cover = ((y >= lo) & (y <= hi)).mean()
        assert abs(cover - level) < 0.07, (level, cover)


def test_quarterly_and_month_end_data_keep_their_own_dates():
    rng = np.random.default_rng(5)
    for freq, start, h in (("QS", "2015-01-01", 4), ("ME", "2015-01-31", 6)):
        dates = pd.date_range(start, periods=40, freq=freq)
        hist = pd.DataFrame({"store_id": "S", "product_id": ["P", "Q"] * 20,
                             "sale_date": np.repeat(dates[:20], 2), "units": rng.poisson(80, 40)})
        keys = _keys(hist)
        first = dates[20]
        res = forecast(hist, keys, forecast_start=(dates[19] + pd.Timedelta(days=1)).date(), horizon=h,
                       window_days=keys.assign(window_days=1))
        got = pd.DatetimeIndex(res.daily.loc[res.daily.product_id == "P", "forecast_date"])
        assert list(got) == list(pd.date_range(first, periods=h, freq=freq)), freq
        assert res.daily["forecast_mean"].between(40, 120).all()


def test_weekly_series_on_different_weekdays_are_forecast_on_their_own_grids():
    rng = np.random.default_rng(9)
    fri = pd.date_range(end="2024-12-27", periods=120, freq="W-FRI")
    wed = pd.date_range(end="2024-12-25", periods=90, freq="W-WED")
    hist = pd.concat([
        pd.DataFrame({"store_id": "S", "product_id": "F", "sale_date": fri, "units": rng.poisson(40, 120)}),
        pd.DataFrame({"store_id": "S", "product_id": "W", "sale_date": wed, "units": rng.poisson(90, 90)}),
    ], ignore_index=True)
    keys = pd.DataFrame({"store_id": ["S", "S", "S"], "product_id": ["W", "F", "new"]})
    res = forecast(hist, keys, forecast_start=date(2024, 12, 28), horizon=3,
                   window_days=keys.assign(window_days=1))
    d = res.daily
    assert list(d["product_id"].drop_duplicates()) == ["W", "F", "new"]
    assert list(d.loc[d.product_id == "F", "forecast_date"]) == list(pd.date_range("2025-01-03", periods=3, freq="W-FRI"))
    assert list(d.loc[d.product_id == "W", "forecast_date"]) == list(pd.date_range("2025-01-01", periods=3, freq="W-WED"))
    assert d.loc[d.product_id == "W", "forecast_mean"].mean() > 1.5 * d.loc[d.product_id == "F", "forecast_mean"].mean()
    assert set(res.series["frequency"]) == {"W-FRI", "W-WED"}
    # Two days apart, as the M4 weekly series' Wednesdays and Fridays.
    wed2 = pd.date_range(end="2024-12-25", periods=120, freq="W-WED")
    both = pd.concat([hist[hist.product_id == "F"],
                      pd.DataFrame({"store_id": "S", "product_id": "W2", "sale_date": wed2, "units": rng.poisson(90, 120)})])
    keys2 = pd.DataFrame({"store_id": ["S", "S"], "product_id": ["F", "W2"]})
    res2 = forecast(both, keys2, forecast_start=date(2024, 12, 28), horizon=2, window_days=keys2.assign(window_days=1))
    assert set(res2.series["frequency"]) == {"W-FRI", "W-WED"} and len(res2.daily) == 4
    # An alias names one grid: the same history is irregular for it.
    with pytest.raises(ValueError, match="not on its grid"):
        forecast(hist, keys, forecast_start=date(2024, 12, 28), horizon=3, frequency="W-FRI",
                 window_days=keys.assign(window_days=1))


def _drifting_season(n_years=15, shift_years=5, n_products=12, seed=11):
    """Monthly sales whose peak moves from December to June ``shift_years`` before the end."""
    months = pd.date_range(end="2024-12-01", periods=12 * n_years, freq="MS")
    month = months.month.to_numpy()
    old = 1 + 0.6 * np.cos(2 * np.pi * (month - 12) / 12)
    new = 1 + 0.6 * np.cos(2 * np.pi * (month - 6) / 12)
    season = np.where(np.arange(len(months)) >= len(months) - 12 * shift_years, new, old)
    rng = np.random.default_rng(seed)
    frames = [pd.DataFrame({"store_id": "S", "product_id": f"P{p}", "sale_date": months,
                            "units": rng.poisson((100 + 20 * p) * season)}) for p in range(n_products)]
    return pd.concat(frames, ignore_index=True), months


def test_a_season_that_moved_is_followed_by_the_short_seasonal_window():
    # Ten years of December peaks, then five of June peaks: factors averaged over ten years
    # would peak in both; the candidates on the last three seasons win at the rolling origins.
    hist, months = _drifting_season()
    keys = _keys(hist)
    h = 12
    train = hist[hist.sale_date < months[-h]]
    res = forecast(train, keys, forecast_start=months[-h].date(), horizon=h,
                   window_days=keys.assign(window_days=1))
    d = res.daily.assign(month=pd.DatetimeIndex(res.daily["forecast_date"]).month)
    by_month = d.groupby("month")["forecast_mean"].sum()
    assert by_month[6] > 2.5 * by_month[12]
    actual = hist[hist.sale_date >= months[-h]].set_index(["store_id", "product_id", "sale_date"])["units"]
    y = actual.reindex(d.set_index(["store_id", "product_id", "forecast_date"]).index).to_numpy()
    wape = np.abs(d["forecast_mean"].to_numpy() - y).sum() / y.sum()
    assert wape < 0.12


def test_intervals_cover_their_level_on_held_out_months_of_trending_and_flat_series():
    # Half the series trend (the damped trend and Theta candidates win there), half are flat
    # (simple smoothing wins): the intervals follow the chosen forecasts' own errors, neither
    # those of the candidates that lost (too wide) nor those the choice was made on (too narrow).
    rng = np.random.default_rng(12)
    months = pd.date_range(end="2024-12-01", periods=120, freq="MS")
    season = 1 + 0.3 * np.cos(2 * np.pi * (months.month.to_numpy() - 12) / 12)
    t = np.arange(len(months))
    frames = []
    for p in range(160):
        slope = rng.normal(0.012, 0.004) if p % 2 else 0.0
        level = rng.gamma(3, 40) * np.exp(slope * t + np.cumsum(rng.normal(0, 0.02, len(t))))
        units = rng.poisson(level * season * rng.gamma(30, 1 / 30, len(t)))
        frames.append(pd.DataFrame({"store_id": "S", "product_id": f"P{p}", "sale_date": months, "units": units}))
    hist = pd.concat(frames, ignore_index=True)
    keys = _keys(hist)
    h = 12
    train = hist[hist.sale_date < months[-h]]
    res = forecast(train, keys, forecast_start=months[-h].date(), horizon=h,
                   window_days=keys.assign(window_days=1))
    actual = hist[hist.sale_date >= months[-h]].set_index(["store_id", "product_id", "sale_date"])["units"]
    d = res.daily.set_index(["store_id", "product_id", "forecast_date"])
    y = actual.reindex(d.index).to_numpy()
    for level in (0.8, 0.95):
        lo, hi = res.interval(level)
        cover = ((y >= lo) & (y <= hi)).mean()
        assert abs(cover - level) < 0.06, (level, cover)


def test_rolling_origins_need_history_behind_them():
    from retailopt.forecasting.periodic import origin_min_history, season_windows

    # A horizon of history, or half of what the series has at the last origin (a horizon before
    # its end) when shorter; never under two periods.
    assert list(origin_min_history(np.array([200, 38, 25, 3]), 13)) == [13, 12, 6, 2]
    # Windows longer than the history would repeat the longest one.
    assert season_windows(180, 12) == (3, 5, 10)
    assert season_windows(104, 52) == (2,)
    assert season_windows(39, 52) == (1,)


def test_the_origins_are_scored_in_blocks_with_the_same_result(monkeypatch):
    from retailopt.forecasting import periodic

    hist, months = _drifting_season(n_products=10, n_years=8, seed=13)
    keys = _keys(hist)
    args = dict(forecast_start=date(2025, 1, 1), horizon=6, window_days=keys.assign(window_days=1))
    whole = forecast(hist, keys, **args).daily
    # Three series per block: the last block is partial.
    monkeypatch.setattr(periodic, "ORIGIN_BLOCK_VALUES", 3 * 3 * 24 * 6)
    blocks = forecast(hist, keys, **args).daily
    assert np.allclose(whole["forecast_mean"], blocks["forecast_mean"])
    assert np.allclose(whole["upper_bound"], blocks["upper_bound"])
