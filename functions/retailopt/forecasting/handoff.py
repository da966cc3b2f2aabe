"""What the forecast's main process and its workers hand each other, as Arrow tables.

A chunk's sales history leaves the warehouse as an Arrow table (`query_arrow`) and becomes the
engine's frame in the worker (`history_frame`); the chunk's result rows become Arrow tables typed
by their tables' DDL in the worker (`result_tables`). So the main process, which feeds both
workers on two cores, neither makes a Python object per id string nor converts frames: it
passed about a third of the step's CPU there. The frames and rows are those of the pandas path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from retailopt.warehouse.arrow_rows import arrow_rows

if TYPE_CHECKING:
    from retailopt.forecasting.chunks import ChunkResult

# Each result frame's table, and the columns the insert adds (one value for the run).
RESULT_TABLES = {"daily": ("forecasts", ("run_id",)), "protection": ("demand_windows", ("run_id", "run_date")),
                 "components": ("forecast_components", ("run_id",)),
                 "anomalies": ("sales_anomalies", ("run_id", "run_date"))}
ID_COLUMNS = ("store_id", "product_id")


def history_frame(history: pa.Table) -> pd.DataFrame:
    """The sales rows as the engine takes them, equal to the warehouse's frame with its dates as
    timestamps and its ids as categoricals (sorted categories, as `astype("category")` makes)."""
    columns = {}
    for name in history.column_names:
        values = history.column(name)
        if name in ID_COLUMNS:
            # Encoded in Arrow: no Python string per row, only per distinct id.
            ids = values.dictionary_encode().to_pandas()
            columns[name] = ids.cat.set_categories(sorted(ids.cat.categories))
        elif pa.types.is_date(values.type):
            columns[name] = values.cast(pa.timestamp("us")).to_pandas()
        else:
            columns[name] = values.to_pandas()
    return pd.DataFrame(columns)


def history_from_frame(history: pd.DataFrame) -> pd.DataFrame:
    """The same frame from a warehouse that answers with pandas (BigQuery)."""
    history["sale_date"] = pd.to_datetime(history["sale_date"])
    # Repeated id strings: categories keep a chunk small (and quick to send to a worker).
    for name in ID_COLUMNS:
        history[name] = history[name].astype("category")
    return history


def result_tables(result: ChunkResult) -> ChunkResult:
    """The chunk's frames as Arrow tables of their tables' columns without the run's own."""
    for field, (table, omit) in RESULT_TABLES.items():
        setattr(result, field, arrow_rows(table, getattr(result, field), omit=omit))
    return result
