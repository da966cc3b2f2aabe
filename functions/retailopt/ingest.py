"""Reading and validating a folder of input files (CSV or Parquet) against the data contracts.

Every problem is reported with its file, row and column. Valid rows go on; invalid rows are
returned as quarantine records, so rows in = rows accepted + rows quarantined.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from retailopt import schema
from retailopt.contracts import (CONTRACTS, INPUT_TABLES, OPTIONAL_COLUMNS, OPTIONAL_TABLES, REQUIRED_NONEMPTY,
                                 pandera_schema)

log = logging.getLogger(__name__)

_STR = "string[pyarrow]"
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
# Whole numbers must stay below this in magnitude: the largest range float64 holds exactly.
_WHOLE_LIMIT = 2**53
_DATE_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?"


class InputError(Exception):
    """The input cannot be planned (a required file is missing, unreadable or has no valid row).

    `quarantine` holds the rejected rows and file-level problems found before giving up, in the
    quarantine table's columns, so a failed run can still show them.
    """

    def __init__(self, message: str, quarantine: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.quarantine = quarantine if quarantine is not None else _file_problem(None, message)


def _record_staged(table: str, path: Path, rows_in: int, accepted: int, quarantine: pd.DataFrame,
                   quarantined: list[pd.DataFrame], reports: list[FileReport]) -> None:
    """A file staged in chunks: its quarantined rows kept and its report (first 20 reasons) logged."""
    quarantined.append(quarantine)
    messages = [f"{path.name} row {r.row_number}: {r.reason}" for r in quarantine.head(20).itertuples()]
    reports.append(FileReport(table, str(path), rows_in, accepted, len(quarantine), messages))
    for message in messages:
        log.warning(message)


def _file_problem(source_file: str | None, reason: str, column: str | None = None) -> pd.DataFrame:
    return pd.DataFrame([{"source_file": source_file or "(input folder)", "row_number": None,
                          "column_name": column, "reason": reason, "raw_record": None}])


@dataclass
class FileReport:
    table: str
    path: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    problems: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    frames: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame  # quarantine table columns without run_id / run_date
    reports: list[FileReport]
    # Tables whose stored rows stay as they are: no file in the folder (the warehouse holds them
    # already), or an optional file that was skipped.
    kept: set[str] = field(default_factory=set)
    # Tables whose valid rows went to the warehouse's staging in chunks instead of `frames`.
    staged: dict[str, "StagedRows"] = field(default_factory=dict)


@dataclass
class StagedRows:
    """The valid rows of a large file, handed chunk by chunk to the `stage` callback."""

    rows: int = 0
    first_day: date | None = None  # the table's date column over the staged rows
    last_day: date | None = None
    checked_in_sql: bool = False  # no bad row: checked in one pass and staged without row checks
    # A checked file left for the warehouse to read in place (`load_inputs(in_place=True)`): its
    # rows are not staged here; the load reads them from this file.
    file: Path | None = None


# A sales Parquet file with more rows than this is validated in chunks of this many rows
# and its valid rows staged in the warehouse chunk by chunk: memory stays bounded by the chunk.
CHUNK_ROWS = 500_000
STAGED_TABLES = {"sales": "sale_date"}  # (the day is part of the key)


def find_input_files(data_dir: Path, table: str) -> list[Path]:
    """Every file that holds `table`; more than one is a problem for the caller, not a choice to make."""
    return [path for suffix in (".parquet", ".csv") if (path := data_dir / f"{table}{suffix}").is_file()]


class FileProblem(Exception):
    """A whole file is unusable (empty, unreadable, ambiguous); the message says why, without the path."""


@dataclass
class RawFile:
    """A file's rows before typing, indexed by 0-based data row (gaps where a row could not be split)."""

    frame: pd.DataFrame
    header: list[str]  # the column names as the file has them, stripped
    # Values that are not text (idx, column_name, reason); their rows stay in `frame` for the record.
    problems: pd.DataFrame = field(default_factory=lambda: _problems_frame(pd.Index([]), "", ""))
    # Quarantine rows for rows that could not be split into the header's columns.
    rejected: pd.DataFrame = field(default_factory=lambda: _combine([]))

    @property
    def rows_in(self) -> int:
        return len(self.frame) + len(self.rejected)


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_NOT_UTF8 = "not UTF-8 text (save the file as UTF-8)"
# Arrow types pandas takes over as they are; any other (time, decimal, nested, ...) is read as text.
_PLAIN_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating,
                pa.types.is_boolean, pa.types.is_date, pa.types.is_timestamp, pa.types.is_null)


