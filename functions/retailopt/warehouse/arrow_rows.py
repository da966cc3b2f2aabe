"""Result rows as an Arrow table typed by their table's DDL, made where the rows are made.

The forecast's workers make millions of rows; inserting them from a pandas frame cost the main
process most of its time (DuckDB reads each id and model string of an object column as a Python
object, and `conform` first copies every string column). An Arrow table with the DDL's types is
built in the worker instead (strings, floats and dates in plain buffers, its NOT NULL checks from
each array's null count), travels to the main process as buffers, and DuckDB scans it without
Python objects (`DuckDBWarehouse.insert_arrow`). The values are those `conform` gives: a NaN
float is NULL (as DuckDB reads a pandas NaN), a DATE column takes the local day of a timestamp.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

import pandas as pd
import pyarrow as pa

from retailopt import schema, sqlfiles

ARROW_TYPES = {"STRING": pa.string(), "FLOAT64": pa.float64(), "INT64": pa.int64(), "BOOL": pa.bool_(),
               "DATE": pa.date32()}


def arrow_rows(table: str, frame: pd.DataFrame, *, omit: Collection[str] = ()) -> pa.Table:
    """`frame` as the columns of `table` (its DDL's order and types) but those in `omit` (the
    run's own columns, added by the insert), with the checks of `conform`: unknown columns and
    empty NOT NULL values are rejected. Types other than ARROW_TYPES are not supported here."""
    definition = schema.table(sqlfiles.check_table_name(table))
    extra = set(frame.columns) - set(definition.column_names)
    if extra:
        raise ValueError(f"{table}: columns not in sql/schema/{table}.sql: {sorted(extra)}")
    arrays, fields = [], []
    for col in definition.columns:
        if col.name in omit:
            continue
        if col.type not in ARROW_TYPES:
            raise ValueError(f"{table}.{col.name}: type {col.type} has no Arrow column here")
        kind = ARROW_TYPES[col.type]
        values = _array(col.type, frame[col.name]) if col.name in frame.columns else pa.nulls(len(frame), kind)
        if not col.nullable and values.null_count:
            raise ValueError(f"{table}.{col.name} is NOT NULL but {values.null_count} rows are empty")
        arrays.append(values)
        fields.append(pa.field(col.name, kind, nullable=col.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _array(kind: str, values: pd.Series) -> pa.Array:
    if kind == "STRING":
        if isinstance(values.dtype, pd.CategoricalDtype):
            return pa.array(values, from_pandas=True).cast(pa.string())
        try:
            return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # numbers or other objects: their text, as `conform`
            return pa.array(values.astype("string"), type=pa.string(), from_pandas=True)
    if kind == "FLOAT64":
        return pa.array(values.astype("float64").to_numpy(), type=pa.float64(), from_pandas=True)
    if kind == "INT64":
        return pa.array(pd.to_numeric(values).round().astype("Int64"), type=pa.int64(), from_pandas=True)
    if kind == "BOOL":
        return pa.array(values.astype("boolean"), type=pa.bool_(), from_pandas=True)
    # DATE: the local day of a timestamp, as `conform(native_dates=True)` hands DuckDB.
    # Timestamps already: `pd.to_datetime` would still look at thousands of them one by one.
    days = values if pd.api.types.is_datetime64_any_dtype(values.dtype) else pd.to_datetime(values)
    days = (days.dt.tz_localize(None) if days.dt.tz is not None else days).dt.normalize()
    return pa.array(days, from_pandas=True).cast(pa.date32())


def insert_arrow(warehouse: Any, table: str, rows: pa.Table, fixed: Mapping[str, Any]) -> int:
    """Insert `rows` with the columns in `fixed` (the run's id and date) set for every row: natively
    where the warehouse scans Arrow (DuckDB), else as a frame through its `insert`."""
    native = getattr(warehouse, "insert_arrow", None)
    if native is not None:
        return int(native(table, rows, fixed))
    return int(warehouse.insert(table, rows.to_pandas().assign(**fixed)))
