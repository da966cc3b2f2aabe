"""Incremental loads: a file adds or corrects its rows and deletes nothing else."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid

import pandas as pd
import pytest

from retailopt import pipeline
from retailopt.cli import main
from retailopt.config import load_settings
from retailopt.ingest import InputError
from retailopt.loading import DateRange, load_facts
from retailopt.sample import generate_sample_chain
from retailopt.warehouse import open_warehouse
from retailopt.warehouse.bigquery import BigQueryWarehouse

_SALES_KEY = ["sale_date", "store_id", "product_id"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain")
    generate_sample_chain(path, n_stores=3, n_products=6, days=60)
    return path


def _sales(wh) -> pd.DataFrame:
    out = wh.query("SELECT * FROM `{dataset}.sales`")
    out["sale_date"] = pd.to_datetime(out.sale_date)
    return out.sort_values(_SALES_KEY).reset_index(drop=True)


def _stray_rows(sales: pd.DataFrame) -> pd.DataFrame:
    """Two stored rows far apart (first and last day), with corrected units."""
    rows = pd.concat([sales[sales.sale_date == sales.sale_date.min()].head(1),
                      sales[sales.sale_date == sales.sale_date.max()].head(1)])
    return rows.assign(units=rows.units + 1000)


def _folder_with_sales(chain, tmp_path, sales: pd.DataFrame):
    folder = tmp_path / "incoming"
    shutil.copytree(chain, folder)
    for old in folder.glob("sales.*"):
        old.unlink()
    out = sales.assign(sale_date=sales.sale_date.dt.strftime("%Y-%m-%d"))
    out.to_csv(folder / "sales.csv", index=False)
    return folder


def test_a_two_row_file_changes_those_rows_and_nothing_else(chain, tmp_path):
    settings = load_settings({"data_dir": str(tmp_path / "work")})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        first = pipeline.import_step(wh, settings, None, chain)
        assert first["sales"]["added"] == first["sales"]["accepted"] > 0 and first["sales"]["replaced"] == 0
        before = _sales(wh)
        inventory_before = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.inventory`").n.iloc[0]
        stray = _stray_rows(before)
        counts = pipeline.import_step(wh, settings, None, _folder_with_sales(chain, tmp_path, stray))
        after = _sales(wh)
        assert counts["sales"] == {"rows_in": 2, "accepted": 2, "quarantined": 0, "added": 0, "replaced": 2,
                                   "deleted": 0}
        assert len(after) == len(before)
        merged = before.merge(after, on=_SALES_KEY, suffixes=("_before", "_after"))
        changed = merged[merged.units_before != merged.units_after]
        assert len(changed) == 2
        assert sorted(changed.units_after - changed.units_before) == [1000, 1000]
        # The same snapshot again: its rows are corrected in place, none added or lost.
        assert counts["inventory"]["replaced"] == inventory_before and counts["inventory"]["added"] == 0
        assert wh.query("SELECT COUNT(*) AS n FROM `{dataset}.inventory`").n.iloc[0] == inventory_before
    finally:
        wh.close()


def test_a_new_day_is_added_beside_the_history(chain, tmp_path):
    settings = load_settings({"data_dir": str(tmp_path / "work")})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        pipeline.import_step(wh, settings, None, chain)
        before = _sales(wh)
        new_day = before[before.sale_date == before.sale_date.max()].assign(
            sale_date=before.sale_date.max() + pd.Timedelta(days=1))
        settings = settings.replace(run_date=(before.sale_date.max() + pd.Timedelta(days=2)).date())
        counts = pipeline.import_step(wh, settings, None, _folder_with_sales(chain, tmp_path, new_day))
        assert counts["sales"]["added"] == len(new_day) and counts["sales"]["replaced"] == 0
        assert len(_sales(wh)) == len(before) + len(new_day)
    finally:
        wh.close()


def test_a_full_replacement_names_its_range(chain, tmp_path):
    settings = load_settings({"data_dir": str(tmp_path / "work")})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        pipeline.import_step(wh, settings, None, chain)
        before = _sales(wh)
        last = before.sale_date.max()
        week = DateRange((last - pd.Timedelta(days=6)).date(), last.date())
        in_week = before.sale_date >= pd.Timestamp(week.first)
        kept = before[in_week].iloc[::2]  # the file holds every other row of the week
        folder = _folder_with_sales(chain, tmp_path, kept)
        counts = pipeline.import_step(wh, settings, None, folder, replace_sales=week)
        after = _sales(wh)
        assert counts["sales"]["deleted"] == int(in_week.sum()) - len(kept)
        assert counts["sales"]["replaced"] == len(kept)
        assert len(after) == int((~in_week).sum()) + len(kept)
        # Days outside the range are untouched.
        pd.testing.assert_frame_equal(after[after.sale_date < pd.Timestamp(week.first)].reset_index(drop=True),
                                      before[~in_week].reset_index(drop=True), check_dtype=False)
        # A row outside the named range is an error, and nothing is loaded.
        narrow = DateRange(week.first, week.first)
        with pytest.raises(InputError, match="outside the replacement range"):
            pipeline.import_step(wh, settings, None, folder, replace_sales=narrow)
        assert len(_sales(wh)) == len(after)
    finally:
        wh.close()


def test_the_cli_takes_a_replacement_range(chain, tmp_path, capsys):
    code = main(["run", "--data", str(chain), "--data-dir", str(tmp_path), "--quiet",
                 "--replace-sales", "2020-01-01:2019-01-01"])
    assert code == 2 and "before it starts" in capsys.readouterr().err


def test_date_range_parsing():
    assert DateRange.parse("2026-01-01:2026-01-14") == DateRange(dt.date(2026, 1, 1), dt.date(2026, 1, 14))
    assert DateRange.parse("2026-01-01..2026-01-14").last == dt.date(2026, 1, 14)
    for bad in ("2026-01-01", "yesterday:today", "2026-02-01:2026-01-01"):
        with pytest.raises(ValueError):
            DateRange.parse(bad)


def test_merge_runs_on_bigquery(bqemu_client):
    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    wh.ensure_schema()
    day = pd.Timestamp("2026-01-01")
    rows = pd.DataFrame({"sale_date": [day, day + pd.Timedelta(days=1), day + pd.Timedelta(days=9)],
                         "store_id": ["S1"] * 3, "product_id": ["P1"] * 3, "units": [1, 2, 3],
                         "price": [1.0] * 3, "on_promotion": [False] * 3})
    assert load_facts(wh, "sales", rows).added == 3
    fix = rows.iloc[[0]].assign(units=7)
    counts = load_facts(wh, "sales", pd.concat([fix, rows.iloc[[1]].assign(sale_date=day + pd.Timedelta(days=3))]))
    assert (counts.added, counts.replaced, counts.deleted) == (1, 1, 0)
    stored = wh.query("SELECT sale_date, units FROM `{dataset}.sales` ORDER BY sale_date")
    assert stored.units.tolist() == [7, 2, 2, 3]
    assert wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales_staging`").n.iloc[0] == 0


def test_a_daily_drop_of_sales_alone_keeps_everything_else(chain, tmp_path):
    settings = load_settings({"data_dir": str(tmp_path / "work")})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        pipeline.import_step(wh, settings, None, chain)
        product = pipeline.read_table(wh, "products").product_id.iloc[0]
        wh.insert("promotions", pd.DataFrame([{"store_id": None, "product_id": product,
                                               "start_date": dt.date(2030, 1, 1), "end_date": dt.date(2030, 1, 7)}]))
        tables = ("stores", "distribution_centers", "products", "vehicles", "inventory", "promotions")
        before = {t: len(pipeline.read_table(wh, t)) for t in tables}
        sales = _sales(wh)
        next_day = sales[sales.sale_date == sales.sale_date.max()].assign(
            sale_date=sales.sale_date.max() + pd.Timedelta(days=1))
        drop = tmp_path / "drop"
        drop.mkdir()
        next_day.assign(sale_date=next_day.sale_date.dt.strftime("%Y-%m-%d")).to_csv(drop / "sales.csv", index=False)
        # A promotions file that cannot be read is skipped, and the stored plan stays.
        (drop / "promotions.csv").write_bytes(b"\x00\x01 not a csv")
        settings = settings.replace(run_date=(sales.sale_date.max() + pd.Timedelta(days=2)).date())
        counts = pipeline.import_step(wh, settings, None, drop)
        assert counts["sales"]["added"] == len(next_day)
        assert {t: len(pipeline.read_table(wh, t)) for t in tables} == before
        quarantine = pipeline.read_run_rows(wh, "quarantine", counts["run_id"])
        assert quarantine.reason.str.contains("promotions.csv skipped").any()
        # Naming days to replace needs the sales that replace them.
        (drop / "sales.csv").unlink()
        with pytest.raises(InputError, match="needs a sales file"):
            pipeline.import_step(wh, settings, None, drop, replace_sales=DateRange(dt.date(2020, 1, 1),
                                                                                  dt.date(2020, 1, 2)))
    finally:
        wh.close()


def test_a_first_import_still_needs_every_required_file(chain, tmp_path):
    settings = load_settings({"data_dir": str(tmp_path / "work")})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        drop = tmp_path / "drop"
        shutil.copytree(chain, drop)
        (drop / "stores.csv").unlink()
        with pytest.raises(InputError, match="stores"):
            pipeline.import_step(wh, settings, None, drop)
    finally:
        wh.close()
