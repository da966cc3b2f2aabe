"""Loading validated input rows into the warehouse without losing what it already holds.

Sales and stock snapshots are keyed facts: a file adds the rows it holds and corrects stored rows
with the same key, and touches nothing else, so a file with two stray dates cannot delete the days
between them. A full replacement is explicit and names its date range: stored rows inside the
range that the file does not hold are deleted, and a file row outside the range is an input error
(the range, not the file's dates, says what is replaced).

Each load is one MERGE from a staging table, so it is atomic in BigQuery as in DuckDB; a load
into days the warehouse holds nothing for is a plain INSERT (the first import of a history, and
every daily file of new days).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from retailopt import schema, sqlfiles
from retailopt.ingest import InputError
from retailopt.warehouse import Warehouse

# Keyed fact tables: (key columns, the date column a replacement range applies to).
FACT_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "sales": (("sale_date", "store_id", "product_id"), "sale_date"),
    "inventory": (("snapshot_date", "store_id", "product_id"), "snapshot_date"),
}


@dataclass(frozen=True)
class DateRange:
    """Inclusive range of days a full replacement covers."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"replacement range ends ({self.last}) before it starts ({self.first})")

    @classmethod
    def parse(cls, text: str) -> "DateRange":
        """`YYYY-MM-DD:YYYY-MM-DD` (or `..` between the two dates)."""
        first, sep, last = text.replace("..", ":").partition(":")
        try:
            if not sep:
                raise ValueError
            return cls(date.fromisoformat(first.strip()), date.fromisoformat(last.strip()))
        except ValueError as exc:
            detail = f": {exc}" if str(exc) else ""
            raise ValueError(f"invalid date range {text!r}: expected FIRST:LAST as YYYY-MM-DD{detail}") from exc

    def __str__(self) -> str:
        return f"{self.first.isoformat()}:{self.last.isoformat()}"


@dataclass(frozen=True)
class LoadCounts:
    added: int
    replaced: int
    deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "replaced": self.replaced, "deleted": self.deleted}


def load_facts(wh: Warehouse, table: str, frame: pd.DataFrame, *, replace: DateRange | None = None,
               source: str | None = None) -> LoadCounts:
    """Add or correct `frame`'s rows in `table`; with `replace`, also delete the range's other rows."""
    key, day = FACT_TABLES[table]
    days = pd.to_datetime(frame[day]) if len(frame) else pd.Series(dtype="datetime64[ns]")
    if replace is not None:
        outside = (days < pd.Timestamp(replace.first)) | (days > pd.Timestamp(replace.last))
        if outside.any():
            first_bad = days[outside].min().date()
            raise InputError(f"{source or table}: {int(outside.sum())} rows dated outside the replacement range "
                             f"{replace} (for example {first_bad}); widen the range or remove those rows")
        first, last = replace.first, replace.last
    elif frame.empty:
        return LoadCounts(0, 0)
    else:
        first, last = days.min().date(), days.max().date()
    name = sqlfiles.check_table_name(table)
    stored = wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.{name}` WHERE {day} BETWEEN @first AND @last",
                      {"first": first, "last": last})
    if int(stored.n.iloc[0]) == 0:
        with wh.transaction():
            added = wh.insert(table, frame)
        return LoadCounts(added, 0)
    return _merge(wh, table, frame, key, day, first, last, replace is not None)


def new_load_id() -> str:
    return uuid.uuid4().hex


def stage_rows(wh: Warehouse, table: str, frame: pd.DataFrame, load_id: str) -> int:
    """Add validated rows of one import to `<table>_staging` (a chunk at a time for a large file)."""
    staging = sqlfiles.check_table_name(f"{table}_staging")
    return wh.insert(staging, frame.assign(load_id=load_id))


def stage_parquet_file(wh: Warehouse, table: str, path: Path, load_id: str) -> int | None:
    """Stage a whole sales Parquet file that passed the file check in one statement, when the
    warehouse can read the file in place (the embedded one); None otherwise (stage it by chunks)."""
    scanning = getattr(wh, "scanning", None)
    if scanning is None or table != "sales":
        return None
    with scanning("file_rows", Path(path)):
        wh.execute(sqlfiles.read_sql("ingest/stage_sales_file.sql"), {"load_id": load_id})
    staging = sqlfiles.check_table_name(f"{table}_staging")
    return int(wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.{staging}` WHERE load_id = @load_id",
                        {"load_id": load_id}).n.iloc[0])


def load_parquet_file(wh: Warehouse, table: str, path: Path, load_id: str, *, rows: int, first: date | None,
                      last: date | None, replace: DateRange | None = None, source: str | None = None) -> LoadCounts:
    """`load_staged_facts` for a sales file that passed the file check and was not staged yet (the
    warehouse reads it in place, `stage_parquet_file`). Into days that hold no sales it is one
    INSERT straight from the file: staging 38 million rows only to copy and delete them again was
    most of a large import. Otherwise (stored days to correct, or a replacement) it is staged and
    merged as before."""
    scanning = getattr(wh, "scanning", None)
    name = sqlfiles.check_table_name(table)
    day = FACT_TABLES[table][1]
    if scanning is not None and table == "sales" and replace is None and rows and first is not None \
            and last is not None:
        count = f"SELECT COUNT(*) AS n FROM `{{dataset}}.{name}` WHERE {day} BETWEEN @first AND @last"
        with wh.transaction():
            if int(wh.query(count, {"first": first, "last": last}).n.iloc[0]) == 0:
                with scanning("file_rows", Path(path)):
                    wh.execute(sqlfiles.read_sql("ingest/insert_sales_file.sql"))
                added = int(wh.query(count, {"first": first, "last": last}).n.iloc[0])
                if added != rows:  # the file changed since it was checked: the transaction is undone
                    raise InputError(f"{source or path.name}: the file changed while it was read ({rows} rows, "
                                     f"then {added})")
                return LoadCounts(added, 0)
    staged = stage_parquet_file(wh, table, path, load_id)
    if staged is not None and staged != rows:
        drop_staged(wh, table, load_id)
        raise InputError(f"{source or path.name}: the file changed while it was read ({rows} rows, then {staged})")
    return load_staged_facts(wh, table, load_id, rows=rows, first=first, last=last, replace=replace, source=source)


