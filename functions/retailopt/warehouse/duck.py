"""The embedded warehouse: one DuckDB file, GoogleSQL translated by sqlglot."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import duckdb
import pandas as pd
import sqlglot

from retailopt import schema, sqlfiles
from retailopt.warehouse.base import conform, python_value


class DuckDBWarehouse:
    def __init__(self, path: Path | str, dataset: str) -> None:
        self.dataset = dataset
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # DuckDB caches up to 80 % of RAM by default; a planning run needs far less, and the
        # process's peak memory is a budget (see `retailopt bench-run`).
        self._conn = duckdb.connect(str(path), config={"memory_limit": "768MB"})
        # One connection shared by threads; DuckDB serialises writes, the lock keeps a
        # transaction's statements together.
        self._lock = threading.RLock()
        self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{sqlfiles.render("{dataset}", dataset)}"')

    def ensure_schema(self) -> None:
        with self._lock:
            for path in sqlfiles.schema_files().values():
                for statement in self._translate(path.read_text(encoding="utf-8")):
                    self._conn.execute(statement)
                self._add_new_columns(path.stem)
            for path in sqlfiles.view_files():
                for statement in self._translate(path.read_text(encoding="utf-8")):
                    self._conn.execute(statement)

    def _add_new_columns(self, table: str) -> None:
        """A warehouse file made by an earlier version gets the nullable columns added since."""
        present = {row[0] for row in self._conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $schema AND table_name = $table",
            {"schema": self.dataset, "table": table}).fetchall()}
        for column in schema.table(table).columns:
            if column.name not in present and column.nullable:
                kind = sqlglot.exp.DataType.build(column.type, dialect="bigquery").sql("duckdb")
                self._conn.execute(f'ALTER TABLE "{self.dataset}"."{table}" ADD COLUMN "{column.name}" {kind}')

    def _translate(self, sql: str) -> list[str]:
        return sqlfiles.to_duckdb(sqlfiles.render(sql, self.dataset))

    def _run(self, sql: str, params: Mapping[str, Any] | None) -> duckdb.DuckDBPyConnection:
        statements = self._translate(sql)
        args = {k: python_value(v) for k, v in (params or {}).items()}
        cursor = self._conn
        for statement in statements:
            used = {k: v for k, v in args.items() if f"${k}" in statement}
            cursor = self._conn.execute(statement, used) if used else self._conn.execute(statement)
        return cursor

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        with self._lock:
            return self._run(sql, params).df()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._run(sql, params)

    @contextlib.contextmanager
    def scanning(self, name: str, source: Any) -> Iterator[None]:
        """`source` (an Arrow table or dataset, e.g. a Parquet file) readable as table `name` by the
        statements run inside the block: DuckDB streams it, nothing is copied into Python first."""
        with self._lock:
            self._conn.register(name, source)
            try:
                yield
            finally:
                self._conn.unregister(name)

    def insert(self, table: str, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        data = conform(table, frame, native_dates=True)
        columns = ", ".join(f'"{c}"' for c in data.columns)
        with self._lock:
            self._conn.register("_incoming", data)
            try:
                self._conn.execute(
                    f'INSERT INTO "{self.dataset}"."{table}" ({columns}) SELECT {columns} FROM _incoming')
            finally:
                self._conn.unregister("_incoming")
        return len(data)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._conn.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
