"""The embedded warehouse (DuckDB): what a long-lived process needs of it."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

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
