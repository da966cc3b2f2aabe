"""The interface every warehouse adapter implements."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import pandas as pd

from retailopt import schema, sqlfiles


class Warehouse(Protocol):
    dataset: str

    def ensure_schema(self) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame: ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def insert(self, table: str, frame: pd.DataFrame) -> int: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


def query_file(warehouse: Warehouse, name: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a named query from `sql/queries/<name>.sql`."""
    return warehouse.query(sqlfiles.read_sql(f"queries/{name}.sql"), params)


_NUMPY_KINDS = {"INT64": "Int64", "FLOAT64": "float64", "BOOL": "boolean", "STRING": "string"}


def conform(table: str, frame: pd.DataFrame, *, native_dates: bool = False) -> pd.DataFrame:
    """Order and type a frame's columns exactly as the table's DDL says; reject unknown columns.

    DATE columns become `datetime.date` objects, or with `native_dates` (a warehouse that casts
    a timestamp to its DATE column itself: DuckDB) midnight timestamps of the same local day:
    turning millions of forecast days into Python objects, and DuckDB reading them back, took
    most of writing them."""
    definition = schema.table(sqlfiles.check_table_name(table))
    extra = set(frame.columns) - set(definition.column_names)
    if extra:
        raise ValueError(f"{table}: columns not in sql/schema/{table}.sql: {sorted(extra)}")
    out = pd.DataFrame(index=frame.index)
    for col in definition.columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        if not col.nullable and values.isna().any():
            raise ValueError(f"{table}.{col.name} is NOT NULL but {int(values.isna().sum())} rows are empty")
        if col.type == "DATE" and native_dates:
            values = pd.to_datetime(values)
            values = (values.dt.tz_localize(None) if values.dt.tz is not None else values).dt.normalize()
        elif col.type == "DATE":
            values = pd.to_datetime(values).dt.date
        elif col.type == "TIMESTAMP":
            values = pd.to_datetime(values, utc=True)
        elif col.type == "TIME":
            values = pd.to_datetime(values.astype("string"), format="%H:%M:%S").dt.time if len(values) else values
        elif col.type == "INT64":
            values = pd.to_numeric(values).round().astype("Int64")
        elif col.type in _NUMPY_KINDS:
            values = values.astype(_NUMPY_KINDS[col.type])
        out[col.name] = values
    return out.reset_index(drop=True)


def python_value(value: Any) -> Any:
    """numpy/pandas scalars to plain Python for query parameters."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


@contextlib.contextmanager
def no_transaction() -> Iterator[None]:
    yield
