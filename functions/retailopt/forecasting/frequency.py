"""Data frequency of a forecast: the pandas offset alias of the history's periods.

``resolve_frequency`` turns what a caller passes (an alias such as "D", "W-FRI", "MS", a word
such as "weekly", or None to infer it from the dates) into a ``Frequency``: the alias, the
season length in periods and each period's position within its season (weekday, week of the
year, month, quarter), and how many days a period lasts on average (the policy converts lead
times and review periods with it).

Conventions (pandas'): a weekly date ``W-FRI`` labels the week ending on that Friday (Saturday to
Friday); ``MS`` labels the calendar month by its first day and ``ME`` by its last; ``QS``/``QE``
likewise for quarters. A holiday belongs to the period whose days contain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

WORDS = {"daily": "D", "day": "D", "weekly": "W-SUN", "week": "W-SUN", "monthly": "MS", "month": "MS",
         "quarterly": "QS", "quarter": "QS"}
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# Aliases whose periods the engine knows: season length and the period's span in days.
_KINDS = {"D": ("daily", 7, 1.0), "W": ("weekly", 52, 7.0), "MS": ("monthly", 12, 365.25 / 12),
          "ME": ("monthly", 12, 365.25 / 12), "QS": ("quarterly", 4, 365.25 / 4),
          "QE": ("quarterly", 4, 365.25 / 4)}


@dataclass(frozen=True)
class Frequency:
    alias: str  # canonical pandas alias: D, W-SUN..W-SAT, MS, ME, QS-JAN, QE-DEC
    kind: str  # daily, weekly, monthly, quarterly
    season_length: int  # periods per season (7 days a week; 52 weeks, 12 months, 4 quarters a year)
    period_days: float  # average length of a period in days

    @property
    def daily(self) -> bool:
        return self.kind == "daily"

    @property
    def offset(self):
        return to_offset(self.alias)

    def position(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Position of each period within its season: 0..season_length-1."""
        dates = pd.DatetimeIndex(dates)
        if self.kind == "daily":
            return dates.dayofweek.to_numpy()
        if self.kind == "weekly":
            # The week's middle day names its week of the year; week 53 joins week 52.
            mid = dates - pd.Timedelta(days=3)
            return np.minimum((mid.dayofyear.to_numpy() - 1) // 7, 51)
        if self.kind == "monthly":
            return dates.month.to_numpy() - 1
        return (dates.month.to_numpy() - 1) // 3

    def periods(self, dates: pd.DatetimeIndex) -> pd.PeriodIndex:
        """The calendar periods (Saturday-to-Friday week, month, ...) the dates label."""
        dates = pd.DatetimeIndex(dates)
        if self.kind == "weekly":
            return dates.to_period(self.alias)
        if self.kind == "monthly":
            return dates.to_period("M")
        if self.kind == "quarterly":
            return dates.to_period("Q")
        return dates.to_period("D")

    def grid(self, last: pd.Timestamp, n: int) -> pd.DatetimeIndex:
        """The n periods ending with ``last`` (on the grid)."""
        return pd.date_range(end=last, periods=n, freq=self.alias) if n > 0 else pd.DatetimeIndex([])

    def next_on_or_after(self, day: pd.Timestamp) -> pd.Timestamp:
        return pd.Timestamp(self.offset.rollforward(pd.Timestamp(day).normalize()))


def canonical_alias(value: str) -> str:
    """The canonical pandas alias of ``value`` ("W" -> "W-SUN", "M" -> "ME", "weekly" -> "W-SUN")
    or ValueError naming what is wrong."""
    text = str(value).strip()
    alias = WORDS.get(text.lower(), {"M": "ME", "Q": "QE-DEC"}.get(text, text))
    try:
        offset = to_offset(alias)
    except ValueError as exc:
        raise ValueError(f"frequency={value!r}: not a pandas offset alias (expected e.g. 'D', 'W-FRI', "
                         "'MS', 'ME', 'QS', or daily/weekly/monthly/quarterly)") from exc
    name = offset.freqstr
    if getattr(offset, "n", 1) != 1:
        raise ValueError(f"frequency={value!r}: multiples of a period are not supported "
                         "(expected one day, week, month or quarter per row)")
    base = name.split("-")[0]
    if base == "W" and "-" not in name:
        name = "W-SUN"
    if base not in _KINDS:
        raise ValueError(f"frequency={value!r}: unsupported period {name!r} (expected daily 'D', "
                         "weekly 'W-<DAY>', monthly 'MS'/'ME' or quarterly 'QS'/'QE')")
    return name


def make_frequency(value: str) -> Frequency:
    alias = canonical_alias(value)
    base = alias.split("-")[0]
    kind, season, days = _KINDS[base]
    return Frequency(alias=alias, kind=kind, season_length=season, period_days=days)


def infer_frequency(dates: pd.Series | pd.DatetimeIndex) -> Frequency:
    """The frequency the history's dates are on, or ValueError when they fit none.

    Daily data may skip days (a day without sales has no row): dates mostly a day or two apart
    are daily, and so is a history of one date or none. Otherwise all dates must share a weekday (weekly), be month starts or ends
    (monthly) or quarter starts or ends (quarterly).
    """
    unique = _unique_dates(dates)
    if len(unique) <= 1:
        # Nothing to tell periods apart by: daily, the engine's historical default.
        return make_frequency("D")
    # In days whatever the resolution (DuckDB dates arrive as datetime64[us]).
    gaps = np.diff(unique.to_numpy().astype("datetime64[D]").astype(np.int64))
    if np.median(gaps) <= 2:
        return make_frequency("D")
    for alias, quarter in (("MS", "QS"), ("ME", "QE")):
        if _on_grid(unique, alias).all():
            # Month starts that are all quarter starts are quarterly data.
            return make_frequency(quarter if _on_grid(unique, quarter).all() else alias)
    weekdays = np.unique(unique.dayofweek)
    if len(weekdays) == 1 and (gaps % 7 == 0).all():
        return make_frequency(f"W-{_WEEKDAYS[weekdays[0]]}")
    bad = _first_off_pattern(unique)
    raise ValueError("frequency: the sale dates are irregular (not daily, not one weekday a week, not "
                     f"month or quarter starts or ends; e.g. {bad}); pass frequency= or fix the dates")


def _unique_dates(dates) -> pd.DatetimeIndex:
    """The distinct calendar dates, sorted (distinct values first: millions of rows, few dates)."""
    values = pd.unique(pd.Series(dates).to_numpy())
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    return idx.normalize().unique().sort_values()


def _first_off_pattern(unique: pd.DatetimeIndex) -> str:
    weekday = unique[0].dayofweek
    for d in unique:
        if d.dayofweek != weekday:
            return f"{unique[0].date()} is a {unique[0].day_name()} but {d.date()} a {d.day_name()}"
    return f"{unique[0].date()} and {unique[1].date()}"


def _on_grid(dates: pd.DatetimeIndex, alias: str) -> np.ndarray:
    offset = to_offset(alias)
    return np.fromiter((offset.is_on_offset(d) for d in dates), dtype=bool, count=len(dates))


# The setting's values for BigQuery ML's data_frequency option, by kind.
BIGQUERY_FREQUENCY = {"auto": "AUTO_FREQUENCY", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY",
                      "quarterly": "QUARTERLY"}
_AUTO = ("auto", "auto_frequency", "")


def check_setting(value) -> str:
    """The kind a ``data_frequency`` setting names ("auto", "daily", "weekly", ...), or ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"frequency={value!r}: expected a string")
    if value.strip().lower() in _AUTO:
        return "auto"
    return make_frequency(value).kind


def bigquery_frequency(value: str) -> str:
    """BigQuery ML's ``data_frequency`` for a setting (DAILY, WEEKLY, MONTHLY, QUARTERLY). The cloud
    gap-fills the series on the grid before training, so it cannot infer: "auto" is daily there."""
    kind = check_setting(value)
    return BIGQUERY_FREQUENCY["daily" if kind == "auto" else kind]


def resolve_frequency(value: str | Frequency | None, dates: pd.Series | pd.DatetimeIndex) -> Frequency:
    """``value`` as a Frequency, checking that every date lies on its grid. None or "auto": inferred
    from ``dates``; a word ("weekly", "monthly") takes its anchor (weekday, month start or end) from
    the dates and must agree with them."""
    if isinstance(value, Frequency):
        freq = value
    elif value is None or str(value).strip().lower() in _AUTO:
        return infer_frequency(dates)
    elif str(value).strip().lower() in WORDS:
        word = make_frequency(value)
        if len(_unique_dates(dates)) <= 1:
            return word
        freq = infer_frequency(dates)
        if freq.kind != word.kind:
            raise ValueError(f"frequency={value!r}: the sale dates are {freq.kind} ({freq.alias}), not {word.kind}")
        return freq
    else:
        freq = make_frequency(value)
    if not freq.daily:
        unique = _unique_dates(dates)
        off = ~_on_grid(unique, freq.alias)
        if off.any():
            d = unique[np.flatnonzero(off)[0]]
            raise ValueError(f"frequency={freq.alias!r}: sale_date {d.date()} ({d.day_name()}) is not on "
                             f"its grid ({int(off.sum())} of {len(unique)} dates are not); weekly dates must "
                             "all fall on the named weekday, monthly ones on the first (MS) or last (ME) "
                             "day of the month")
    return freq


def periods_for_days(days, freq: Frequency):
    """Whole periods covering ``days`` days (rounded up, at least one): a 9-day protection window
    of weekly data is two weeks."""
    out = np.maximum(np.ceil(np.asarray(days, dtype=float) / freq.period_days - 1e-9), 1).astype(int)
    return out



def series_frequencies(history: pd.DataFrame, value: str | None = None) -> pd.Series | None:
    """The alias of each series' own grid (index store_id, product_id), when the series are all
    of one kind (say weekly) but not on one grid (Fridays for some, Wednesdays for others); None
    when that is not the case (then the history's dates are irregular). ``value``: the setting
    (None, "auto" or a word such as "weekly"; an explicit alias gives None)."""
    if value is not None and not isinstance(value, Frequency):
        text = str(value).strip().lower()
        if text not in _AUTO and text not in WORDS:
            return None
    elif isinstance(value, Frequency):
        return None
    frame = pd.DataFrame({"store_id": history["store_id"].astype(str), "product_id": history["product_id"].astype(str),
                          "sale_date": pd.to_datetime(history["sale_date"])})
    aliases = {}
    for key, dates in frame.groupby(["store_id", "product_id"], sort=False)["sale_date"]:
        unique = _unique_dates(dates)
        if len(unique) <= 2:
            continue  # too few dates to tell: such series join a group below
        try:
            aliases[key] = infer_frequency(unique)
        except ValueError:
            return None
    if not aliases:
        return None
    kinds = {f.kind for f in aliases.values()}
    if len(kinds) != 1 or "daily" in kinds:
        return None
    if value is not None and str(value).strip().lower() in WORDS and make_frequency(value).kind not in kinds:
        return None
    out = pd.Series({k: f.alias for k, f in aliases.items()})
    out.index = pd.MultiIndex.from_tuples(out.index, names=["store_id", "product_id"])
    if out.nunique() <= 1:
        return None
    # Series with too few dates take the grid their dates fit, else the most common one.
    common = out.value_counts().idxmax()
    for key, dates in frame.groupby(["store_id", "product_id"], sort=False)["sale_date"]:
        if key not in out.index:
            unique = _unique_dates(dates)
            fits = [a for a in out.unique() if _on_grid(unique, a).all()]
            out.loc[key] = fits[0] if fits else common
    return out


def sparse_daily(dates) -> bool:
    """Dates never a week apart: daily sales on some days only (a store open two days a week, a
    product selling every few days), not weekly or monthly data."""
    unique = _unique_dates(dates)
    if len(unique) <= 1:
        return True
    gaps = np.diff(unique.to_numpy().astype("datetime64[D]").astype(np.int64))
    return bool(gaps.max() < 7)


def fallback_frequency(value, history: pd.DataFrame) -> Frequency:
    """What to forecast by when the history's dates fit no single grid (``resolve_frequency``
    raised): the kind shared by every series' own grid (weekly series anchored on different
    weekdays; the engine then forecasts each grid on its own), or daily for daily sales on some
    days only when the setting allows (auto or daily); otherwise the original error."""
    groups = series_frequencies(history, value)
    if groups is not None:
        return make_frequency(make_frequency(groups.iloc[0]).kind)
    auto = value is None or (isinstance(value, str) and value.strip().lower() in _AUTO + ("daily", "day", "d"))
    if auto and sparse_daily(history["sale_date"]):
        return make_frequency("D")
    return resolve_frequency(value, history["sale_date"])  # raises the error that names the dates


def history_frequency(value, history: pd.DataFrame) -> tuple[Frequency, pd.Series | None]:
    """The frequency to forecast ``history`` by, and, when its series sit on several grids of one
    kind (weekly series on different weekdays), each series' alias (else None).

    Weekly series on two weekdays a couple of days apart look daily in the pooled dates (a
    median gap of two days), so a daily inference on data with at most three weekdays is checked
    series by series."""
    try:
        freq = resolve_frequency(value, history["sale_date"])
    except ValueError:
        groups = series_frequencies(history, value)
        if groups is not None:
            return make_frequency(make_frequency(groups.iloc[0]).kind), groups
        return fallback_frequency(value, history), None
    auto = value is None or (isinstance(value, str) and value.strip().lower() in _AUTO)
    if freq.daily and auto and len(np.unique(_unique_dates(history["sale_date"]).dayofweek)) <= 3:
        groups = series_frequencies(history, value)
        if groups is not None:
            return make_frequency(make_frequency(groups.iloc[0]).kind), groups
    return freq, None