def read_raw(path: Path) -> RawFile:
    """The file's rows; raises FileProblem when the file as a whole cannot be read."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        header = [name.strip() for name in table.column_names]
        table, problems = _plain_columns(table.rename_columns(_unique_names(header)))
        frame = _to_pandas(table)
        return RawFile(frame, header, problems.assign(idx=frame.index[problems.idx.to_numpy(dtype=int)]))
    return _read_csv(path)


def _read_csv(path: Path) -> RawFile:
    # Every column is read as bytes, so a wrong type or a byte that is not UTF-8 is reported per row
    # instead of failing the file; pyarrow rather than pandas because it hands over the rows that do
    # not match the header (with their row number) instead of shifting or dropping them.
    with path.open("rb") as f:
        start = f.read(2)
    encoding = "utf-16" if start in _UTF16_BOMS else "utf-8-sig"
    raw_names, has_rows = _csv_header(path, encoding)
    header = [name.strip() for name in raw_names]
    names = _unique_names(header)
    if not has_rows:
        return RawFile(pd.DataFrame({name: pd.Series(dtype=_STR) for name in names}), header)
    ragged: list[pacsv.InvalidRow] = []

    def on_ragged_row(row: pacsv.InvalidRow) -> str:
        ragged.append(row)
        return "skip"

    with _undecodable_rows() as undecodable:
        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(use_threads=False,  # row numbers for the ragged rows
                                               encoding="utf16" if encoding == "utf-16" else "utf8"),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged_row),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.binary() for n in raw_names},
                                                     strings_can_be_null=True, null_values=[""]))
        except pa.ArrowInvalid as exc:
            hint = (" (a row with a different number of fields than the header, which is also not UTF-8 text: "
                    "save the file as UTF-8)") if undecodable else ""
            raise FileProblem(f"cannot read file: {exc}{hint}") from exc
    if table.column_names != raw_names:
        raise FileProblem("the header row cannot be read (check the quotes in it)")
    lines = [pc.any(pc.match_substring_regex(col, "[\r\n]")).as_py() for col in table.columns]
    if any(lines) or any("\n" in row.text or "\r" in row.text for row in ragged):
        opened = _unclosed_quote(path, encoding)
        if opened is not None:
            where = "the header" if opened == 0 else f"data row {opened}"
            raise FileProblem(f"a quote opened in {where} is never closed, so the rows after it cannot be "
                              "told apart")
    if any(row.number is None for row in ragged):  # pyarrow numbers rows when it reads on one thread
        raise FileProblem(f"{len(ragged)} rows do not match the header, and their row numbers are unknown")
    table, problems = _plain_columns(table.rename_columns(names))
    total = table.num_rows + len(ragged)
    skipped = np.array([row.number - 2 for row in ragged], dtype=int)  # row.number counts the header as 1
    index = np.delete(np.arange(total), skipped)
    frame = _to_pandas(table).set_axis(pd.Index(index), axis=0)
    rejected = pd.DataFrame({
        "source_file": path.name, "row_number": skipped + 1,
        "column_name": ",".join(header),
        "reason": [f"{row.actual_columns} fields, the header has {row.expected_columns}"
                   + (" (a quote is not closed)" if row.text.count('"') % 2 else "") for row in ragged],
        "raw_record": [json.dumps(row.text) for row in ragged],
    }) if ragged else _combine([])
    return RawFile(frame, header, problems.assign(idx=index[problems.idx.to_numpy(dtype=int)]), rejected)


def _csv_header(path: Path, encoding: str) -> tuple[list[str], bool]:
    """The header's column names (as written; blank lines before it are skipped, as pyarrow does) and
    whether any data row follows."""
    with path.open(encoding=encoding, errors="replace", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next((record for record in reader if record), None)
        except csv.Error as exc:
            raise FileProblem(f"the header row cannot be read: {exc}") from exc
        has_rows = any(line.strip() for line in f)
    if header is None:
        raise FileProblem("the file is empty (expected a header row)")
    if any("\ufffd" in name for name in header):
        raise FileProblem(f"the header row is {_NOT_UTF8}")
    return header, has_rows


def _unique_names(header: list[str]) -> list[str]:
    """Column names pandas can hold: an empty name gets its position, a repeated one a suffix."""
    names: list[str] = []
    for i, name in enumerate(header, start=1):
        name = name or f"(column {i})"
        while name in names:
            name += "'"
        names.append(name)
    return names


def _unclosed_quote(path: Path, encoding: str) -> int | None:
    """The record (0 = header) whose quote runs to the end of the file, if any.

    pyarrow reads such a value to the end of the file without a word, swallowing the rows after it.
    Python's csv reader does the same; a sentinel line after the end shows it: swallowed, it ends
    up inside the last record instead of being a record of its own.
    """
    sentinel = "\x00end of file\x00"
    with path.open(encoding=encoding, errors="replace", newline="") as f:
        number, last = -1, None
        try:
            for number, last in enumerate(csv.reader(itertools.chain(f, ["\n", sentinel + "\n"]))):
                pass
        except csv.Error:  # a field beyond csv's size limit: a quote running on over many lines
            return number + 1
    return None if last == [sentinel] else number


@contextmanager
def _undecodable_rows() -> Iterator[list[object]]:
    """pyarrow decodes a row of the wrong length as UTF-8 before handing it over; when that fails it
    reports the error through sys.unraisablehook (a traceback on stderr) and then fails the read.
    Collect those instead, so the read's own error (with a hint) is all that shows."""
    caught: list[object] = []
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if issubclass(unraisable.exc_type, UnicodeDecodeError):
            caught.append(unraisable)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


