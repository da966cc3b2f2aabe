"""The embedded warehouse (DuckDB): what a long-lived process needs of it, and DATE columns
written from midnight timestamps holding the same days as from `datetime.date` objects."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from retailopt.warehouse.base import conform
from retailopt.warehouse.duck import DuckDBWarehouse


def _sales(day: str, units: int) -> pd.DataFrame:
    return pd.DataFrame({"sale_date": [day], "store_id": ["S1"], "product_id": ["P1"], "units": [units],
                         "price": [2.0], "on_promotion": [False]})


def _fatal_checkpoint(wh: DuckDBWarehouse) -> None:
    """A real DuckDB fatal error: a checkpoint aborted by DuckDB's own debug setting, after which
    the database refuses every statement until it is opened again."""
    wh._conn.execute("SET debug_checkpoint_abort = 'before_header'")
    wh.execute("CHECKPOINT")


def test_a_fatal_error_is_reported_and_the_warehouse_works_again_with_what_was_committed(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retail")
    wh.ensure_schema()
    wh.insert("sales", _sales("2026-01-01", 3))
    with pytest.raises(duckdb.FatalException, match="checkpoint"):
        _fatal_checkpoint(wh)
    # The very next statement works (before: "database has been invalidated" until a restart).
    assert wh.query("SELECT SUM(units) AS n FROM `{dataset}.sales`").n.iloc[0] == 3
    wh.insert("sales", _sales("2026-01-02", 4))
    assert wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0] == 2
    wh.close()


def test_a_commit_whose_checkpoint_fails_is_kept_and_the_warehouse_works_again(tmp_path):
    """DuckDB reports a COMMIT whose automatic checkpoint failed as a fatal error, while the
    commit itself is durable: after the error the rows are there and the warehouse answers."""
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retail")
    wh.ensure_schema()
    wh._conn.execute("SET wal_autocheckpoint = '1B'")
    wh._conn.execute("SET debug_checkpoint_abort = 'before_header'")
    with pytest.raises(duckdb.FatalException, match="COMMIT succeeded"):
        with wh.transaction():
            wh.insert("sales", _sales("2026-01-01", 3))
            wh.insert("sales", _sales("2026-01-02", 4))
    assert wh.query("SELECT SUM(units) AS n FROM `{dataset}.sales`").n.iloc[0] == 7
    with wh.transaction():  # the new connection has DuckDB's default checkpoint settings
        wh.insert("sales", _sales("2026-01-03", 5))
    assert wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0] == 3
    wh.close()


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


def test_a_parquet_file_is_scanned_in_place_whatever_its_path(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "it's a folder; DROP TABLE x"
    folder.mkdir()
    path = folder / "sales.parquet"
    pq.write_table(pa.table({"store_id": ["S1", "S2", "S3"], "units": [1, 2, 3]}), path)
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retail")
    try:
        with wh.scanning("file_rows", path):
            assert wh.query("SELECT SUM(units) AS n FROM file_rows").n.iloc[0] == 6
        with pytest.raises(duckdb.CatalogException):  # the view went with the block
            wh.query("SELECT * FROM file_rows")
        with pytest.raises(ValueError, match="view name"):
            with wh.scanning("file_rows; DROP", path):
                pass
    finally:
        wh.close()
