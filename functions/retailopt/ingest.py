"""Reading and validating a folder of input files (CSV or Parquet) against the data contracts.

Every problem is reported with its file, row and column. Valid rows go on; invalid rows are
returned as quarantine records, so rows in = rows accepted + rows quarantined.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.parquet as pq

from retailopt import schema
from retailopt.contracts import CONTRACTS, INPUT_TABLES, OPTIONAL_TABLES, REQUIRED_NONEMPTY, pandera_schema

log = logging.getLogger(__name__)

_STR = "string[pyarrow]"
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
# Whole numbers must stay below this in magnitude: the largest range float64 holds exactly.
_WHOLE_LIMIT = 2**53


class InputError(Exception):
    """The input cannot be planned (a required file is missing, unreadable or has no valid row).

    `quarantine` holds the rejected rows and file-level problems found before giving up, in the
    quarantine table's columns, so a failed run can still show them.
    """

    def __init__(self, message: str, quarantine: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.quarantine = quarantine if quarantine is not None else _file_problem(None, message)


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


def find_input_file(data_dir: Path, table: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = data_dir / f"{table}{suffix}"
        if path.is_file():
            return path
    return None


def read_raw(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        # Arrow-backed strings avoid a slow round trip through Python objects on large files.
        return table.to_pandas(date_as_object=False, types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                             pa.large_string(): pd.StringDtype("pyarrow")}.get)
    # Read every column as text so a wrong type is reported per row instead of failing the file.
    return pd.read_csv(path, dtype=_STR, keep_default_na=False, na_values=[""], skipinitialspace=True)


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
            typed = pd.to_datetime(values, errors="coerce", format="ISO8601") if values.dtype != "datetime64[ns]" \
                else values
            typed = pd.Series(typed, index=raw.index).dt.normalize()
            bad = present & typed.isna()
            if bad.any():
                problems.append(_problems_frame(raw.index[bad], col.name, "not a date (YYYY-MM-DD)"))
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
        pandera_schema(table).validate(frame, lazy=True)
        return []
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cases = cases[cases["index"].notna()]
    reasons = cases["check"].astype(str).replace({"not_nullable": "missing value"})
    return [pd.DataFrame({"idx": cases["index"].astype(int).to_numpy(), "column_name": cases["column"].astype(str),
                          "reason": reasons.to_numpy()})]


def validate_table(table: str, raw: pd.DataFrame, valid_ids: dict[str, set[str]], as_of: date
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (valid typed rows, problems: idx/column_name/reason)."""
    contract = CONTRACTS[table]
    frame, problems = coerce(table, raw)
    problems += _pandera_problems(table, frame)
    for column, targets in contract.references.items():
        known = set().union(*(valid_ids.get(t, set()) for t in targets))
        bad = frame[column].notna() & ~frame[column].isin(known)
        if bad.any():
            problems.append(_problems_frame(frame.index[bad], column, f"unknown id (not in {' or '.join(targets)})"))
    for column in contract.not_after_run_date:
        bad = frame[column] > pd.Timestamp(as_of)
        if bad.any():
            problems.append(_problems_frame(frame.index[bad], column, f"date after {as_of.isoformat()} (in the future)"))
    for earlier, later in contract.date_order:
        bad = frame[later] < frame[earlier]
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
    records = raw.loc[idx].to_json(orient="records", lines=True, default_handler=str)
    return pd.DataFrame({
        "source_file": source,
        # 1-based data row, header excluded (the CSV line number is this plus one).
        "row_number": raw.index.get_indexer(idx) + 1,
        "column_name": merged.column_name.to_numpy(),
        "reason": merged.text.to_numpy(),
        "raw_record": [line.replace("\\/", "/") for line in records.splitlines()],
    })


def load_inputs(data_dir: Path, *, as_of: date) -> ImportResult:
    """Read and validate every input file in `data_dir`; dimension files first so references check."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist", _file_problem(str(data_dir), "folder does not exist"))
    frames: dict[str, pd.DataFrame] = {}
    quarantined: list[pd.DataFrame] = []
    reports: list[FileReport] = []
    valid_ids: dict[str, set[str]] = {}
    for table in INPUT_TABLES:
        expected = schema.table(table).column_names
        path = find_input_file(data_dir, table)
        if path is None:
            frames[table] = pd.DataFrame(columns=expected)
            if table in OPTIONAL_TABLES:
                reports.append(FileReport(table, str(data_dir / f"{table}.csv"), 0, 0, 0))
                continue
            quarantined.append(pd.DataFrame([{"source_file": f"{table}.csv", "row_number": None, "column_name": None,
                                              "reason": f"file missing: expected {table}.csv or {table}.parquet"}]))
            reports.append(FileReport(table, str(data_dir / f"{table}.csv"), 0, 0, 0, ["file missing"]))
            continue
        try:
            raw = read_raw(path)
        except Exception as exc:  # any parser error makes the whole file unusable
            reason = f"cannot read file: {exc}"
            raise InputError(f"{path}: {reason}",
                             _combine([*quarantined, _file_problem(path.name, reason)])) from exc
        missing = [c for c in expected if c not in raw.columns]
        if missing:
            reason = f"missing columns: {', '.join(missing)} (expected {', '.join(expected)})"
            quarantined.append(pd.DataFrame([{"source_file": path.name, "row_number": None,
                                              "column_name": ",".join(missing), "reason": reason}]))
            reports.append(FileReport(table, str(path), len(raw), 0, len(raw), [reason]))
            frames[table] = pd.DataFrame(columns=expected)
            log.warning("%s: %s", path, reason)
            continue
        raw = raw.reset_index(drop=True)
        valid, problems = validate_table(table, raw, valid_ids, as_of)
        q = _quarantine_rows(path.name, raw, problems)
        quarantined.append(q)
        frames[table] = valid.reset_index(drop=True)
        key = CONTRACTS[table].key
        if len(key) == 1:
            valid_ids[table] = set(valid[key[0]].astype(str))
        messages = [f"{path.name} row {r.row_number}: {r.reason}" for r in q.head(20).itertuples()]
        reports.append(FileReport(table, str(path), len(raw), len(valid), len(q), messages))
        for message in messages:
            log.warning(message)
    quarantine = _combine(quarantined)
    empty = [t for t in REQUIRED_NONEMPTY if frames[t].empty]
    if empty:
        details = "; ".join(f"{r.path}: {', '.join(r.problems[:3]) or 'no valid rows'}"
                            for r in reports if r.table in empty)
        raise InputError(f"cannot plan: no valid rows in {', '.join(empty)} ({details})", quarantine)
    return ImportResult(frames, quarantine, reports)


def _combine(quarantined: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [q for q in quarantined if not q.empty]
    if not parts:
        return pd.DataFrame(columns=["source_file", "row_number", "column_name", "reason", "raw_record"])
    return pd.concat(parts, ignore_index=True)
