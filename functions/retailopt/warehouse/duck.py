"""The embedded warehouse: one DuckDB file, GoogleSQL translated by sqlglot."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import duckdb
import pandas as pd
import pyarrow as pa
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
        self._conn = self._connect()
        # One connection shared by threads; DuckDB serialises writes, the lock keeps a
        # transaction's statements together.
        self._lock = threading.RLock()
        self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{sqlfiles.render("{dataset}", dataset)}"')

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # DuckDB checkpoints a commit once its write-ahead log passes 16 MB, and each checkpoint
        # rewrites the tables' unfinished row groups: the forecast's commits (one a chunk) spent
        # a quarter of the sample's forecast step there. A larger log (written once, folded in
        # at the next checkpoint or on close) saves about 4 s of CPU of its 31 s run.
        return duckdb.connect(str(self.path), config={"memory_limit": "768MB", "checkpoint_threshold": "256MB"})

    @contextlib.contextmanager
    def _recovering(self) -> Iterator[None]:
        """After a DuckDB fatal error (an internal error, a failed checkpoint) the database
        refuses every statement until it is opened again: a long-lived process (`retailopt
        serve`) would answer errors until restarted. The file is opened again at once (what was
        committed is kept: DuckDB replays its write-ahead log); the failed statement's error
        still reaches the caller, whose step or request is retried as any failed one is."""
        try:
            yield
        except duckdb.FatalException:
            if str(self.path) != ":memory:":  # an in-memory database has nothing to open again
                try:
                    self._conn.close()
                except duckdb.Error:
                    pass
                self._conn = self._connect()
            raise

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
        with self._lock, self._recovering():
            return self._run(sql, params).df()

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """`query`'s rows as an Arrow table: strings and dates stay in buffers (no Python object per
        value), cheap to hand to another process."""
        with self._lock, self._recovering():
            return self._run(sql, params).to_arrow_table()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock, self._recovering():
            self._run(sql, params)

    @contextlib.contextmanager
    def scanning(self, name: str, source: Any) -> Iterator[None]:
        """`source` readable as table `name` by the statements run inside the block: a Parquet
        file's path (DuckDB's own reader, a third less CPU than through an Arrow dataset) or an
        Arrow table or dataset; DuckDB streams it, nothing is copied into Python first."""
        with self._lock, self._recovering():
            conn = self._conn
            if isinstance(source, Path):
                scan_parquet(conn, name, source)
            else:
                conn.register(name, source)
            try:
                yield
            finally:
                if conn is self._conn:  # else it went with a connection a fatal error closed
                    if isinstance(source, Path):
                        conn.execute(f'DROP VIEW IF EXISTS "{name}"')
                    else:
                        conn.unregister(name)

    def insert(self, table: str, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        data = conform(table, frame, native_dates=True)
        columns = ", ".join(f'"{c}"' for c in data.columns)
        with self._lock, self._recovering():
            self._conn.register("_incoming", data)
            conn = self._conn
            try:
                conn.execute(f'INSERT INTO "{self.dataset}"."{table}" ({columns}) SELECT {columns} FROM _incoming')
            finally:
                try:
                    conn.unregister("_incoming")
                except duckdb.FatalException:  # the INSERT's own fatal error is the one to report
                    pass
        return len(data)

    def insert_arrow(self, table: str, rows: pa.Table, fixed: Mapping[str, Any] | None = None) -> int:
        """Rows already typed and checked where they were made (`arrow_rows.arrow_rows`), scanned
        in place: no Python object per value. `fixed` columns (the run's id and date) take one value
        for every row, passed as parameters."""
        if rows.num_rows == 0:
            return 0
        definition = schema.table(sqlfiles.check_table_name(table))
        fixed = dict(fixed or {})
        names = list(rows.column_names) + list(fixed)
        unknown = set(names) - set(definition.column_names)
        if unknown or len(set(names)) < len(names):
            raise ValueError(f"{table}: columns not in sql/schema/{table}.sql or repeated: {names}")
        for name, value in fixed.items():
            if value is None and not definition.column(name).nullable:
                raise ValueError(f"{table}.{name} is NOT NULL but its value is empty")
        columns = ", ".join(f'"{c}"' for c in names)
        values = ", ".join([f'"{c}"' for c in rows.column_names] + [f"$fixed{i}" for i in range(len(fixed))])
        args = {f"fixed{i}": python_value(v) for i, v in enumerate(fixed.values())}
        with self._lock, self._recovering():
            conn = self._conn
            conn.register("_incoming_rows", rows)
            try:
                conn.execute(f'INSERT INTO "{self.dataset}"."{table}" ({columns}) SELECT {values} FROM _incoming_rows',
                             args or None)
            finally:
                try:
                    conn.unregister("_incoming_rows")
                except duckdb.FatalException:  # the INSERT's own fatal error is the one to report
                    pass
        return rows.num_rows

    @contextlib.contextmanager
    def threads(self, count: int) -> Iterator[None]:
        """DuckDB's own threads capped at `count` for the block. While the forecast's workers keep
        every core busy, a statement split over the cores only waits for them: an insert of a
        chunk's rows took twice the CPU on two threads as on one (1.0 s against 0.45 s)."""
        with self._lock:
            before = int(self._conn.execute("SELECT current_setting('threads')").fetchone()[0])
            self._conn.execute(f"SET threads = {int(count)}")
        try:
            yield
        finally:
            with self._lock, self._recovering():
                self._conn.execute(f"SET threads = {before}")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file now (DuckDB's CHECKPOINT)."""
        with self._lock, self._recovering():
            self._conn.execute("CHECKPOINT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock, self._recovering():
            conn = self._conn
            conn.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                # A fatal error inside opened the file again: its transaction died with the
                # old connection, and nothing of it was committed.
                if conn is self._conn:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def scan_parquet(conn: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    """A temporary view `name` over the Parquet file at `path`, read by DuckDB's own reader (the
    path is an argument of the reader, not SQL text)."""
    if not name.isidentifier():
        raise ValueError(f"invalid view name {name!r}")
    conn.read_parquet(str(path)).create_view(name, replace=True)