def drop_staged(wh: Warehouse, table: str, load_id: str) -> None:
    staging = sqlfiles.check_table_name(f"{table}_staging")
    wh.execute(f"DELETE FROM `{{dataset}}.{staging}` WHERE load_id = @load_id", {"load_id": load_id})


def load_staged_facts(wh: Warehouse, table: str, load_id: str, *, rows: int, first: date | None,
                      last: date | None, replace: DateRange | None = None, source: str | None = None) -> LoadCounts:
    """`load_facts` for rows already in `<table>_staging` under `load_id` (`rows` of them, dated
    `first`..`last`); the staged rows are removed afterwards, whatever happens."""
    key, day = FACT_TABLES[table]
    staging = sqlfiles.check_table_name(f"{table}_staging")
    name = sqlfiles.check_table_name(table)
    try:
        if replace is not None:
            outside = wh.query(f"SELECT COUNT(*) AS n, MIN({day}) AS first_bad FROM `{{dataset}}.{staging}` "
                               f"WHERE load_id = @load_id AND ({day} < @first OR {day} > @last)",
                               {"load_id": load_id, "first": replace.first, "last": replace.last})
            if int(outside.n.iloc[0]):
                first_bad = pd.Timestamp(outside.first_bad.iloc[0]).date()
                raise InputError(f"{source or table}: {int(outside.n.iloc[0])} rows dated outside the replacement "
                                 f"range {replace} (for example {first_bad}); widen the range or remove those rows")
            first, last = replace.first, replace.last
        elif rows == 0 or first is None or last is None:
            return LoadCounts(0, 0)
        stored = wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.{name}` WHERE {day} BETWEEN @first AND @last",
                          {"first": first, "last": last})
        if int(stored.n.iloc[0]) == 0:
            columns = ", ".join(schema.table(table).column_names)
            with wh.transaction():
                wh.execute(f"INSERT INTO `{{dataset}}.{name}` ({columns}) SELECT {columns} "
                           f"FROM `{{dataset}}.{staging}` WHERE load_id = @load_id", {"load_id": load_id})
            return LoadCounts(rows, 0)
        return _merge(wh, table, None, key, day, first, last, replace is not None, load_id=load_id, rows=rows)
    finally:
        drop_staged(wh, table, load_id)


def _merge(wh: Warehouse, table: str, frame: pd.DataFrame | None, key: tuple[str, ...], day: str,
           first: date, last: date, delete_others: bool, *, load_id: str | None = None,
           rows: int | None = None) -> LoadCounts:
    """MERGE the staged rows of one import (`frame`, staged here, or rows staged already under
    `load_id`) into `table`."""
    staging = sqlfiles.check_table_name(f"{table}_staging")
    columns = schema.table(table).column_names
    matches = " AND ".join(f"t.{c} = s.{c}" for c in key)
    params = {"load_id": load_id or new_load_id(), "first": first, "last": last}
    source = f"(SELECT * EXCEPT (load_id) FROM `{{dataset}}.{staging}` WHERE load_id = @load_id)"
    merge = (
        f"MERGE `{{dataset}}.{table}` AS t USING {source} AS s ON {matches}\n"
        f"WHEN MATCHED THEN UPDATE SET {', '.join(f'{c} = s.{c}' for c in columns if c not in key)}\n"
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join('s.' + c for c in columns)})"
        + (f"\nWHEN NOT MATCHED BY SOURCE AND t.{day} BETWEEN @first AND @last THEN DELETE" if delete_others else ""))
    try:
        if frame is not None:
            wh.insert(staging, frame.assign(load_id=params["load_id"]))
        with wh.transaction():
            replaced = wh.query(f"SELECT COUNT(*) AS n FROM {source} AS s JOIN `{{dataset}}.{table}` AS t "
                                f"ON {matches}", params)
            deleted = 0
            if delete_others:
                gone = wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.{table}` AS t WHERE t.{day} BETWEEN "
                                f"@first AND @last AND NOT EXISTS (SELECT 1 FROM {source} AS s WHERE {matches})",
                                params)
                deleted = int(gone.n.iloc[0])
            wh.execute(merge, params)
    finally:
        wh.execute(f"DELETE FROM `{{dataset}}.{staging}` WHERE load_id = @load_id", {"load_id": params["load_id"]})
    n_replaced = int(replaced.n.iloc[0])
    return LoadCounts((len(frame) if frame is not None else int(rows or 0)) - n_replaced, n_replaced, deleted)