def _plain_columns(table: pa.Table) -> tuple[pa.Table, pd.DataFrame]:
    """Columns of types pandas handles plainly; bytes become UTF-8 text, and a value that is not UTF-8
    a problem of its row (kept, with U+FFFD for the bad bytes, for the quarantine record).
    Problems are returned with `idx` = position in the table."""
    problems: list[pd.DataFrame] = []
    columns = []
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) \
                or pa.types.is_fixed_size_binary(col.type):
            try:
                col = col.cast(pa.string())
            except pa.ArrowInvalid:  # rare: look at each value to find the rows that are not UTF-8
                values = col.to_pylist()
                bad = [i for i, v in enumerate(values) if v is not None and not _is_utf8(v)]
                col = pa.array([None if v is None else v.decode("utf-8", "replace") for v in values], pa.string())
                problems.append(pd.DataFrame({"idx": bad, "column_name": name, "reason": _NOT_UTF8}))
        elif not any(is_type(col.type) for is_type in _PLAIN_TYPES):
            try:
                col = col.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                col = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        columns.append(col)
    table = pa.table(columns, names=table.column_names)
    return table, pd.concat(problems, ignore_index=True) if problems else _problems_frame(pd.Index([]), "", "")


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # Arrow-backed strings avoid a slow round trip through Python objects on large files.
    return table.to_pandas(date_as_object=False, types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                                               pa.large_string(): pd.StringDtype("pyarrow")}.get)


def _problems_frame(index: pd.Index, column: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"idx": np.asarray(index), "column_name": column, "reason": reason})


