"""A large sales file validated in chunks and staged in the warehouse chunk by chunk: the same
rows accepted, the same rows quarantined with the same file, row, field and reason as a whole-file
read; a key repeated in a later chunk is still a duplicate; nothing stays in staging."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pyarrow as pa
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


def test_the_import_step_stages_chunks_and_loads_the_same_warehouse(bad_folder, tmp_path, monkeypatch):
    def imported(name: str, chunk_rows: int):
        monkeypatch.setattr(ingest, "CHUNK_ROWS", chunk_rows)
        settings = load_settings({"data_dir": str(tmp_path / name), "run_date": "2026-11-22"})
        wh = open_warehouse(settings)
        wh.ensure_schema()
        counts = pipeline.import_step(wh, settings, None, bad_folder)
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
                                                               "run_date": "2026-11-22"}), None, bad_folder)
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
