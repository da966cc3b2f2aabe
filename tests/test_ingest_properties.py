"""Import properties: whatever is done to one input file, the import answers with a result or an
InputError (nothing else), and every row read is accounted for, accepted or quarantined with file,
row and column."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailopt import schema
from retailopt.ingest import ImportResult, InputError, load_inputs
from retailopt.sample import generate_sample_chain

AS_OF = dt.date(2026, 11, 22)
CSV_FILES = ("stores.csv", "distribution_centers.csv", "products.csv", "vehicles.csv", "inventory.csv",
             "promotions.csv", "sales.csv")
# Bounded, without a deadline (each example imports a whole tiny folder), the same examples every run
# and no example database written into the checkout.
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def chains(tmp_path_factory) -> dict[str, Path]:
    """A tiny valid chain with sales as Parquet (as the sample writes it) and one with sales as CSV."""
    parquet = tmp_path_factory.mktemp("chain_parquet")
    generate_sample_chain(parquet, n_stores=2, n_products=3, days=28)
    products = pd.read_csv(parquet / "products.csv").product_id
    # A few promotions, so that the optional file has rows to lose.
    pd.DataFrame({"store_id": ["", "S001", "S002"], "product_id": products[:3],
                  "start_date": "2026-11-25", "end_date": "2026-12-01"}).to_csv(parquet / "promotions.csv",
                                                                                 index=False)
    as_csv = tmp_path_factory.mktemp("chain_csv")
    shutil.copytree(parquet, as_csv, dirs_exist_ok=True)
    pd.read_parquet(as_csv / "sales.parquet").to_csv(as_csv / "sales.csv", index=False)
    (as_csv / "sales.parquet").unlink()
    assert load_inputs(parquet, as_of=AS_OF).quarantine.empty  # the starting point is clean
    assert load_inputs(as_csv, as_of=AS_OF).quarantine.empty
    return {"parquet": parquet, "csv": as_csv}


# ---------------------------------------------------------------- the property


def check_import(folder: Path) -> ImportResult | None:
    """The import's result (None for an InputError), after checking the properties of either."""
    try:
        result = load_inputs(folder, as_of=AS_OF)
    except InputError as exc:  # the one allowed failure: a message, and the problems found so far
        assert str(exc)
        check_records(exc.quarantine)
        return None
    q = result.quarantine
    check_records(q)
    for report in result.reports:
        assert report.rows_in == report.rows_accepted + report.rows_quarantined, report
        assert len(result.frames[report.table]) == report.rows_accepted
        assert list(result.frames[report.table].columns) == schema.table(report.table).column_names
        mine = q[q.source_file == Path(report.path).name]
        if pd.to_numeric(mine.row_number).isna().any():  # a file-level problem: no row of it was taken
            assert report.rows_accepted == 0
            continue
        # One record per quarantined row, each naming a row of the file.
        assert len(mine) == mine.row_number.nunique() == report.rows_quarantined
        assert mine.row_number.between(1, report.rows_in).all()
    return result


def check_records(q: pd.DataFrame) -> None:
    assert list(q.columns) == ["source_file", "row_number", "column_name", "reason", "raw_record"]
    assert q.source_file.map(lambda s: isinstance(s, str) and s != "").all()
    assert q.reason.map(lambda s: isinstance(s, str) and s != "").all()
    numbers = pd.to_numeric(q.row_number)
    rows = q[numbers.notna()]
    assert (numbers.dropna() >= 1).all() and (numbers.dropna() % 1 == 0).all()
    assert rows.column_name.map(lambda s: isinstance(s, str) and s != "").all()
    for record in rows.raw_record:
        json.loads(record)  # the rejected row, as JSON


# ---------------------------------------------------------------- corruptions