def coerce(table: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Type each column as the DDL says; values that do not parse become problems."""
    out = pd.DataFrame(index=raw.index)
    problems: list[pd.DataFrame] = []
    for col in schema.table(table).columns:
        values = raw[col.name]
        present = values.notna()
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            values = values.astype(_STR).str.strip()
            values = values.mask(values == "")
            present = values.notna()
        kind = col.type
        if kind == "STRING":
            typed = values.astype(_STR)
        elif kind in ("INT64", "FLOAT64"):
            typed = pd.to_numeric(values, errors="coerce").astype("float64")
            bad = present & (typed.isna() | ~np.isfinite(typed.fillna(0)))
            if kind == "INT64":
                bad |= present & typed.notna() & (typed != np.round(typed))
            if bad.any():
                problems.append(_problems_frame(raw.index[bad], col.name, f"not a valid {kind} number"))
            if kind == "INT64":
                # Whole numbers are read through float64, exact only below 2**53: a larger one would be
                # stored rounded (and beyond 2**63 cannot be stored at all), so it is rejected instead.
                # Any true value >= 2**53 reads as a float >= 2**53, so this test misses none.
                huge = present & ~bad & (typed.abs() >= _WHOLE_LIMIT)
                if huge.any():
                    problems.append(_problems_frame(raw.index[huge], col.name,
                                                    f"whole number out of range (at most ±{_WHOLE_LIMIT - 1})"))
                bad |= huge
            typed = typed.mask(bad)
            if kind == "INT64":
                typed = typed.astype("Int64")
        elif kind == "BOOL":
            if pd.api.types.is_bool_dtype(values):
                typed = values.astype("boolean")
            else:
                text = values.astype(_STR).str.lower()
                typed = pd.Series(pd.NA, index=raw.index, dtype="boolean")
                typed[text.isin(_TRUE).fillna(False)] = True
                typed[text.isin(_FALSE).fillna(False)] = False
                bad = present & typed.isna()
                if bad.any():
                    problems.append(_problems_frame(raw.index[bad], col.name, "not a boolean (true/false)"))
        elif kind == "DATE":
            if pd.api.types.is_datetime64_any_dtype(values):
                # A Parquet timestamp with a time zone counts by its local date, as the zone's reader sees it.
                typed = values.dt.tz_localize(None) if values.dt.tz is not None else values
            else:
                text = values.astype(_STR)
                # Only a plain date (optionally with a time of day) reaches the parser: a UTC offset or
                # zone would make pandas return objects of mixed zones instead of dates.
                plain = text.str.fullmatch(_DATE_TEXT).fillna(False).astype(bool)
                typed = pd.to_datetime(text.where(plain), errors="coerce", format="ISO8601")
            typed = pd.Series(typed, index=raw.index).dt.normalize()
            bad = present & typed.isna()
            if bad.any():
                # pandas holds dates of nanosecond precision only, 1677-09-21 to 2262-04-11.
                problems.append(_problems_frame(raw.index[bad], col.name,
                                                "not a date (YYYY-MM-DD, years 1678 to 2261)"))
        elif kind == "TIME":
            text = values.astype(_STR)
            parsed = pd.to_datetime(text, errors="coerce", format="%H:%M:%S")
            parsed = parsed.fillna(pd.to_datetime(text, errors="coerce", format="%H:%M"))
            typed = parsed.dt.strftime("%H:%M:%S").astype(_STR)
            bad = present & parsed.isna()
            if bad.any():
                problems.append(_problems_frame(raw.index[bad], col.name, "not a time (HH:MM[:SS])"))
        else:  # pragma: no cover - the input DDL uses only the types above
            raise TypeError(f"{table}.{col.name}: unsupported type {kind}")
        out[col.name] = typed
    return out, problems


def _pandera_problems(table: str, frame: pd.DataFrame) -> list[pd.DataFrame]:
    try:
        with warnings.catch_warnings():
            # pandera's own report building trips a pandas deprecation warning that would land on
            # the user's terminal; the failure cases themselves are unaffected.
            warnings.simplefilter("ignore", FutureWarning)
            pandera_schema(table).validate(frame, lazy=True)
        return []
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cases = cases[cases["index"].notna()]
    reasons = cases["check"].astype(str).replace({"not_nullable": "missing value"})
    return [pd.DataFrame({"idx": cases["index"].astype(int).to_numpy(), "column_name": cases["column"].astype(str),
                          "reason": reasons.to_numpy()})]


def _unless_reported(found: pd.DataFrame, earlier: list[pd.DataFrame]) -> pd.DataFrame:
    """`found` without "missing value" for a value already reported as unreadable (coerce blanks it)."""
    if not earlier:
        return found
    seen = pd.concat(earlier)[["idx", "column_name"]].drop_duplicates().assign(seen=True)
    marked = found.merge(seen, on=["idx", "column_name"], how="left")
    return found[~(marked.seen.eq(True).to_numpy() & (found.reason == "missing value").to_numpy())]


def validate_table(table: str, raw: pd.DataFrame, valid_ids: dict[str, set[str]], as_of: date,
                   read_problems: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (valid typed rows, problems: idx/column_name/reason); `read_problems` are found earlier
    (values that are not text) in the same form."""
    contract = CONTRACTS[table]
    frame, problems = coerce(table, raw)
    if read_problems is not None and not read_problems.empty:
        problems.insert(0, read_problems)
    problems += [_unless_reported(found, problems) for found in _pandera_problems(table, frame)]
    for column, targets in contract.references.items():
        known = set().union(*(valid_ids.get(t, set()) for t in targets))
        bad = frame[column].notna() & ~frame[column].isin(known)
        if bad.any():
            problems.append(_problems_frame(frame.index[bad], column, f"unknown id (not in {' or '.join(targets)})"))
    for column in contract.not_after_run_date:
        bad = frame[column] > pd.Timestamp(as_of)
        if bad.any():
            problems.append(_problems_frame(frame.index[bad], column, f"date after {as_of.isoformat()} (in the future)"))
    # TIME values are zero-padded HH:MM:SS text after coerce, so text order is time order.
    for earlier, later in (*contract.date_order, *contract.time_order):
        bad = (frame[later] < frame[earlier]).fillna(False).astype(bool)
        if bad.any():
            problems.append(_problems_frame(frame.index[bad], later, f"{later} before {earlier}"))
    duplicated = frame.duplicated(list(contract.key), keep="first") & frame[list(contract.key)].notna().all(axis=1)
    if duplicated.any():
        problems.append(_problems_frame(frame.index[duplicated], ",".join(contract.key),
                                        "duplicate key (" + ", ".join(contract.key) + ")"))
    found = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(
        columns=["idx", "column_name", "reason"])
    return frame.drop(index=found["idx"].unique()), found


def _quarantine_rows(source: str, raw: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    if problems.empty:
        return pd.DataFrame(columns=["source_file", "row_number", "column_name", "reason", "raw_record"])
    # Vectorised: a bad file can hold millions of rejected rows, most with a single problem.
    found = problems.assign(text=problems.column_name + ": " + problems.reason).sort_values("idx", kind="stable")
    found = found.drop_duplicates(["idx", "text"])
    single = ~found.idx.duplicated(keep=False)
    merged = found[single].set_index("idx")[["column_name", "text"]]
    if not single.all():
        several = found[~single].groupby("idx", sort=False)
        merged = pd.concat([merged, pd.DataFrame({
            "column_name": several.column_name.agg(lambda s: ",".join(dict.fromkeys(s))),
            "text": several.text.agg("; ".join)})])
    merged = merged.sort_index()
    idx = merged.index.to_numpy()
    # ISO dates: a Parquet date shows as the date it is, not as epoch milliseconds.
    records = raw.loc[idx].to_json(orient="records", lines=True, default_handler=str, date_format="iso")
    return pd.DataFrame({
        "source_file": source,
        # 1-based data row, header excluded (the CSV line number is this plus one): raw is indexed by
        # 0-based data row, with gaps where read_raw took out rows that did not fit the header.
        "row_number": idx.astype(int) + 1,
        "column_name": merged.column_name.to_numpy(),
        "reason": merged.text.to_numpy(),
        "raw_record": [line.replace("\\/", "/") for line in records.splitlines()],
    })


def load_inputs(data_dir: Path, *, as_of: date, stored: Mapping[str, set[str] | None] | None = None,
                stage: Callable[[str, pd.DataFrame], None] | None = None,
                stage_file: Callable[[str, Path], int | None] | None = None,
                chunk_rows: int | None = None, in_place: bool = False) -> ImportResult:
    """Read and validate every input file in `data_dir`; dimension files first so references check.

    `stored` names the tables the warehouse already holds rows of (with their ids, for tables
    keyed by one column): a folder may leave those files out, as a daily drop of sales and stock
    does, and their stored rows stay and are referenced. With `stage`, a sales Parquet file of more than `chunk_rows` rows is read and validated `chunk_rows` at a time and
    each chunk's valid rows go to `stage(table, rows)` (`ImportResult.staged`), not to `frames`;
    a file with no bad row goes whole to `stage_file(table, path)` when that stages it (returns
    the rows staged, or None to have it staged by chunks), or, with `in_place` (the warehouse
    reads the file itself), is not staged at all: `StagedRows.file` names it for the load.
    """
    stored = stored or {}
    chunk_rows = chunk_rows or CHUNK_ROWS
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist", _file_problem(str(data_dir), "folder does not exist"))
    frames: dict[str, pd.DataFrame] = {}
    quarantined: list[pd.DataFrame] = []
    reports: list[FileReport] = []
    valid_ids: dict[str, set[str]] = {}
    kept: set[str] = set()
    result_staged: dict[str, StagedRows] = {}
    for table in INPUT_TABLES:
        expected = schema.table(table).column_names
        frames[table] = pd.DataFrame(columns=expected)
        paths = find_input_files(data_dir, table)
        if not paths and table in stored:
            kept.add(table)
            if stored[table] is not None:
                valid_ids[table] = set(stored[table] or ())
            reports.append(FileReport(table, str(data_dir / f"{table}.csv"), 0, 0, 0))
            continue
        if not paths:
            if table in OPTIONAL_TABLES:
                reports.append(FileReport(table, str(data_dir / f"{table}.csv"), 0, 0, 0))
                continue
            quarantined.append(_file_problem(f"{table}.csv", f"file missing: expected {table}.csv or {table}.parquet"))
            reports.append(FileReport(table, str(data_dir / f"{table}.csv"), 0, 0, 0, ["file missing"]))
            continue
        path = paths[-1] if len(paths) > 1 else paths[0]  # the .csv name when both are there
        if stage is not None and len(paths) == 1 and table in STAGED_TABLES and path.suffix == ".parquet" \
                and _parquet_rows(path) > chunk_rows:
            problem = _header_problem(_parquet_header(path), expected)
            if problem is None:
                staged, q, rows_in = _stage_parquet(table, path, valid_ids, as_of, stage, chunk_rows, stage_file,
                                                    in_place)
                result_staged[table] = staged
                _record_staged(table, path, rows_in, staged.rows, q, quarantined, reports)
                continue
        if stage is not None and len(paths) == 1 and table in STAGED_TABLES and path.suffix == ".csv" \
                and path.stat().st_size > chunk_rows * CSV_ROW_BYTES:
            try:
                streamed = _stage_csv(table, path, expected, valid_ids, as_of, stage, chunk_rows)
            except FileProblem as exc:  # as a whole-file read that fails: the import stops, naming the file
                raise InputError(f"{path}: {exc}", _combine([*quarantined, _file_problem(path.name, str(exc))])) \
                    from exc
            if streamed is not None:
                staged, q, rows_in = streamed
                result_staged[table] = staged
                _record_staged(table, path, rows_in, staged.rows, q, quarantined, reports)
                continue
        raw: RawFile | None = None
        try:
            if len(paths) > 1:
                raise FileProblem(f"both {' and '.join(sorted(p.name for p in paths))} present: keep one")
            raw = read_raw(path)
            for column in OPTIONAL_COLUMNS.get(table, ()):
                if column not in raw.header:  # left out: every row's value is empty
                    raw.frame[column] = None
                    raw.header.append(column)
            problem = _header_problem(raw.header, expected)
        except FileProblem as exc:
            problem = str(exc)
        except Exception as exc:  # any other parser error makes the whole file unusable too
            problem = f"cannot read file: {exc}"
        if problem is not None:
            rows_in = raw.rows_in if raw is not None else 0
            if table in OPTIONAL_TABLES:
                # An optional file never stops the run: it is left out (what the warehouse holds
                # stays), and the record says so.
                reason = f"{path.name} skipped: {problem}"
                kept.add(table)
            elif raw is None:
                raise InputError(f"{path}: {problem}", _combine([*quarantined, _file_problem(path.name, problem)]))
            else:
                reason = problem  # the run stops below, once every file's problems are known
            quarantined.append(_file_problem(path.name, reason, _header_columns(raw, expected)))
            reports.append(FileReport(table, str(path), rows_in, 0, rows_in, [reason]))
            log.warning("%s: %s", path, problem)
            continue
        valid, problems = validate_table(table, raw.frame, valid_ids, as_of, raw.problems)
        q = _combine([raw.rejected, _quarantine_rows(path.name, raw.frame, problems)])
        if len(q):
            q = q.sort_values("row_number", kind="stable", ignore_index=True)
        quarantined.append(q)
        frames[table] = valid.reset_index(drop=True)
        key = CONTRACTS[table].key
        if len(key) == 1:
            valid_ids[table] = set(valid[key[0]].astype(str))
        messages = [f"{path.name} row {r.row_number}: {r.reason}" for r in q.head(20).itertuples()]
        reports.append(FileReport(table, str(path), raw.rows_in, len(valid), len(q), messages))
        for message in messages:
            log.warning(message)
    quarantine = _combine(quarantined)
    empty = [t for t in REQUIRED_NONEMPTY if frames[t].empty and t not in kept
             and not (t in result_staged and result_staged[t].rows)]
    if empty:
        details = "; ".join(f"{r.path}: {', '.join(r.problems[:3]) or 'no valid rows'}"
                            for r in reports if r.table in empty)
        raise InputError(f"cannot plan: no valid rows in {', '.join(empty)} ({details})", quarantine)
    return ImportResult(frames, quarantine, reports, kept, result_staged)


def _parquet_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # unreadable: the whole-file path reports it
        return 0


def _parquet_header(path: Path) -> list[str]:
    return [name.strip() for name in pq.ParquetFile(path).schema_arrow.names]


def _stage_parquet(table: str, path: Path, valid_ids: dict[str, set[str]], as_of: date,
                   stage: Callable[[str, pd.DataFrame], None], chunk_rows: int,
                   stage_file: Callable[[str, Path], int | None] | None = None, in_place: bool = False
                   ) -> tuple[StagedRows, pd.DataFrame, int]:
    """Validate a large Parquet file `chunk_rows` rows at a time (the same checks and messages as a
    whole file, `_stage_chunks`) and hand each chunk's valid rows to `stage`; a file with no bad
    row is checked in one pass and staged whole, or left for the warehouse to read in place."""
    clean = _clean_file(path, valid_ids, as_of, chunk_rows)
    if clean is not None and in_place:
        clean.file = path
        return clean, _combine([]), clean.rows
    if clean is not None:
        whole = stage_file(table, path) if stage_file is not None else None
        if whole is None:
            return _stage_clean(table, path, clean, stage, chunk_rows)
        if whole != clean.rows:  # the file changed between the check and the load
            raise InputError(f"{path}: the file changed while it was read ({clean.rows} rows, then {whole})",
                             _file_problem(path.name, "the file changed while it was read"))
        return clean, _combine([]), whole
    names = _unique_names(_parquet_header(path))

    def chunks() -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        offset = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            chunk, problems = _plain_columns(pa.Table.from_batches([batch]).rename_columns(names))
            frame = _to_pandas(chunk).set_axis(pd.RangeIndex(offset, offset + chunk.num_rows), axis=0)
            offset += chunk.num_rows
            yield frame, problems.assign(idx=frame.index[problems.idx.to_numpy(dtype=int)])

    staged, q, rows_in = _stage_chunks(table, path.name, chunks(), valid_ids, as_of, stage)
    return staged, q, rows_in


def _stage_chunks(table: str, source: str, chunks: Iterator[tuple[pd.DataFrame, pd.DataFrame]],
                  valid_ids: dict[str, set[str]], as_of: date, stage: Callable[[str, pd.DataFrame], None]
                  ) -> tuple[StagedRows, pd.DataFrame, int]:
    """Validate each chunk (a frame indexed by 0-based data row, with the problems found reading
    it) as a whole file would be and hand its valid rows to `stage`. A key repeated in a later
    chunk is found with the keys of the earlier chunks' valid rows, kept as sorted int64 codes
    (8 bytes a row), and quarantined as a duplicate like one within a chunk. Returns the staged
    rows, the quarantine and the rows read."""
    contract, day_col = CONTRACTS[table], STAGED_TABLES[table]
    key = list(contract.key)
    stores = {s: i for i, s in enumerate(sorted(valid_ids.get("stores", ())))}
    products = {p: i for i, p in enumerate(sorted(valid_ids.get("products", ())))}
    seen: list[np.ndarray] = []
    staged, quarantined, rows_in = StagedRows(), [], 0
    for frame, problems in chunks:
        rows_in += len(frame)
        valid, found = validate_table(table, frame, valid_ids, as_of, problems)
        codes = _key_codes(valid, day_col, stores, products)
        repeated = np.zeros(len(valid), dtype=bool)
        for earlier in seen:
            pos = np.searchsorted(earlier, codes).clip(max=len(earlier) - 1)
            repeated |= earlier[pos] == codes
        if repeated.any():
            found = pd.concat([found, _problems_frame(valid.index[repeated], ",".join(key),
                                                      "duplicate key (" + ", ".join(key) + ")")], ignore_index=True)
            valid = valid[~repeated]
            codes = codes[~repeated]
        seen.append(np.sort(codes))
        quarantined.append(_quarantine_rows(source, frame, found))
        if len(valid):
            days = valid[day_col]
            first, last = days.min().date(), days.max().date()
            staged.first_day = first if staged.first_day is None else min(staged.first_day, first)
            staged.last_day = last if staged.last_day is None else max(staged.last_day, last)
            stage(table, valid.reset_index(drop=True))
            staged.rows += len(valid)
        del frame, valid
    q = _combine(quarantined)
    if len(q):
        q = q.sort_values("row_number", kind="stable", ignore_index=True)
    return staged, q, rows_in


# A sales CSV file larger than this many bytes a row times the chunk's rows is read in blocks of
# that size (about `chunk_rows` rows: a sales row is 35 to 45 bytes) by pyarrow's streaming reader.
CSV_ROW_BYTES = 40


def _stage_csv(table: str, path: Path, expected: list[str], valid_ids: dict[str, set[str]], as_of: date,
               stage: Callable[[str, pd.DataFrame], None], chunk_rows: int
               ) -> tuple[StagedRows, pd.DataFrame, int] | None:
    """A large CSV file read block by block (pyarrow's streaming reader, every column as bytes as
    `read_raw` reads a whole file) and validated chunk by chunk (`_stage_chunks`): the same rows
    accepted and quarantined, with the same file, row, field and reason, as a whole-file read.
    None when the header lacks a column (the whole-file read reports it). Raises FileProblem when
    the file as a whole cannot be read, as `read_raw` does; rows staged by then are never loaded."""
    with path.open("rb") as f:
        start = f.read(2)
    encoding = "utf-16" if start in _UTF16_BOMS else "utf-8-sig"
    raw_names, has_rows = _csv_header(path, encoding)
    header = [name.strip() for name in raw_names]
    missing_optional = [c for c in OPTIONAL_COLUMNS.get(table, ()) if c not in header]
    if _header_problem(header + missing_optional, expected) is not None or not has_rows:
        return None
    names = _unique_names(header)
    ragged: list[pacsv.InvalidRow] = []

    def on_ragged_row(row: pacsv.InvalidRow) -> str:
        ragged.append(row)
        return "skip"

    def check_quotes() -> None:
        # A quote that never closes swallows the rest of the file into one value (or one row of
        # the wrong length): the rows after it cannot be told apart (one pass over the file, once).
        opened = _unclosed_quote(path, encoding)
        if opened is not None:
            where = "the header" if opened == 0 else f"data row {opened}"
            raise FileProblem(f"a quote opened in {where} is never closed, so the rows after it cannot be told "
                              "apart")

    def chunks() -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        position = 0  # the next 0-based data row a parsed row can be
        skipped: list[int] = []  # data rows that did not fit the header, not yet passed
        checked_quotes = False
        with _undecodable_rows() as undecodable:
            try:
                reader = pacsv.open_csv(
                    path,
                    read_options=pacsv.ReadOptions(use_threads=False, block_size=max(chunk_rows * CSV_ROW_BYTES, 4096),
                                                   encoding="utf16" if encoding == "utf-16" else "utf8"),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged_row),
                    convert_options=pacsv.ConvertOptions(column_types={n: pa.binary() for n in raw_names},
                                                         strings_can_be_null=True, null_values=[""]))
                if reader.schema.names != raw_names:
                    raise FileProblem("the header row cannot be read (check the quotes in it)")
                seen_ragged = 0
                for batch in reader:
                    new_ragged = ragged[seen_ragged:]
                    seen_ragged = len(ragged)
                    if any(row.number is None for row in new_ragged):
                        raise FileProblem(f"{len(ragged)} rows do not match the header, and their row numbers "
                                          "are unknown")
                    skipped.extend(row.number - 2 for row in new_ragged)  # the header is line 1
                    chunk = pa.Table.from_batches([batch])
                    if not checked_quotes and (
                            any(pc.any(pc.match_substring_regex(col, "[\r\n]")).as_py() for col in chunk.columns)
                            or any("\n" in row.text or "\r" in row.text for row in new_ragged)):
                        checked_quotes = True
                        check_quotes()
                    chunk, problems = _plain_columns(chunk.rename_columns(names))
                    # This block's rows take the next data rows that are not rows skipped for their length.
                    pending = np.array(sorted(r for r in skipped if r >= position), dtype=np.int64)
                    index = np.delete(np.arange(position, position + chunk.num_rows + len(pending)),
                                      pending - position)[:chunk.num_rows]
                    position = int(index[-1]) + 1 if len(index) else position
                    skipped[:] = [r for r in skipped if r >= position]
                    frame = _to_pandas(chunk).set_axis(pd.Index(index), axis=0)
                    for column in missing_optional:
                        frame[column] = None
                    yield frame, problems.assign(idx=index[problems.idx.to_numpy(dtype=int)])
            except pa.ArrowInvalid as exc:
                if "straddl" in str(exc):  # a value longer than a block: most likely a quote never closed
                    check_quotes()
                hint = (" (a row with a different number of fields than the header, which is also not UTF-8 "
                        "text: save the file as UTF-8)") if undecodable else ""
                raise FileProblem(f"cannot read file: {exc}{hint}") from exc
        # Rows of the wrong length found in the last block, after the last batch.
        if not checked_quotes and any("\n" in row.text or "\r" in row.text for row in ragged):
            check_quotes()
        if any(row.number is None for row in ragged):
            raise FileProblem(f"{len(ragged)} rows do not match the header, and their row numbers are unknown")

    staged, q, rows_in = _stage_chunks(table, path.name, chunks(), valid_ids, as_of, stage)
    rejected = pd.DataFrame({
        "source_file": path.name, "row_number": [row.number - 1 for row in ragged],
        "column_name": ",".join(header),
        "reason": [f"{row.actual_columns} fields, the header has {row.expected_columns}"
                   + (" (a quote is not closed)" if row.text.count('"') % 2 else "") for row in ragged],
        "raw_record": [json.dumps(row.text) for row in ragged],
    }) if ragged else _combine([])
    q = _combine([rejected, q])
    if len(q):
        q = q.sort_values("row_number", kind="stable", ignore_index=True)
    return staged, q, rows_in + len(ragged)


# Arrow types a sales file has when it was written typed (by retailopt generate-sample, say).
_TYPED_SALES = {"sale_date": pa.date32(), "store_id": pa.string(), "product_id": pa.string(), "units": pa.int64(),
                "price": pa.float64(), "on_promotion": pa.bool_()}


def _clean_file(path: Path, valid_ids: dict[str, set[str]], as_of: date, chunk_rows: int) -> StagedRows | None:
    """The days of a typed sales Parquet file with no bad row, checked in one pass by an in-memory
    DuckDB (`sql/ingest/sales_file_check.sql`, streaming over the file); None when a column is
    not of its plain type or any row breaks a rule (the row-by-row validation then reports it)."""
    import duckdb

    from retailopt import sqlfiles
    from retailopt.warehouse.duck import scan_parquet
    from retailopt.contracts import ID_PATTERN, MAX_UNITS

    arrow_schema = pq.ParquetFile(path).schema_arrow
    if list(arrow_schema.names) != list(_TYPED_SALES) or any(
            arrow_schema.field(name).type != kind for name, kind in _TYPED_SALES.items()):
        return None
    conn = duckdb.connect(":memory:", config={"memory_limit": "512MB", "threads": 2})
    try:
        scan_parquet(conn, "file_rows", path)
        for name, table in (("known_stores", "stores"), ("known_products", "products")):
            conn.register(name, pa.table({"id": pa.array(sorted(valid_ids.get(table, ())), pa.string())}))
        (statement,) = sqlfiles.to_duckdb(sqlfiles.read_sql("ingest/sales_file_check.sql"))
        rows_in, bad, first, last = conn.execute(statement, {
            "as_of": as_of, "max_units": MAX_UNITS, "bad_id_chars": ID_PATTERN}).fetchone()
    finally:
        conn.close()
    if bad or not rows_in or _has_repeated_key(path, valid_ids, chunk_rows):
        return None
    return StagedRows(rows=int(rows_in), first_day=first, last_day=last, checked_in_sql=True)


def _has_repeated_key(path: Path, valid_ids: dict[str, set[str]], chunk_rows: int) -> bool:
    """Whether a (day, store, product) key occurs twice in a file whose ids are all known. A file
    whose keys rise strictly in one of the usual orders (by day, store and product, or by store,
    product and day: how exports and `generate-sample` write them) has none, which one streaming
    pass shows; any other file's keys are sorted once, as one int64 each (8 bytes a row: 3 GB for
    the 380 million rows of 500 stores x 2,000 products)."""
    stores = pa.array(sorted(valid_ids.get("stores", ())), pa.string())
    products = pa.array(sorted(valid_ids.get("products", ())), pa.string())
    n_stores, n_products = max(1, len(stores)), max(1, len(products))

    def key_codes() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """(day, store code, product code) a batch; None at an unknown id."""
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows,
                                                       columns=["sale_date", "store_id", "product_id"]):
            s = pc.index_in(batch.column(1), value_set=stores)
            p = pc.index_in(batch.column(2), value_set=products)
            if s.null_count or p.null_count:  # an unknown id: not clean (the check counts it too)
                yield None
                return
            days = batch.column(0).cast(pa.int32()).to_numpy().astype(np.int64) + 200_000  # >= 0 from 1678 on
            yield days, s.to_numpy().astype(np.int64), p.to_numpy().astype(np.int64)

    # Day codes stay under 2**20 until the year 2500 (the contract stops at today).
    orders = {"day first": lambda d, s, p: (d * n_stores + s) * n_products + p,
              "day last": lambda d, s, p: ((s * n_products + p) << 20) + d}
    rising, last = set(orders), dict.fromkeys(orders, -1)
    for parts in key_codes():
        if parts is None:
            return True
        for name in list(rising):
            codes = orders[name](*parts)
            if len(codes) and (codes[0] <= last[name] or bool((codes[1:] <= codes[:-1]).any())):
                rising.discard(name)
            elif len(codes):
                last[name] = int(codes[-1])
        if not rising:
            break
    if rising:
        return False
    chunks = []
    for parts in key_codes():
        if parts is None:
            return True
        chunks.append(orders["day first"](*parts))
    if not chunks:
        return False
    keys = np.concatenate(chunks)
    del chunks
    keys.sort()
    return bool((keys[1:] == keys[:-1]).any())


