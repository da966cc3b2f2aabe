"""A large sales file validated in chunks and staged in the warehouse chunk by chunk: the same
rows accepted, the same rows quarantined with the same file, row, field and reason as a whole-file
read; a key repeated in a later chunk is still a duplicate; nothing stays in staging."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from retailopt import ingest, pipeline
from retailopt.config import load_settings
from retailopt.ingest import load_inputs
from retailopt.sample import generate_sample_chain
from retailopt.warehouse import open_warehouse

KEY = ["sale_date", "store_id", "product_id"]
AS_OF = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain")
    generate_sample_chain(path, n_stores=3, n_products=6, days=60)
    return path


@pytest.fixture()
def bad_folder(chain, tmp_path):
    """The chain with a sales file holding bad rows in several chunks and keys repeated across them."""
    folder = tmp_path / "incoming"
    shutil.copytree(chain, folder)
    sales = pq.read_table(chain / "sales.parquet").to_pandas()
    sales["units"] = sales["units"].astype("float64")
    sales.loc[3, "units"] = -4.0  # chunk 1: negative
    sales.loc[25, "store_id"] = "S999"  # chunk 2: unknown store
    sales.loc[47, "sale_date"] = dt.date(2030, 1, 1)  # chunk 3: future
    sales.loc[48, "units"] = float("nan")  # missing value
    repeat_within = sales.iloc[[30]]  # a copy of row 30 right after it (same chunk)
    repeat_across = sales.iloc[[5]]  # a copy of row 5 (chunk 1) in a later chunk
    sales = pd.concat([sales.iloc[:31], repeat_within, sales.iloc[31:70], repeat_across, sales.iloc[70:]],
                      ignore_index=True)
    pq.write_table(pa.Table.from_pandas(sales, preserve_index=False), folder / "sales.parquet")
    return folder


def _by_row(q: pd.DataFrame) -> pd.DataFrame:
    return q[["source_file", "row_number", "column_name", "reason", "raw_record"]].sort_values(
        ["row_number", "column_name"]).reset_index(drop=True).astype({"row_number": "int64"})


def test_chunks_accept_and_quarantine_what_a_whole_file_read_does(bad_folder):
    whole = load_inputs(bad_folder, as_of=AS_OF)
    staged_rows: list[pd.DataFrame] = []
    chunked = load_inputs(bad_folder, as_of=AS_OF, chunk_rows=20,
                          stage=lambda table, rows: staged_rows.append(rows.assign(table=table)))
    assert "sales" in chunked.staged and chunked.frames["sales"].empty
    assert len(staged_rows) > 3 and all(len(r) <= 20 for r in staged_rows)
    staged = pd.concat(staged_rows, ignore_index=True)
    assert set(staged.table) == {"sales"}
    pd.testing.assert_frame_equal(
        staged.drop(columns="table").sort_values(KEY).reset_index(drop=True),
        whole.frames["sales"].sort_values(KEY).reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(_by_row(chunked.quarantine), _by_row(whole.quarantine))
    q = _by_row(chunked.quarantine)
    assert {(r.row_number, r.column_name) for r in q.itertuples()} >= {
        (4, "units"), (26, "store_id"), (49, "sale_date"), (50, "units"),  # after the copy at 32
        (32, "sale_date,store_id,product_id"), (72, "sale_date,store_id,product_id")}
    report = next(r for r in chunked.reports if r.table == "sales")
    assert report.rows_in == report.rows_accepted + report.rows_quarantined == len(pq.read_table(
        bad_folder / "sales.parquet"))
    info = chunked.staged["sales"]
    assert info.rows == len(staged) and info.first_day == staged.sale_date.min().date()
    assert info.last_day == staged.sale_date.max().date()


@pytest.mark.parametrize("clean", [False, True])
def test_the_import_step_stages_chunks_and_loads_the_same_warehouse(bad_folder, chain, tmp_path, monkeypatch,
                                                                    clean):
    folder = chain if clean else bad_folder

    def imported(name: str, chunk_rows: int):
        monkeypatch.setattr(ingest, "CHUNK_ROWS", chunk_rows)
        settings = load_settings({"data_dir": str(tmp_path / name), "run_date": "2026-11-22"})
        wh = open_warehouse(settings)
        wh.ensure_schema()
        counts = pipeline.import_step(wh, settings, None, folder)
        return wh, counts

    wh_whole, whole = imported("whole", 10**9)
    wh_chunks, chunks = imported("chunks", 25)
    try:
        sales = [w.query("SELECT * FROM `{dataset}.sales`").sort_values(KEY).reset_index(drop=True)
                 for w in (wh_whole, wh_chunks)]
        pd.testing.assert_frame_equal(sales[0], sales[1])
        assert chunks["sales"] == whole["sales"]
        assert int(wh_chunks.query("SELECT COUNT(*) AS n FROM `{dataset}.sales_staging`").n.iloc[0]) == 0
        q = [w.query("SELECT source_file, row_number, column_name, reason FROM `{dataset}.quarantine`")
             .sort_values(["row_number", "column_name"]).reset_index(drop=True) for w in (wh_whole, wh_chunks)]
        pd.testing.assert_frame_equal(q[0], q[1])
        # A second drop of the same file corrects stored rows through the MERGE path: nothing added.
        again = pipeline.import_step(wh_chunks, load_settings({"data_dir": str(tmp_path / "chunks"),
                                                               "run_date": "2026-11-22"}), None, folder)
        assert again["sales"]["added"] == 0 and again["sales"]["replaced"] == chunks["sales"]["accepted"]
        assert int(wh_chunks.query("SELECT COUNT(*) AS n FROM `{dataset}.sales_staging`").n.iloc[0]) == 0
    finally:
        wh_whole.close()
        wh_chunks.close()


def test_a_failed_import_leaves_nothing_in_staging(chain, tmp_path, monkeypatch):
    folder = tmp_path / "broken"
    shutil.copytree(chain, folder)
    (folder / "inventory.csv").write_text("", encoding="utf-8")  # a required file that is empty
    monkeypatch.setattr(ingest, "CHUNK_ROWS", 25)
    settings = load_settings({"data_dir": str(tmp_path / "w"), "run_date": "2026-11-22"})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        with pytest.raises(ingest.InputError, match="inventory"):
            pipeline.import_step(wh, settings, None, folder)
        assert int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales_staging`").n.iloc[0]) == 0
        assert int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0]) == 0
    finally:
        wh.close()


def test_a_clean_typed_file_is_checked_in_one_pass_and_staged_as_the_validation_types_it(chain):
    whole = load_inputs(chain, as_of=AS_OF)
    staged_rows: list[pd.DataFrame] = []
    chunked = load_inputs(chain, as_of=AS_OF, chunk_rows=40, stage=lambda table, rows: staged_rows.append(rows))
    info = chunked.staged["sales"]
    assert info.checked_in_sql and info.rows == len(whole.frames["sales"]) and chunked.quarantine.empty
    staged = pd.concat(staged_rows, ignore_index=True).sort_values(KEY).reset_index(drop=True)
    expected = whole.frames["sales"].sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(staged, expected, check_dtype=False)
    for column in ("store_id", "product_id"):
        assert staged[column].astype(str).tolist() == expected[column].astype(str).tolist()
    assert (info.first_day, info.last_day) == (expected.sale_date.min().date(), expected.sale_date.max().date())


def _typed(chain) -> pd.DataFrame:
    return pq.read_table(chain / "sales.parquet").to_pandas()


BREAKS = {
    "negative units": lambda t: t.assign(units=t.units.where(t.index != 7, -1)),
    "units over the limit": lambda t: t.assign(units=t.units.where(t.index != 7, 10**12 + 1)),
    "unknown store": lambda t: t.assign(store_id=t.store_id.where(t.index != 7, "S999")),
    "future day": lambda t: t.assign(sale_date=t.sale_date.where(t.index != 7, dt.date(2030, 1, 1))),
    "before 1678": lambda t: t.assign(sale_date=t.sale_date.where(t.index != 7, dt.date(1500, 1, 1))),
    "repeated key": lambda t: pd.concat([t, t.iloc[[3]]], ignore_index=True),
    "no-break space in an id": lambda t: t.assign(store_id=t.store_id.where(t.index != 7, t.store_id[7] + "\u00a0")),
    "tab before an id": lambda t: t.assign(product_id=t.product_id.where(t.index != 7, "\t" + t.product_id[7])),
    "blank id": lambda t: t.assign(product_id=t.product_id.where(t.index != 7, "   ")),
    "nan price": lambda t: t.assign(price=t.price.where(t.index != 7, float("nan"))),
    "infinite price": lambda t: t.assign(price=t.price.where(t.index != 7, float("inf"))),
    "negative price": lambda t: t.assign(price=t.price.where(t.index != 7, -0.5)),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_one_bad_row_sends_the_file_to_the_row_by_row_validation(chain, tmp_path, name):
    typed = BREAKS[name](_typed(chain))
    path = tmp_path / "sales.parquet"
    table = pa.Table.from_pandas(typed, preserve_index=False).cast(pa.schema(list(ingest._TYPED_SALES.items())))
    pq.write_table(table, path)
    ids = {"stores": {"S001", "S002", "S003"}, "products": set(_typed(chain).product_id)}
    assert ingest._clean_file(path, ids, AS_OF, 20) is None
    ok = tmp_path / "ok.parquet"
    pq.write_table(pa.Table.from_pandas(_typed(chain), preserve_index=False), ok)
    assert ingest._clean_file(ok, ids, AS_OF, 20) is not None  # the same check passes the clean file


def test_repeated_keys_are_found_in_any_order_of_the_file(chain, tmp_path):
    sales = _typed(chain)
    ids = {"stores": set(sales.store_id), "products": set(sales.product_id)}

    def repeated(frame: pd.DataFrame) -> bool:
        path = tmp_path / "sales.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        return ingest._has_repeated_key(path, ids, 25)  # several batches

    by_day = sales.sort_values(KEY, ignore_index=True)
    by_store = sales.sort_values(["store_id", "product_id", "sale_date"], ignore_index=True)
    shuffled = sales.sample(frac=1.0, random_state=3, ignore_index=True)
    # Rising keys (one streaming pass) and shuffled ones (the sort) without a repeat.
    assert not repeated(by_day) and not repeated(by_store) and not repeated(shuffled)
    for frame in (by_day, by_store, shuffled):
        # A key again right after itself (still in order, not rising) or far from it in a later batch.
        assert repeated(pd.concat([frame.iloc[:41], frame.iloc[[40]], frame.iloc[41:]], ignore_index=True))
        assert repeated(pd.concat([frame, frame.iloc[[2]]], ignore_index=True))
    # The last key of one batch repeated as the first of the next.
    assert repeated(pd.concat([by_day.iloc[:25], by_day.iloc[[24]], by_day.iloc[25:]], ignore_index=True))


def test_a_null_in_a_typed_column_or_an_untyped_column_is_not_clean(chain, tmp_path):
    ids = {"stores": {"S001", "S002", "S003"}, "products": set(_typed(chain).product_id)}
    table = pa.Table.from_pandas(_typed(chain), preserve_index=False)
    prices = table["price"].to_pylist()
    prices[5] = None
    with_null = table.set_column(table.schema.get_field_index("price"), "price", pa.array(prices, pa.float64()))
    pq.write_table(with_null, tmp_path / "null.parquet")
    assert ingest._clean_file(tmp_path / "null.parquet", ids, AS_OF, 20) is None
    as_text = table.set_column(table.schema.get_field_index("units"), "units", pc.cast(table["units"], pa.string()))
    pq.write_table(as_text, tmp_path / "text.parquet")
    assert ingest._clean_file(tmp_path / "text.parquet", ids, AS_OF, 20) is None


def test_a_clean_file_read_in_place_goes_straight_into_new_days_and_a_changed_file_loads_nothing(chain, tmp_path):
    from retailopt.loading import load_parquet_file, new_load_id

    folder = tmp_path / "incoming"
    shutil.copytree(chain, folder)
    result = load_inputs(folder, as_of=AS_OF, chunk_rows=40, stage=lambda table, rows: None, in_place=True)
    info = result.staged["sales"]
    assert info.file == folder / "sales.parquet" and info.checked_in_sql and result.quarantine.empty
    settings = load_settings({"data_dir": str(tmp_path / "w"), "run_date": "2026-11-22"})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        # The file loses rows after the check: the load says so and leaves no row behind.
        table = pq.read_table(info.file)
        pq.write_table(table.slice(0, table.num_rows - 3), info.file)
        with pytest.raises(ingest.InputError, match="changed while it was read"):
            load_parquet_file(wh, "sales", info.file, new_load_id(), rows=info.rows, first=info.first_day,
                              last=info.last_day)
        assert int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0]) == 0
        pq.write_table(table, info.file)
        counts = load_parquet_file(wh, "sales", info.file, new_load_id(), rows=info.rows, first=info.first_day,
                                   last=info.last_day)
        assert counts.as_dict() == {"added": table.num_rows, "replaced": 0, "deleted": 0}
        stored = wh.query("SELECT * FROM `{dataset}.sales`").sort_values(KEY).reset_index(drop=True)
        expected = load_inputs(chain, as_of=AS_OF).frames["sales"].sort_values(KEY).reset_index(drop=True)
        pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
        # Days already held: staged and merged (the same rows again replace, add nothing).
        again = load_parquet_file(wh, "sales", info.file, new_load_id(), rows=info.rows, first=info.first_day,
                                  last=info.last_day)
        assert again.as_dict() == {"added": 0, "replaced": table.num_rows, "deleted": 0}
        assert int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales_staging`").n.iloc[0]) == 0
    finally:
        wh.close()


@pytest.fixture()
def bad_csv_folder(chain, tmp_path):
    """The chain with its sales as a CSV file holding bad values, rows of the wrong length, bytes
    that are not UTF-8, a quoted value over two lines and keys repeated within and across blocks."""
    folder = tmp_path / "incoming-csv"
    shutil.copytree(chain, folder)
    (folder / "sales.parquet").unlink()
    sales = pq.read_table(chain / "sales.parquet").to_pandas()
    lines = [",".join(sales.columns)]
    for row in sales.itertuples(index=False):
        lines.append(f"{row.sale_date},{row.store_id},{row.product_id},{row.units},{row.price},{row.on_promotion}")
    lines[4] = lines[4].replace(",True", ",maybe").replace(",False", ",maybe")  # data row 3: not a boolean
    lines[26] = lines[26] + ",extra"  # data row 25: seven fields
    lines[40] = "2026-10-01,S001"  # data row 39: two fields
    lines[47] = lines[47].replace("S00", "S\u00e9", 1)  # data row 46: unknown store (é in UTF-8)
    lines[55] = lines[5]  # data row 54 repeats data row 4 (an earlier block)
    day, store, product, rest = lines[60].split(",", 3)
    lines[60] = f'{day},{store},"{product}\nX",{rest}'  # data row 60: a quoted id over two lines
    body = "\n".join(lines[:61] + [lines[61]] + lines[61:]) + "\n"  # data row 61 repeats row 60 (same block)
    raw = body.encode("utf-8")
    raw = raw.replace(lines[70].encode("utf-8"), lines[70].encode("utf-8").replace(b"S00", b"S\xff0", 1))
    (folder / "sales.csv").write_bytes(raw)
    return folder


def test_a_large_csv_streams_in_blocks_and_quarantines_what_a_whole_file_read_does(bad_csv_folder):
    whole = load_inputs(bad_csv_folder, as_of=AS_OF)
    staged_rows: list[pd.DataFrame] = []
    size = (bad_csv_folder / "sales.csv").stat().st_size
    chunked = load_inputs(bad_csv_folder, as_of=AS_OF, chunk_rows=20,
                          stage=lambda table, rows: staged_rows.append(rows))
    assert size > 20 * ingest.CSV_ROW_BYTES and "sales" in chunked.staged and chunked.frames["sales"].empty
    assert len(staged_rows) > 3 and max(len(r) for r in staged_rows) < len(whole.frames["sales"]) / 3
    staged = pd.concat(staged_rows, ignore_index=True)
    pd.testing.assert_frame_equal(staged.sort_values(KEY).reset_index(drop=True),
                                  whole.frames["sales"].sort_values(KEY).reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(_by_row(chunked.quarantine), _by_row(whole.quarantine))
    q = _by_row(chunked.quarantine)
    reasons = {(r.row_number, r.column_name): r.reason for r in q.itertuples()}
    # Row numbers count data rows from 1 (lines[k] is data row k); row 61 is inserted.
    assert "not a boolean" in reasons[(4, "on_promotion")]
    assert reasons[(26, "sale_date,store_id,product_id,units,price,on_promotion")].startswith("7 fields")
    assert reasons[(40, "sale_date,store_id,product_id,units,price,on_promotion")].startswith("2 fields")
    assert "unknown id" in reasons[(47, "store_id")] and "not UTF-8" in reasons[(71, "store_id")]
    assert "unknown id" in reasons[(60, "product_id")]
    assert "duplicate key" in reasons[(55, "sale_date,store_id,product_id")]
    assert "duplicate key" in reasons[(62, "sale_date,store_id,product_id")]
    assert set(q.source_file) == {"sales.csv"}
    report = next(r for r in chunked.reports if r.table == "sales")
    assert report.rows_in == report.rows_accepted + report.rows_quarantined == len(whole.frames["sales"]) + len(
        whole.quarantine[whole.quarantine.source_file == "sales.csv"].row_number.unique())


def test_a_large_csv_with_a_quote_never_closed_stops_the_import_naming_the_file_and_row(chain, tmp_path):
    folder = tmp_path / "csv"
    shutil.copytree(chain, folder)
    pq.read_table(folder / "sales.parquet").to_pandas().to_csv(folder / "sales.csv", index=False)
    (folder / "sales.parquet").unlink()
    path = folder / "sales.csv"
    lines = path.read_bytes().split(b"\n")
    lines[30] = lines[30].replace(b",S00", b',"S00', 1)  # data row 30 opens a quote that never closes
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ingest.InputError, match=r"sales\.csv.*quote opened in data row 30 is never closed"):
        load_inputs(folder, as_of=AS_OF, chunk_rows=20, stage=lambda table, rows: None)
    with pytest.raises(ingest.InputError, match=r"quote opened in data row 30 is never closed"):
        load_inputs(folder, as_of=AS_OF)  # as a whole-file read says


def test_the_import_step_loads_a_streamed_csv_as_the_same_parquet_file(chain, tmp_path, monkeypatch):
    folder = tmp_path / "csv"
    shutil.copytree(chain, folder)
    pq.read_table(folder / "sales.parquet").to_pandas().to_csv(folder / "sales.csv", index=False)
    (folder / "sales.parquet").unlink()
    monkeypatch.setattr(ingest, "CHUNK_ROWS", 25)
    stored = []
    for name, source in (("parquet", chain), ("csv", folder)):
        settings = load_settings({"data_dir": str(tmp_path / name), "run_date": "2026-11-22"})
        wh = open_warehouse(settings)
        try:
            wh.ensure_schema()
            counts = pipeline.import_step(wh, settings, None, source)
            stored.append(wh.query("SELECT * FROM `{dataset}.sales`").sort_values(KEY).reset_index(drop=True))
            assert int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales_staging`").n.iloc[0]) == 0
        finally:
            wh.close()
    assert counts["sales"]["accepted"] == counts["sales"]["rows_in"] == len(stored[0]) > 25
    pd.testing.assert_frame_equal(stored[0], stored[1])