NASTY_VALUES = st.one_of(
    st.sampled_from(["1e19", "-1e19", "9223372036854775807", "18446744073709551616", "9007199254740993",
                     "1e308", "1e309", "-0", "nan", "inf", "", " ", "NULL", "true", "2026-02-30",
                     "2026-01-01T00:00+05:00", "24:00", "23:59:59", "00:00", "9999-12-31", "0001-01-01",
                     "1_000", "0x10", "\u0661\u0662", "\ufeffS001", "S\u200b001", "S001 ", '"', '""', "a,b",
                     "\\N", "P0001", "DC01", "\x00", "-1"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(repr),
    # Any text, control characters, quotes, commas and line breaks included.
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12),
)


def _lines(content: bytes) -> list[bytes]:
    return content.split(b"\n")


@st.composite
def csv_corruption(draw, content: bytes) -> bytes:
    lines = _lines(content)
    kind = draw(st.sampled_from([
        "random bytes", "truncate", "empty", "no header", "duplicate rows", "swap header names",
        "swap columns", "nasty value", "extra fields", "fewer fields", "random line", "insert bytes",
        "latin-1", "utf-16", "bom", "quote", "nul"]))
    if kind == "random bytes":
        return draw(st.binary(max_size=300))
    if kind == "truncate":
        return content[:draw(st.integers(0, len(content)))]
    if kind == "empty":
        return b""
    if kind == "no header":
        return b"\n".join(lines[1:])
    if kind == "duplicate rows":
        picks = draw(st.lists(st.integers(1, max(1, len(lines) - 2)), min_size=1, max_size=4))
        return b"\n".join(lines + [lines[i] for i in picks if i < len(lines)])
    if kind in ("swap header names", "swap columns"):
        width = len(lines[0].split(b","))
        a, b = draw(st.integers(0, width - 1)), draw(st.integers(0, width - 1))
        swap = range(1 if kind == "swap header names" else 0, len(lines) if kind == "swap columns" else 1)
        for i in swap:
            fields = lines[i].split(b",")
            if max(a, b) < len(fields):
                fields[a], fields[b] = fields[b], fields[a]
                lines[i] = b",".join(fields)
        return b"\n".join(lines)
    if kind in ("nasty value", "extra fields", "fewer fields"):
        row = draw(st.integers(0, len(lines) - 1))
        fields = lines[row].split(b",")
        col = draw(st.integers(0, len(fields) - 1))
        if kind == "nasty value":
            fields[col] = draw(NASTY_VALUES).encode("utf-8")
        elif kind == "extra fields":
            fields += [draw(NASTY_VALUES).encode("utf-8")] * draw(st.integers(1, 3))
        else:
            del fields[col]
        lines[row] = b",".join(fields)
        return b"\n".join(lines)
    if kind == "random line":
        line = draw(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)).encode("utf-8")
        lines.insert(draw(st.integers(0, len(lines))), line)
        return b"\n".join(lines)
    if kind == "insert bytes":
        at = draw(st.integers(0, len(content)))
        return content[:at] + draw(st.binary(min_size=1, max_size=8)) + content[at:]
    if kind == "latin-1":  # a non-ASCII name, saved as Latin-1
        text = content.decode("utf-8")
        return text.replace("Market", "Marché").replace(",grocery,", ",épicerie,").encode("latin-1")
    if kind == "utf-16":
        return content.decode("utf-8").encode("utf-16")
    if kind == "bom":
        return b"\xef\xbb\xbf" + content
    at = draw(st.integers(0, len(content)))
    return content[:at] + (b'"' if kind == "quote" else b"\x00") + content[at:]


def _replace_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