def _stage_clean(table: str, path: Path, clean: StagedRows, stage: Callable[[str, pd.DataFrame], None],
                 chunk_rows: int) -> tuple[StagedRows, pd.DataFrame, int]:
    """Stage a file `_clean_file` passed, `chunk_rows` at a time, typed as the validation types it."""
    staged = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        chunk = pa.Table.from_batches([batch]).rename_columns(list(_TYPED_SALES))
        frame = pd.DataFrame({
            "sale_date": pd.to_datetime(chunk["sale_date"].to_numpy()).normalize(),
            "store_id": _to_pandas(pa.table({"v": pc.utf8_trim(chunk["store_id"], " ")}))["v"],
            "product_id": _to_pandas(pa.table({"v": pc.utf8_trim(chunk["product_id"], " ")}))["v"],
            "units": pd.array(chunk["units"].to_numpy(), dtype="Int64"),
            "price": chunk["price"].to_numpy(),
            "on_promotion": pd.array(chunk["on_promotion"].to_numpy(zero_copy_only=False), dtype="boolean"),
        })
        stage(table, frame)
        staged += len(frame)
    if staged != clean.rows:  # the file changed between the check and the read
        raise InputError(f"{path}: the file changed while it was read ({clean.rows} rows, then {staged})",
                         _file_problem(path.name, "the file changed while it was read"))
    return clean, _combine([]), staged


