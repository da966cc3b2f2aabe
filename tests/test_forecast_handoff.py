"""The forecast's handoff between the main process and its workers in Arrow (`forecasting/handoff.py`,
`warehouse/arrow_rows.py`): the same history frame and the same stored rows as the pandas path,
with the same checks, and DuckDB's thread cap undone after the block."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from retailopt import sqlfiles
from retailopt.forecasting.chunks import forecast_chunk
from retailopt.forecasting.handoff import RESULT_TABLES, history_frame, history_from_frame
from retailopt.forecasting.synthetic import synthetic_history
from retailopt.warehouse.arrow_rows import arrow_rows, insert_arrow
from retailopt.warehouse.duck import DuckDBWarehouse

END = date(2025, 6, 30)
START = END + timedelta(days=1)
PARAMS = {"run_date": START, "horizon_days": 14, "confidence_level": 0.9, "holiday_country": "US",
          "holiday_subdivision": None, "seed": 42, "exclude_anomalies": "isolated_spikes", "component_days": 28}
HISTORY_SQL = sqlfiles.read_sql("queries/sales_history_stores.sql")


@pytest.fixture()
def warehouse(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retail")
    wh.ensure_schema()
    history = synthetic_history(3, 15, 200, END, seed=5)
    wh.insert("sales", history)
    yield wh
    wh.close()


def _bounds(first: str, last: str) -> dict:
    return {"since": START - timedelta(days=400), "until": START, "store_from": first, "store_to": last}


def test_the_history_read_in_arrow_is_the_frame_read_in_pandas(warehouse):
    arrow = warehouse.query_arrow(HISTORY_SQL, _bounds("S000", "S001"))
    assert isinstance(arrow, pa.Table) and arrow.num_rows > 0
    frame = history_from_frame(warehouse.query(HISTORY_SQL, _bounds("S000", "S001")))
    pd.testing.assert_frame_equal(history_frame(arrow), frame)
    assert set(frame.store_id.cat.categories) == {"S000", "S001"}


def test_arrow_rows_store_what_the_pandas_insert_stores(warehouse):
    positions = pd.DataFrame({"store_id": ["S000"] * 15, "product_id": [f"P{i:05d}" for i in range(15)]})
    window = positions.assign(window_days=9)
    history = warehouse.query_arrow(HISTORY_SQL, _bounds("S000", "S000"))
    frames = forecast_chunk(history, positions, window, None, PARAMS)
    tables = forecast_chunk(history, positions, window, None, {**PARAMS, "arrow_rows": True})
    assert len(frames.components) and all(isinstance(getattr(tables, f), pa.Table) for f in RESULT_TABLES)
    run = {"run_id": "R-arrow", "run_date": START}
    for field, (table, fixed) in RESULT_TABLES.items():
        values = {name: run[name] for name in fixed}
        warehouse.insert(table, getattr(frames, field).assign(**{**values, "run_id": "R-pandas"}))
        assert insert_arrow(warehouse, table, getattr(tables, field), values) == len(getattr(frames, field))
        stored = [warehouse.query(f"SELECT * EXCLUDE (run_id) FROM `{{dataset}}.{table}` WHERE run_id = @r",
                                  {"r": r}) for r in ("R-pandas", "R-arrow")]
        stored = [s.sort_values(list(s.columns)).reset_index(drop=True) for s in stored]
        pd.testing.assert_frame_equal(stored[0], stored[1], check_exact=True)


def test_arrow_rows_check_what_conform_checks():
    rows = pd.DataFrame({"store_id": ["S1", "S2"], "product_id": ["P1", "P2"],
                         "forecast_date": pd.to_datetime(["2025-07-01 00:00", "2025-07-02 13:00"]),
                         "forecast_mean": [1.0, np.nan], "confidence_level": 0.9, "lower_bound": 0.0,
                         "upper_bound": 3.0, "model": "ses", "fallback_reason": [None, "new"]})
    with pytest.raises(ValueError, match="forecast_mean is NOT NULL but 1 rows"):
        arrow_rows("forecasts", rows, omit=("run_id",))
    table = arrow_rows("forecasts", rows.assign(forecast_mean=[1.0, 2.0]), omit=("run_id",))
    assert table.column_names[:3] == ["store_id", "product_id", "forecast_date"] and "run_id" not in table.column_names
    assert table.schema.field("forecast_date").type == pa.date32()
    assert table.column("forecast_date").to_pylist() == [date(2025, 7, 1), date(2025, 7, 2)]  # the day of a time
    assert table.column("standard_error").null_count == 2  # a column the frame lacks is empty
    with pytest.raises(ValueError, match="run_id is NOT NULL"):  # unless the insert sets it
        arrow_rows("forecasts", rows.assign(forecast_mean=[1.0, 2.0]))
    with pytest.raises(ValueError, match="not in sql/schema"):
        arrow_rows("forecasts", rows.assign(extra=1), omit=("run_id",))


def test_insert_arrow_rejects_an_empty_run_column_and_unknown_columns(warehouse):
    rows = pa.table({"store_id": ["S1"], "product_id": ["P1"]})
    with pytest.raises(ValueError, match="run_id is NOT NULL"):
        warehouse.insert_arrow("demand_windows", rows, {"run_id": None})
    with pytest.raises(ValueError, match="not in sql/schema"):
        warehouse.insert_arrow("demand_windows", rows.append_column("nope", pa.array([1])), {"run_id": "R"})


def test_the_thread_cap_holds_in_the_block_and_is_undone_after(warehouse):
    def threads() -> int:
        return int(warehouse.query("SELECT current_setting('threads') AS t").t.iloc[0])

    before = threads()
    with pytest.raises(RuntimeError):
        with warehouse.threads(1):
            assert threads() == 1
            raise RuntimeError("a failing step")
    assert threads() == before


def test_a_checkpoint_keeps_what_was_committed(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retail")
    wh.ensure_schema()
    wh.insert("sales", synthetic_history(1, 2, 30, END, seed=1))
    rows = int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0])
    with wh.threads(1):
        wh.checkpoint()
    wh.close()
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", "retail")
    assert int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0]) == rows > 0
    wh.close()