@st.composite
def parquet_corruption(draw, table: pa.Table) -> pa.Table | bytes:
    """Either bytes for the file (broken Parquet) or a valid Parquet table with unexpected content."""
    kind = draw(st.sampled_from([
        "random bytes", "truncate", "huge number", "uint64", "text in a number", "drop column", "rename column",
        "duplicate rows", "dates as text", "dates with a time zone", "nasty text", "ids as numbers"]))
    if kind == "random bytes":
        return draw(st.binary(max_size=300))
    if kind == "truncate":
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue().to_pybytes()
        return data[:draw(st.integers(0, len(data) - 1))]
    row = draw(st.integers(0, table.num_rows - 1))
    column = draw(st.sampled_from(table.column_names))
    if kind == "huge number":
        values = table.column("units").to_pylist()
        values[row] = draw(st.sampled_from([1e20, -1e19, 2.0**63, 2.0**53 + 2, float("nan"), float("inf"), 0.5]))
        return _replace_column(table, "units", pa.array(values, pa.float64()))
    if kind == "uint64":
        values = table.column("units").to_pylist()
        values[row] = draw(st.integers(0, 2**64 - 1))
        return _replace_column(table, "units", pa.array([max(v, 0) for v in values], pa.uint64()))
    if kind in ("text in a number", "nasty text"):
        values = [None if v is None else str(v) for v in table.column(column).to_pylist()]
        values[row] = draw(NASTY_VALUES)
        return _replace_column(table, column, pa.array(values, pa.string()))
    if kind == "drop column":
        return table.drop_columns([column])
    if kind == "rename column":
        return table.rename_columns([draw(NASTY_VALUES) if c == column else c for c in table.column_names])
    if kind == "duplicate rows":
        return pa.concat_tables([table, table.slice(row, draw(st.integers(1, 5)))])
    if kind == "dates as text":
        values = [d.isoformat() for d in table.column("sale_date").to_pylist()]
        values[row] = draw(NASTY_VALUES)
        return _replace_column(table, "sale_date", pa.array(values, pa.string()))
    if kind == "dates with a time zone":
        stamps = pa.compute.cast(table.column("sale_date"), pa.timestamp("s"))
        return _replace_column(table, "sale_date", pa.compute.cast(stamps, pa.timestamp("s", tz="Asia/Tokyo")))
    return _replace_column(table, "store_id", pa.array(range(table.num_rows), pa.int64()))


# ---------------------------------------------------------------- the tests


def _copy(chain: Path) -> tuple[tempfile.TemporaryDirectory, Path]:
    holder = tempfile.TemporaryDirectory()
    folder = Path(holder.name) / "data"
    shutil.copytree(chain, folder)
    return holder, folder


@PROPERTY
@given(data=st.data(), sales=st.sampled_from(["parquet", "csv"]),
       name=st.sampled_from(CSV_FILES))
def test_any_corrupted_csv_file_gives_a_result_or_an_input_error(chains, data, sales, name):
    chain = chains[sales]
    if not (chain / name).exists():  # sales.csv in the Parquet chain: corrupt the other chain's
        chain, sales = chains["csv"], "csv"
    holder, folder = _copy(chain)
    with holder:
        path = folder / name
        path.write_bytes(data.draw(csv_corruption(path.read_bytes()), label=f"{name} becomes"))
        check_import(folder)


@PROPERTY
@given(data=st.data())
def test_any_corrupted_parquet_file_gives_a_result_or_an_input_error(chains, data):
    holder, folder = _copy(chains["parquet"])
    with holder:
        path = folder / "sales.parquet"
        corrupted = data.draw(parquet_corruption(pq.read_table(path)), label="sales.parquet becomes")
        if isinstance(corrupted, bytes):
            path.write_bytes(corrupted)
        else:
            pq.write_table(corrupted, path)
        check_import(folder)


@PROPERTY
@given(data=st.data())
def test_a_corrupted_promotions_file_never_stops_the_run(chains, data):
    """The optional file: whatever is in it, the run goes on (rows quarantined, or the file skipped)."""
    holder, folder = _copy(chains["parquet"])
    with holder:
        path = folder / "promotions.csv"
        path.write_bytes(data.draw(csv_corruption(path.read_bytes()), label="promotions.csv becomes"))
        result = check_import(folder)
        assert result is not None and len(result.frames["sales"]) > 0
