"""Input validation: every bad row is reported with file, row and column; valid rows go on."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from retailopt.contracts import OPTIONAL_TABLES
from retailopt.ingest import InputError, load_inputs
from retailopt.sample import generate_sample_chain

AS_OF = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def small_chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain")
    generate_sample_chain(path, n_stores=4, n_products=12, days=120)
    return path


@pytest.fixture
def chain(small_chain, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(small_chain, target)
    return target


def _reasons(result, source: str) -> pd.DataFrame:
    q = result.quarantine
    return q[q.source_file == source].set_index("row_number")


def test_clean_chain_is_accepted_whole(chain):
    result = load_inputs(chain, as_of=AS_OF)
    assert result.quarantine.empty
    for report in result.reports:
        assert report.rows_in == report.rows_accepted
        assert report.rows_in > 0 or report.table in OPTIONAL_TABLES  # a small chain may plan no promotion


def test_bad_rows_are_quarantined_with_file_row_and_column(chain):
    inventory = pd.read_csv(chain / "inventory.csv", dtype=str)
    inventory.loc[0, "on_hand"] = "-5"                     # negative quantity
    inventory.loc[1, "store_id"] = "S999"                   # unknown store
    inventory.loc[2, "on_order"] = "lots"                   # wrong type
    inventory.loc[3, "snapshot_date"] = "2031-01-01"        # in the future
    inventory = pd.concat([inventory, inventory.iloc[[5]]])  # duplicate key
    inventory.to_csv(chain / "inventory.csv", index=False)
    stores = pd.read_csv(chain / "stores.csv", dtype=str)
    stores.loc[1, "latitude"] = "123.0"                     # out of range
    stores.to_csv(chain / "stores.csv", index=False)

    result = load_inputs(chain, as_of=AS_OF)
    inv = _reasons(result, "inventory.csv")
    assert "on_hand" in inv.loc[1, "column_name"] and ">= 0" in inv.loc[1, "reason"]
    assert "store_id" in inv.loc[2, "column_name"] and "unknown id" in inv.loc[2, "reason"]
    assert "on_order" in inv.loc[3, "column_name"] and "not a valid INT64" in inv.loc[3, "reason"]
    assert "future" in inv.loc[4, "reason"]
    assert "duplicate key" in inv.loc[len(inventory), "reason"]
    st = _reasons(result, "stores.csv")
    assert "latitude" in st.loc[2, "reason"]
    # Rows of the rejected store are no longer valid references: quarantined too, with the reason.
    bad_store = pd.read_csv(chain / "stores.csv").store_id[1]
    assert (result.frames["inventory"].store_id != bad_store).all()
    for report in result.reports:
        assert report.rows_in == report.rows_accepted + report.rows_quarantined
    assert result.quarantine.raw_record.notna().all()
    # The raw row as it was in the file, as JSON (strings untouched, so "lots" and "S999" show).
    rows = inv.raw_record.map(json.loads)
    assert rows.loc[2]["store_id"] == "S999" and rows.loc[3]["on_order"] == "lots"


def test_missing_column_of_a_required_file_stops_with_a_clear_error(chain):
    products = pd.read_csv(chain / "products.csv").drop(columns=["unit_cost"])
    products.to_csv(chain / "products.csv", index=False)
    with pytest.raises(InputError, match=r"products.*missing columns: unit_cost"):
        load_inputs(chain, as_of=AS_OF)


def test_parquet_and_csv_are_equivalent(chain):
    sales = pd.read_parquet(chain / "sales.parquet")
    (chain / "sales.parquet").unlink()
    sales.to_csv(chain / "sales.csv", index=False)
    result = load_inputs(chain, as_of=AS_OF)
    assert len(result.frames["sales"]) == len(sales)


def test_promotions_are_validated_row_by_row(chain):
    promotions = pd.DataFrame([
        {"store_id": "", "product_id": "P0001", "start_date": "2026-11-25", "end_date": "2026-12-01"},
        {"store_id": "S001", "product_id": "P0002", "start_date": "2025-01-01", "end_date": "2025-01-07"},
        {"store_id": "S999", "product_id": "P0003", "start_date": "2026-11-25", "end_date": "2026-12-01"},
        {"store_id": "", "product_id": "P9999", "start_date": "2026-11-25", "end_date": "2026-12-01"},
        {"store_id": "S001", "product_id": "P0004", "start_date": "2026-12-08", "end_date": "2026-12-01"},
        {"store_id": "S001", "product_id": "P0005", "start_date": "next week", "end_date": "2026-12-01"},
        {"store_id": "S002", "product_id": "", "start_date": "2026-11-25", "end_date": "2026-12-01"},
    ])
    promotions.to_csv(chain / "promotions.csv", index=False)
    result = load_inputs(chain, as_of=AS_OF)
    accepted = result.frames["promotions"]
    # Past promotions are history, not an error; an empty store_id is a chain-wide promotion.
    assert accepted.product_id.tolist() == ["P0001", "P0002"]
    assert pd.isna(accepted.store_id[0]) and accepted.start_date[1] == pd.Timestamp("2025-01-01")
    q = _reasons(result, "promotions.csv")
    assert sorted(q.index) == [3, 4, 5, 6, 7]
    assert q.loc[3, "column_name"] == "store_id" and "unknown id (not in stores)" in q.loc[3, "reason"]
    assert q.loc[4, "column_name"] == "product_id" and "unknown id (not in products)" in q.loc[4, "reason"]
    assert q.loc[5, "column_name"] == "end_date" and "end_date before start_date" in q.loc[5, "reason"]
    assert q.loc[6, "column_name"] == "start_date" and "not a date" in q.loc[6, "reason"]
    assert q.loc[7, "column_name"] == "product_id" and "missing value" in q.loc[7, "reason"]
    assert json.loads(q.loc[5, "raw_record"])["product_id"] == "P0004"
    report = next(r for r in result.reports if r.table == "promotions")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (7, 2, 5)


def test_missing_promotions_file_is_no_problem(chain):
    (chain / "promotions.csv").unlink(missing_ok=True)
    result = load_inputs(chain, as_of=AS_OF)
    assert result.frames["promotions"].empty and list(result.frames["promotions"].columns) == [
        "store_id", "product_id", "start_date", "end_date"]
    assert result.quarantine.empty


# ---------------------------------------------------------------- faults found by probing (issue 18)


def _replace_line(path, line_number: int, text: str, encoding: str = "utf-8") -> None:
    """Put `text` in place of physical line `line_number` (1 = header) of a CSV file."""
    lines = path.read_bytes().split(b"\n")
    lines[line_number - 1] = text.encode(encoding) if isinstance(text, str) else text
    path.write_bytes(b"\n".join(lines))


def _line(path, line_number: int) -> str:
    return path.read_text(encoding="utf-8").split("\n")[line_number - 1]


def _file_level(result, source: str) -> pd.DataFrame:
    q = result.quarantine
    return q[(q.source_file == source) & q.row_number.isna()]


@pytest.mark.parametrize("value", ["1e19", "9223372036854775807", "-1e19", "18446744073709551616",
                                   "9007199254740993"])
def test_whole_numbers_beyond_the_int64_range_are_quarantined(chain, value):
    fields = _line(chain / "inventory.csv", 2).split(",")
    fields[3] = value  # on_hand
    _replace_line(chain / "inventory.csv", 2, ",".join(fields))
    result = load_inputs(chain, as_of=AS_OF)
    inv = _reasons(result, "inventory.csv")
    assert list(inv.index) == [1]
    assert inv.loc[1, "column_name"] == "on_hand" and "out of range" in inv.loc[1, "reason"]
    report = next(r for r in result.reports if r.table == "inventory")
    assert report.rows_in == report.rows_accepted + report.rows_quarantined and report.rows_quarantined == 1


def test_quantities_above_a_trillion_units_are_quarantined(chain):
    fields = _line(chain / "inventory.csv", 3).split(",")
    fields[5] = "5000000000000"  # max_capacity: 5e12 units
    _replace_line(chain / "inventory.csv", 3, ",".join(fields))
    inv = _reasons(load_inputs(chain, as_of=AS_OF), "inventory.csv")
    assert list(inv.index) == [2] and inv.loc[2, "column_name"] == "max_capacity"
    assert "<= 1000000000000" in inv.loc[2, "reason"]


@pytest.mark.parametrize("variant", ["float64", "uint64", "int64"])
def test_parquet_numbers_beyond_the_int64_range_are_quarantined(chain, variant):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(chain / "sales.parquet")
    units = table.column("units").to_numpy()
    if variant == "float64":
        values = pa.array(units.astype("float64"))
        values = pa.array([1e20, *values.to_pylist()[1:]], pa.float64())
    elif variant == "uint64":
        values = pa.array([2**64 - 1, *units[1:].tolist()], pa.uint64())
    else:
        values = pa.array([2**63 - 1, *units[1:].tolist()], pa.int64())
    table = table.set_column(table.schema.get_field_index("units"), "units", values)
    pq.write_table(table, chain / "sales.parquet")
    result = load_inputs(chain, as_of=AS_OF)
    sales = _reasons(result, "sales.parquet")
    assert list(sales.index) == [1] and sales.loc[1, "column_name"] == "units"
    assert "out of range" in sales.loc[1, "reason"]
    assert len(result.frames["sales"]) == table.num_rows - 1


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"\x00\xff\xfe\x80 garbage\n\"unclosed", "not UTF-8"),
    ("store_id,product_id,start_date,end_date\nS001,P0001,\"2026-11-25,2026-12-01\nS002,P0002,2026-11-25,2026-12-01\n"
     .encode(), "quote"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
    (b"start,end\n1,2\n", "missing columns: store_id, product_id, start_date, end_date"),
])
def test_a_bad_optional_file_is_skipped_with_a_file_level_record(chain, content, problem):
    (chain / "promotions.csv").write_bytes(content)
    result = load_inputs(chain, as_of=AS_OF)
    assert result.frames["promotions"].empty
    assert list(result.frames["promotions"].columns) == ["store_id", "product_id", "start_date", "end_date"]
    record = _file_level(result, "promotions.csv")
    assert len(record) == 1 and problem in record.reason.iloc[0]
    assert "promotions.csv" in record.reason.iloc[0]  # the reason alone tells which file was skipped
    assert not result.frames["sales"].empty  # the run goes on with everything else
    report = next(r for r in result.reports if r.table == "promotions")
    assert report.rows_accepted == 0 and report.problems


def test_vehicles_without_a_valid_row_stop_the_run(chain):
    vehicles = pd.read_csv(chain / "vehicles.csv", dtype=str)
    vehicles["depot_id"] = "DC99"  # every vehicle starts at a depot that does not exist
    vehicles.to_csv(chain / "vehicles.csv", index=False)
    with pytest.raises(InputError, match=r"no valid rows in vehicles"):
        load_inputs(chain, as_of=AS_OF)


def test_missing_vehicles_file_stops_the_run(chain):
    (chain / "vehicles.csv").unlink()
    with pytest.raises(InputError, match=r"vehicles.*file missing") as exc:
        load_inputs(chain, as_of=AS_OF)
    assert exc.value.quarantine.reason.str.contains("file missing").any()


def test_latin1_bytes_quarantine_their_rows_only(chain):
    fields = _line(chain / "products.csv", 3).split(",")
    fields[1] = "Caf\u00e9 Cr\u00e8me"
    _replace_line(chain / "products.csv", 3, ",".join(fields), encoding="latin-1")
    result = load_inputs(chain, as_of=AS_OF)
    products = _reasons(result, "products.csv")
    assert list(products.index) == [2] and products.loc[2, "column_name"] == "name"
    assert "UTF-8" in products.loc[2, "reason"]
    assert len(result.frames["products"]) == 11


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_utf8_with_bom_and_utf16_files_are_read(chain, encoding):
    text = (chain / "products.csv").read_text(encoding="utf-8").replace("P0001,", "P0001,Caf\u00e9 ", 1)
    (chain / "products.csv").write_bytes(text.encode(encoding))
    result = load_inputs(chain, as_of=AS_OF)
    assert result.quarantine.empty
    assert result.frames["products"].name.iloc[0].startswith("Caf\u00e9 ")


def test_ragged_rows_are_quarantined_with_their_row_number(chain):
    path = chain / "products.csv"
    _replace_line(path, 2, _line(path, 2) + ",extra,fields")        # more fields than the header
    _replace_line(path, 5, ",".join(_line(path, 5).split(",")[:4]))  # fewer fields
    result = load_inputs(chain, as_of=AS_OF)
    products = _reasons(result, "products.csv")
    assert list(products.index) == [1, 4]
    assert "10 fields" in products.loc[1, "reason"] and "4 fields" in products.loc[4, "reason"]
    assert products.column_name.notna().all()
    assert len(result.frames["products"]) == 10
    assert result.frames["products"].product_id.tolist()[:2] == ["P0002", "P0003"]  # columns did not shift
    report = next(r for r in result.reports if r.table == "products")
    assert (report.rows_in, report.rows_accepted, report.rows_quarantined) == (12, 10, 2)


def test_unclosed_quote_in_a_required_file_is_an_input_error_naming_it(chain):
    path = chain / "products.csv"
    fields = _line(path, 4).split(",")
    fields[1] = '"' + fields[1]
    _replace_line(path, 4, ",".join(fields))
    with pytest.raises(InputError, match=r"products\.csv.*quote"):
        load_inputs(chain, as_of=AS_OF)


def test_unclosed_quote_in_the_last_column_is_not_silently_accepted(chain):
    # The quote swallows the rest of the file into one value, and the row still has all its fields.
    path = chain / "products.csv"
    fields = _line(path, 4).split(",")
    fields[-1] = '"' + fields[-1]
    _replace_line(path, 4, ",".join(fields))
    with pytest.raises(InputError, match=r"products\.csv.*quote"):
        load_inputs(chain, as_of=AS_OF)


def test_nul_bytes_and_control_characters_in_text_are_quarantined(chain):
    path = chain / "products.csv"
    fields = _line(path, 2).split(",")
    fields[1] = "Lake\x00shore"
    _replace_line(path, 2, ",".join(fields))
    fields = _line(path, 3).split(",")
    fields[2] = "groc\x1bery"
    _replace_line(path, 3, ",".join(fields))
    products = _reasons(load_inputs(chain, as_of=AS_OF), "products.csv")
    assert list(products.index) == [1, 2]
    assert products.loc[1, "column_name"] == "name" and "control characters" in products.loc[1, "reason"]
    assert products.loc[2, "column_name"] == "category"


def test_header_only_required_file_stops_with_a_clear_error(chain):
    path = chain / "products.csv"
    path.write_text(_line(path, 1))  # no newline after the header either
    with pytest.raises(InputError, match=r"no valid rows in products"):
        load_inputs(chain, as_of=AS_OF)


def test_empty_required_file_is_an_input_error_naming_it(chain):
    (chain / "products.csv").write_bytes(b"")
    with pytest.raises(InputError, match=r"products\.csv.*empty") as exc:
        load_inputs(chain, as_of=AS_OF)
    assert exc.value.quarantine.source_file.tolist() == ["products.csv"]


@pytest.mark.parametrize("fault", ["vehicles", "garbage", "empty"])
def test_cli_exits_2_with_a_message_and_no_traceback(chain, tmp_path, capsys, fault):
    from retailopt.cli import main

    if fault == "vehicles":
        vehicles = pd.read_csv(chain / "vehicles.csv", dtype=str)
        vehicles["capacity_units"] = "0"
        vehicles.to_csv(chain / "vehicles.csv", index=False)
    elif fault == "garbage":
        (chain / "stores.csv").write_bytes(bytes(range(256)) * 4)
    else:
        (chain / "distribution_centers.csv").write_bytes(b"")
    code = main(["run", "--data", str(chain), "--data-dir", str(tmp_path / "work"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err + captured.out
    expected = {"vehicles": "vehicles", "garbage": "stores", "empty": "distribution_centers.csv"}[fault]
    assert captured.err.startswith("error: ") and expected in captured.err


@pytest.mark.parametrize("file, first, second", [
    ("stores.csv", "receiving_open", "receiving_close"),
    ("distribution_centers.csv", "open_time", "close_time"),
    ("vehicles.csv", "shift_start", "shift_end"),
])
def test_time_windows_that_end_before_they_open_are_quarantined(chain, file, first, second):
    frame = pd.read_csv(chain / file, dtype=str, keep_default_na=False)
    frame.loc[0, first], frame.loc[0, second] = "18:00:00", "07:30"
    frame.to_csv(chain / file, index=False)
    if file == "distribution_centers.csv":  # the only centre: the run stops, and says why
        with pytest.raises(InputError) as exc:
            load_inputs(chain, as_of=AS_OF)
        q = exc.value.quarantine
        rows = q[q.source_file == file].set_index("row_number")
    else:
        rows = _reasons(load_inputs(chain, as_of=AS_OF), file)
    assert list(rows.index) == [1]
    assert rows.loc[1, "column_name"] == second and f"{second} before {first}" in rows.loc[1, "reason"]


def test_csv_and_parquet_of_one_required_table_is_an_input_error(chain):
    pd.read_parquet(chain / "sales.parquet").to_csv(chain / "sales.csv", index=False)
    with pytest.raises(InputError, match=r"both sales\.csv and sales\.parquet present: keep one"):
        load_inputs(chain, as_of=AS_OF)


def test_csv_and_parquet_of_the_optional_promotions_skip_them(chain):
    promotions = pd.DataFrame([{"store_id": "S001", "product_id": "P0001", "start_date": "2026-11-25",
                                "end_date": "2026-12-01"}])
    promotions.to_csv(chain / "promotions.csv", index=False)
    promotions.to_parquet(chain / "promotions.parquet")
    result = load_inputs(chain, as_of=AS_OF)
    assert result.frames["promotions"].empty
    record = _file_level(result, "promotions.csv")
    assert len(record) == 1 and "both promotions.csv and promotions.parquet present" in record.reason.iloc[0]


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202a", "\u202e",
                                       "\u2066", "\u2069", "\u200e", "\u200f", "\x07", "\x00", "\u00a0", "\x85"])
def test_ids_with_invisible_or_control_characters_are_quarantined(chain, invisible):
    path = chain / "products.csv"
    fields = _line(path, 13).split(",")
    fields[0] = f"P{invisible}0012"
    _replace_line(path, 13, ",".join(fields))
    # An ordinary non-ASCII letter is a fine id.
    (chain / "products.csv").write_text(path.read_text(encoding="utf-8") + ",".join(
        ["Caf\u00e9-12", "Caf\u00e9 au lait", "grocery", "1.0", "2.0", "6", "", ""]) + "\n", encoding="utf-8")
    result = load_inputs(chain, as_of=AS_OF)
    products = _reasons(result, "products.csv")
    assert 12 in products.index and products.loc[12, "column_name"] == "product_id"
    assert "id contains invisible or control characters" in products.loc[12, "reason"]
    assert "Caf\u00e9-12" in set(result.frames["products"].product_id)


def test_ids_are_checked_in_references_too(chain):
    path = chain / "vehicles.csv"
    fields = _line(path, 2).split(",")
    fields[1] = "DC\u200b01"  # depot_id that looks like DC01
    _replace_line(path, 2, ",".join(fields))
    vehicles = _reasons(load_inputs(chain, as_of=AS_OF), "vehicles.csv")
    assert "id contains invisible or control characters" in vehicles.loc[1, "reason"]


def test_parquet_dates_with_a_time_zone_count_by_their_local_date(chain):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(chain / "sales.parquet")
    days = table.column("sale_date")
    # 23:30 in New York on each sale day is the next day in UTC, so UTC would shift every sale.
    local = pa.compute.add(pa.compute.cast(days, pa.timestamp("s")), pa.scalar(23 * 3600 + 1800, pa.duration("s")))
    stamps = pa.compute.assume_timezone(local, "America/New_York")
    pq.write_table(table.set_column(0, "sale_date", stamps), chain / "sales.parquet")
    result = load_inputs(chain, as_of=AS_OF)
    assert result.quarantine.empty
    assert result.frames["sales"].sale_date.tolist() == pd.to_datetime(days.to_pandas()).tolist()


def test_dates_with_a_utc_offset_are_quarantined_not_a_crash(chain):
    path = chain / "inventory.csv"
    fields = _line(path, 2).split(",")
    fields[0] = "2026-11-21T00:00:00+05:00"  # the other rows' dates have no offset
    _replace_line(path, 2, ",".join(fields))
    inv = _reasons(load_inputs(chain, as_of=AS_OF), "inventory.csv")
    assert list(inv.index) == [1] and inv.loc[1, "column_name"] == "snapshot_date"
    assert "not a date" in inv.loc[1, "reason"]


def test_unclosed_quote_before_many_rows_names_its_row(chain):
    # The swallowed rows make one value beyond the csv module's field size limit.
    path = chain / "products.csv"
    fields = _line(path, 3).split(",")
    fields[1] = '"' + fields[1]
    _replace_line(path, 3, ",".join(fields))
    with path.open("a") as f:
        f.writelines(f"X{i:06d},Filler product {i},grocery,1.0,2.0,6,1.0,1.0\n" for i in range(4000))
    with pytest.raises(InputError, match=r"products\.csv: a quote opened in data row 2 is never closed"):
        load_inputs(chain, as_of=AS_OF)


def test_a_column_named_twice_is_a_file_problem(chain):
    path = chain / "products.csv"
    _replace_line(path, 1, _line(path, 1) + ",price")
    for n in range(2, 14):
        _replace_line(path, n, _line(path, n) + ",0.01")
    with pytest.raises(InputError, match=r"products.*columns named twice in the header: price"):
        load_inputs(chain, as_of=AS_OF)


def test_a_date_beyond_what_pandas_holds_says_so(chain):
    path = chain / "inventory.csv"
    fields = _line(path, 2).split(",")
    fields[0] = "2999-01-01"
    _replace_line(path, 2, ",".join(fields))
    inv = _reasons(load_inputs(chain, as_of=AS_OF), "inventory.csv")
    assert "not a date (YYYY-MM-DD, years 1678 to 2261)" in inv.loc[1, "reason"]


def test_a_ragged_row_with_an_open_quote_says_so(chain):
    path = chain / "products.csv"
    with path.open("a") as f:
        f.write('P0099,"Open quote,grocery,1.0,2.0,6,1.0,1.0\n')  # the last row: nothing after it is lost
    result = load_inputs(chain, as_of=AS_OF)
    products = _reasons(result, "products.csv")
    assert list(products.index) == [13] and "a quote is not closed" in products.loc[13, "reason"]
    assert len(result.frames["products"]) == 12


def test_a_quarantined_parquet_row_shows_its_date_as_a_date(chain):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(chain / "sales.parquet")
    units = table.column("units").to_pylist()
    units[0] = -3
    pq.write_table(table.set_column(table.schema.get_field_index("units"), "units", pa.array(units, pa.int64())),
                   chain / "sales.parquet")
    record = json.loads(_reasons(load_inputs(chain, as_of=AS_OF), "sales.parquet").loc[1, "raw_record"])
    assert record["sale_date"].startswith(table.column("sale_date")[0].as_py().isoformat())
    assert record["units"] == -3