def _key_codes(valid: pd.DataFrame, day_col: str, stores: dict[str, int], products: dict[str, int]) -> np.ndarray:
    """(day, store, product) as one int64 per row; ids are known (references were checked)."""
    days = (valid[day_col].to_numpy(dtype="datetime64[D]").astype(np.int64) + 200_000)  # >= 0 from 1678 on
    s = valid["store_id"].astype(str).map(stores).to_numpy(dtype=np.int64)
    p = valid["product_id"].astype(str).map(products).to_numpy(dtype=np.int64)
    return (days * max(1, len(stores)) + s) * max(1, len(products)) + p


def _header_problem(header: list[str], expected: list[str]) -> str | None:
    missing = [c for c in expected if c not in header]
    if missing:
        return f"missing columns: {', '.join(missing)} (expected {', '.join(expected)})"
    repeated = [c for c in expected if header.count(c) > 1]
    if repeated:
        return f"columns named twice in the header: {', '.join(repeated)}"
    return None


def _header_columns(raw: RawFile | None, expected: list[str]) -> str | None:
    """The columns a file-level problem is about (missing or repeated ones), if any."""
    if raw is None:
        return None
    named = [c for c in expected if raw.header.count(c) != 1]
    return ",".join(named) or None


def _combine(quarantined: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [q for q in quarantined if not q.empty]
    if not parts:
        return pd.DataFrame(columns=["source_file", "row_number", "column_name", "reason", "raw_record"])
    return pd.concat(parts, ignore_index=True)
