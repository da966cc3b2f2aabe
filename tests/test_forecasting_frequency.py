"""Data frequency: aliases, inference from the sale dates, and clear errors for irregular dates."""

from __future__ import annotations

import pandas as pd
import pytest

from retailopt.forecasting.frequency import (canonical_alias, infer_frequency, make_frequency,
                                             resolve_frequency)


@pytest.mark.parametrize("value, alias, season", [
    ("D", "D", 7), ("daily", "D", 7), ("W", "W-SUN", 52), ("W-FRI", "W-FRI", 52), ("weekly", "W-SUN", 52),
    ("MS", "MS", 12), ("M", "ME", 12), ("monthly", "MS", 12), ("QS", "QS-JAN", 4)])
def test_aliases_and_words_give_the_season_length(value, alias, season):
    freq = make_frequency(value)
    assert freq.alias == alias and freq.season_length == season


@pytest.mark.parametrize("value, fragment", [("2W", "multiples"), ("h", "unsupported"), ("fortnight", "not a pandas")])
def test_unsupported_frequencies_are_refused_with_the_reason(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        canonical_alias(value)


@pytest.mark.parametrize("dates, alias", [
    (pd.date_range("2024-01-05", periods=20, freq="W-FRI"), "W-FRI"),
    (pd.date_range("2024-01-01", periods=20, freq="MS"), "MS"),
    (pd.date_range("2024-01-31", periods=20, freq="ME"), "ME"),
    (pd.date_range("2024-01-01", periods=8, freq="QS"), "QS-JAN"),
    (pd.date_range("2024-01-01", periods=60, freq="D"), "D"),
])
def test_frequency_is_inferred_from_the_dates(dates, alias):
    assert infer_frequency(pd.Series(dates)).alias == alias


def test_inference_does_not_depend_on_the_time_resolution():
    weeks = pd.Series(pd.date_range("2024-01-05", periods=10, freq="W-FRI")).astype("datetime64[us]")
    assert infer_frequency(weeks).alias == "W-FRI"


def test_weekly_data_with_missing_weeks_is_still_weekly():
    dates = pd.date_range("2024-01-05", periods=30, freq="W-FRI").delete([3, 4, 10])
    assert infer_frequency(dates).alias == "W-FRI"


def test_daily_data_with_missing_days_is_daily():
    dates = pd.date_range("2024-01-01", periods=90, freq="D").delete(list(range(0, 90, 3)))
    assert infer_frequency(dates).daily


def test_irregular_dates_are_refused_naming_them():
    dates = pd.DatetimeIndex(["2024-01-01", "2024-01-09", "2024-01-20", "2024-02-03"])
    with pytest.raises(ValueError, match="irregular.*2024-01-01 is a Monday but 2024-01-09 a Tuesday"):
        infer_frequency(dates)


def test_a_date_off_the_given_grid_is_named():
    dates = pd.DatetimeIndex(["2024-01-05", "2024-01-12", "2024-01-18"])
    with pytest.raises(ValueError, match="2024-01-18 \\(Thursday\\) is not on its grid"):
        resolve_frequency("W-FRI", dates)
    assert resolve_frequency("W-FRI", dates[:2]).alias == "W-FRI"


def test_positions_in_the_season():
    assert list(make_frequency("MS").position(pd.date_range("2024-11-01", periods=3, freq="MS"))) == [10, 11, 0]
    weeks = pd.date_range("2024-01-05", periods=53, freq="W-FRI")
    pos = make_frequency("W-FRI").position(weeks)
    assert pos.min() == 0 and pos.max() == 51 and (pd.Series(pos).value_counts() <= 2).all()
    assert list(make_frequency("QS").position(pd.date_range("2024-01-01", periods=4, freq="QS"))) == [0, 1, 2, 3]
    # A holiday belongs to the period that contains it: Saturday 2024-01-06 is in the week ending Friday the 12th.
    freq = make_frequency("W-FRI")
    assert freq.periods(pd.DatetimeIndex(["2024-01-06"]))[0] == freq.periods(pd.DatetimeIndex(["2024-01-12"]))[0]
    assert freq.next_on_or_after(pd.Timestamp("2024-01-06")) == pd.Timestamp("2024-01-12")


def _history(dates_by_series: dict[str, pd.DatetimeIndex]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"store_id": "S", "product_id": p, "sale_date": d, "units": 3})
                      for p, d in dates_by_series.items()], ignore_index=True)


def test_fallback_when_no_single_grid_fits():
    from retailopt.forecasting.frequency import fallback_frequency, history_frequency

    fri = pd.date_range("2024-01-05", periods=20, freq="W-FRI")
    wed = pd.date_range("2024-01-03", periods=20, freq="W-WED")
    mixed = _history({"F": fri, "W": wed})
    # Pooled, Wednesdays and Fridays look daily (a median gap of two days) ...
    assert resolve_frequency(None, mixed["sale_date"]).daily
    # ... but each series is weekly on its own weekday: weekly, each grid forecast on its own.
    freq, groups = history_frequency(None, mixed)
    assert freq.kind == "weekly" and sorted(groups) == ["W-FRI", "W-WED"]
    assert fallback_frequency("weekly", mixed).kind == "weekly"
    assert history_frequency("weekly", mixed)[0].kind == "weekly"
    # A daily chain stays daily without looking at its series.
    daily = _history({"P": pd.date_range("2024-01-01", periods=30, freq="D")})
    assert history_frequency(None, daily)[0].daily and history_frequency(None, daily)[1] is None
    # A market stall selling on Mondays and Thursdays: daily sales on some days only.
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    market = _history({"P": days[(days.dayofweek == 0) | (days.dayofweek == 3)]})
    with pytest.raises(ValueError):
        resolve_frequency(None, market["sale_date"])
    assert fallback_frequency(None, market).daily and fallback_frequency("daily", market).daily
    assert history_frequency(None, market)[0].daily
    # Irregular and more than a week apart: refused, naming the dates.
    odd = _history({"P": pd.DatetimeIndex(["2024-01-01", "2024-01-09", "2024-01-20", "2024-02-03"])})
    with pytest.raises(ValueError, match="irregular"):
        fallback_frequency(None, odd)
    with pytest.raises(ValueError, match="not on its grid"):
        fallback_frequency("W-FRI", mixed)


def test_sparse_daily_sales_are_forecast_daily():
    from datetime import date

    from retailopt.forecasting import forecast

    days = pd.date_range("2024-01-01", periods=140, freq="D")
    hist = _history({"P": days[(days.dayofweek == 0) | (days.dayofweek == 3)]})
    keys = hist[["store_id", "product_id"]].drop_duplicates()
    res = forecast(hist, keys, forecast_start=date(2024, 5, 20), horizon=7, window_days=keys.assign(window_days=7))
    assert len(res.daily) == 7 and (pd.to_datetime(res.daily["forecast_date"]).diff().dropna() == pd.Timedelta(days=1)).all()
