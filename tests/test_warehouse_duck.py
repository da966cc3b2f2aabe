"""The embedded warehouse's insert: DATE columns written from midnight timestamps hold the same
days as when they were written from `datetime.date` objects."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from retailopt.warehouse.base import conform
from retailopt.warehouse.duck import DuckDBWarehouse


def test_dates_in_any_form_are_stored_as_the_days_they_name(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retailopt")
    wh.ensure_schema()
    forms = {
        "dates": [dt.date(2026, 11, 22), dt.date(2026, 12, 31), dt.date(1700, 1, 1)],
        "text": ["2026-11-22", "2026-12-31", "1700-01-01"],
        # A time of day is dropped; a zoned timestamp counts by its own local day (23:30 in Chicago
        # on 22 November is already the 23rd in UTC).
        "timestamps": [pd.Timestamp("2026-11-22 23:59"), pd.Timestamp("2026-12-31 00:00"), pd.Timestamp("1700-01-01")],
        "zoned": [pd.Timestamp("2026-11-22 23:30", tz="America/Chicago"),
                  pd.Timestamp("2026-12-31 00:10", tz="America/Chicago"),
                  pd.Timestamp("1700-01-01", tz="America/Chicago")],
    }
    try:
        for name, days in forms.items():
            frame = pd.DataFrame({"run_id": name, "store_id": "S001", "product_id": ["P1", "P2", "P3"],
                                  "forecast_date": pd.Series(days, dtype=object if name != "text" else None),
                                  "forecast_mean": 1.0, "confidence_level": 0.9, "lower_bound": 0.0,
                                  "upper_bound": 2.0, "model": "m"})
            assert wh.insert("forecasts", frame) == 3
            stored = wh.query("SELECT product_id, forecast_date FROM `{dataset}.forecasts` WHERE run_id = @r "
                              "ORDER BY product_id", {"r": name})
            expected = conform("forecasts", frame)["forecast_date"].tolist()  # as objects (BigQuery's path)
            assert [pd.Timestamp(d).date() for d in stored.forecast_date] == expected, name
            assert expected == [dt.date(2026, 11, 22), dt.date(2026, 12, 31), dt.date(1700, 1, 1)], name
    finally:
        wh.close()
