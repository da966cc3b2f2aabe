"""BigQuery adapter: the same GoogleSQL text, run by google-cloud-bigquery."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from typing import Any, Iterator, Mapping

import pandas as pd
from google.cloud import bigquery

from retailopt import schema, sqlfiles
from retailopt.warehouse.base import conform, no_transaction, python_value

_SCALAR_TYPES: list[tuple[type, str]] = [
    (bool, "BOOL"), (int, "INT64"), (float, "FLOAT64"), (Decimal, "NUMERIC"), (str, "STRING"),
    (dt.datetime, "TIMESTAMP"), (dt.date, "DATE"), (dt.time, "TIME"), (bytes, "BYTES"),
]


def _type_of(value: Any) -> str:
    for python_type, bq_type in _SCALAR_TYPES:
        if isinstance(value, python_type):
            return bq_type
    raise TypeError(f"unsupported query parameter type {type(value).__name__}")


def query_parameters(params: Mapping[str, Any] | None) -> list[Any]:
    out: list[Any] = []
    for name, raw in (params or {}).items():
        value = python_value(raw)
        if isinstance(value, (list, tuple)):
            items = [python_value(v) for v in value]
            out.append(bigquery.ArrayQueryParameter(name, _type_of(items[0]) if items else "STRING", items))
        elif value is None:
            out.append(bigquery.ScalarQueryParameter(name, "STRING", None))
        else:
            out.append(bigquery.ScalarQueryParameter(name, _type_of(value), value))
    return out


_DML_BATCH_ROWS = 2000


def _bq_value(value: Any) -> Any:
    value = python_value(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def bigquery_schema(table: str) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(c.name, c.type, mode="NULLABLE" if c.nullable else "REQUIRED",
                                 description=c.description)
            for c in schema.table(table).columns]


class BigQueryWarehouse:
    def __init__(self, client: bigquery.Client, *, project: str, dataset: str, location: str = "US") -> None:
        self.client = client
        self.project = project
        self.dataset = dataset
        self.location = location

    def _render(self, sql: str) -> str:
        return sqlfiles.render(sql, self.dataset, self.project)

    def ensure_schema(self) -> None:
        ds = bigquery.Dataset(f"{self.project}.{self.dataset}")
        ds.location = self.location
        self.client.create_dataset(ds, exists_ok=True)
        for path in sqlfiles.schema_files().values():
            self.client.query(self._render(path.read_text(encoding="utf-8"))).result()
        for path in sqlfiles.view_files():
            self.client.query(self._render(path.read_text(encoding="utf-8"))).result()

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        config = bigquery.QueryJobConfig(query_parameters=query_parameters(params))
        rows = self.client.query(self._render(sql), job_config=config).result()
        columns = [field.name for field in rows.schema]
        return pd.DataFrame([dict(row.items()) for row in rows], columns=columns)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        config = bigquery.QueryJobConfig(query_parameters=query_parameters(params))
        self.client.query(self._render(sql), job_config=config).result()

    def insert(self, table: str, frame: pd.DataFrame) -> int:
        """Append rows with parameterised DML: atomic per statement, and the rows can be deleted
        (replace-by-run-id) at once, which streaming inserts would not allow."""
        if frame.empty:
            return 0
        data = conform(table, frame)
        columns = schema.table(table).columns
        names = ", ".join(c.name for c in columns)
        selected = ", ".join("r." + c.name for c in columns)
        sql = (f"INSERT INTO `{{dataset}}.{sqlfiles.check_table_name(table)}` ({names}) "
               f"SELECT {selected} FROM UNNEST(@rows) AS r")
        records = data.astype(object).where(data.notna(), None).to_dict("records")
        for start in range(0, len(records), _DML_BATCH_ROWS):
            rows = [bigquery.StructQueryParameter(
                None, *(bigquery.ScalarQueryParameter(c.name, c.type, _bq_value(r[c.name])) for c in columns))
                for r in records[start:start + _DML_BATCH_ROWS]]
            config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("rows", "STRUCT", rows)])
            self.client.query(self._render(sql), job_config=config).result()
        return len(data)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        # Readers only see runs marked COMPLETE, which is what makes a run's results atomic here.
        return no_transaction()

    def close(self) -> None:
        self.client.close()
