"""Holiday calendars for the forecast: public holidays from the `holidays` package or a table."""

from __future__ import annotations

from datetime import date

import holidays as holidays_lib
import pandas as pd


def holiday_table(start: date, end: date, country: str | None, subdivision: str | None = None,
                  custom: pd.DataFrame | None = None) -> pd.DataFrame:
    """Holidays between start and end inclusive: columns holiday_date (datetime64), holiday_name.

    ``custom`` (columns holiday_date, holiday_name) replaces the public calendar, e.g. retailer
    events or the M5 calendar's events. Several holidays on one date are kept as separate rows.
    """
    if custom is not None:
        missing = {"holiday_date", "holiday_name"} - set(custom.columns)
        if missing:
            raise ValueError(f"holidays table: missing column(s) {sorted(missing)}")
        out = custom.loc[:, ["holiday_date", "holiday_name"]].copy()
        out["holiday_date"] = pd.to_datetime(out["holiday_date"]).dt.normalize()
        out["holiday_name"] = out["holiday_name"].astype(str)
    elif country:
        try:
            cal = holidays_lib.country_holidays(country, subdiv=subdivision,
                                                years=range(start.year, end.year + 1))
        except NotImplementedError as exc:
            raise ValueError(f"holiday_country={country!r} subdivision={subdivision!r}: {exc}") from exc
        rows = [(pd.Timestamp(d), name.strip()) for d, names in cal.items()
                for name in str(names).split(";")]
        out = pd.DataFrame(rows, columns=["holiday_date", "holiday_name"])
    else:
        out = pd.DataFrame({"holiday_date": pd.Series([], dtype="datetime64[ns]"),
                            "holiday_name": pd.Series([], dtype=object)})
    mask = (out["holiday_date"] >= pd.Timestamp(start)) & (out["holiday_date"] <= pd.Timestamp(end))
    return out.loc[mask].drop_duplicates().sort_values("holiday_date").reset_index(drop=True)
