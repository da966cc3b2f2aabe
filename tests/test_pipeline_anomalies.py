"""Sales anomalies in the planning run: written per run by the forecast step, left out of the fit
as the setting says, shown in the report and the analyst view, removed with a failed run."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest

from retailopt import pipeline
from retailopt.config import load_settings
from retailopt.sample import generate_sample_chain
from retailopt.warehouse import open_warehouse
from retailopt.warehouse.duck import DuckDBWarehouse

STORE_NAME = "Hyde <script>alert(1)</script> & Co"
PRODUCT_NAME = 'Milk "<b>bold</b>"'


@pytest.fixture(scope="module")
def spiked_chain(tmp_path_factory):
    """A small generated chain with one single-day spike, 6 days before the last sale, in a series
    that sells every day, and hostile names for its store and product."""
    path = tmp_path_factory.mktemp("chain")
    generate_sample_chain(path, n_stores=3, n_products=8, days=200)
    sales = pd.read_parquet(path / "sales.parquet")
    sales["sale_date"] = pd.to_datetime(sales["sale_date"])
    last = sales.sale_date.max()
    recent = sales[sales.sale_date > last - pd.Timedelta(days=60)]
    busy = recent.groupby(["store_id", "product_id"]).units.agg(["mean", "size"])
    store, product = busy[busy["size"] == 60]["mean"].idxmax()
    day = last - pd.Timedelta(days=6)
    row = (sales.store_id == store) & (sales.product_id == product) & (sales.sale_date == day)
    assert row.sum() == 1 and not sales.loc[row, "on_promotion"].iloc[0]
    sales.loc[row, "units"] = int(round(12 * busy.loc[(store, product), "mean"]))
    sales["sale_date"] = sales["sale_date"].dt.date
    sales.to_parquet(path / "sales.parquet", index=False)
    for name, key, value in (("stores", "store_id", store), ("products", "product_id", product)):
        frame = pd.read_csv(path / f"{name}.csv", dtype=str)
        frame.loc[frame[key] == value, "name"] = STORE_NAME if name == "stores" else PRODUCT_NAME
        frame.to_csv(path / f"{name}.csv", index=False)
    return path, store, product, day.date(), int(sales.loc[row, "units"].iloc[0])


def test_anomalies_are_written_per_run_shown_and_removed_when_a_run_fails(spiked_chain, tmp_path, monkeypatch):
    chain, store, product, day, units = spiked_chain
    settings = load_settings({"data_dir": str(tmp_path), "routing_time_limit_s": 1})
    first = pipeline.run_planning(settings, chain)
    kept = pipeline.run_planning(settings.replace(exclude_anomalies="none"))
    wh = open_warehouse(settings)
    try:
        rows = pipeline.read_run_rows(wh, "sales_anomalies", first.run_id)
        dates = pd.to_datetime(rows.sale_date)
        assert len(rows) and set(rows.method) == {"local"} and set(rows.kind) <= {"spike", "dip"}
        assert (dates >= pd.Timestamp(first.run_date - dt.timedelta(days=28))).all()
        assert (dates < pd.Timestamp(first.run_date)).all()
        assert set(pd.to_datetime(rows.run_date).dt.date) == {first.run_date}
        spike = rows[(rows.store_id == store) & (rows.product_id == product) & (dates == pd.Timestamp(day))]
        assert len(spike) == 1 and spike.kind.iloc[0] == "spike" and spike.units.iloc[0] == units
        assert spike.excluded_from_training.iloc[0] and spike.expected.iloc[0] < units / 4
        # Per run: the second run (setting "none") has its own rows, and fitted the spike as sold.
        again = pipeline.read_run_rows(wh, "sales_anomalies", kept.run_id)
        assert len(again) and not again.excluded_from_training.any()
        assert len(pipeline.read_run_rows(wh, "sales_anomalies", first.run_id)) == len(rows)
        # The analyst view shows the latest complete plan's days with names.
        view = wh.query("SELECT * FROM `{dataset}.sales_anomalies_recent`")
        assert set(view.run_id) == {kept.run_id} and len(view) == len(again)
        mine = view[(view.store_id == store) & (view.product_id == product)
                    & (pd.to_datetime(view.sale_date) == pd.Timestamp(day))].iloc[0]
        assert mine.store_name == STORE_NAME and mine.product_name == PRODUCT_NAME
        assert mine.consecutive_days == 1 and mine.deviation_units > 0 and mine.days_before_run == 6 + 1
    finally:
        wh.close()
    report = (first.artifacts_dir / "report.html").read_text(encoding="utf-8")
    section = report.split("Sales anomalies before the run")[1].split("<h2>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in section and "<script>" not in report
    assert "&lt;b&gt;bold&lt;/b&gt;" in section and "<b>bold" not in report
    assert str(day) in section and "isolated spikes, were fitted at their expected units" in section

    # A run that fails after its forecast step loses its anomaly rows with its other results.
    seen = []

    def broken_plan(wh, settings, run_id, *args, **kwargs):
        seen.append(len(pipeline.read_run_rows(wh, "sales_anomalies", run_id)))
        raise RuntimeError("planning exploded")

    monkeypatch.setattr(pipeline, "plan_step", broken_plan)
    with pytest.raises(RuntimeError, match="planning exploded"):
        pipeline.run_planning(settings)
    wh = open_warehouse(settings)
    try:
        failed = wh.query("SELECT run_id FROM `{dataset}.runs` WHERE status = 'FAILED'").run_id.tolist()
        assert len(failed) == 1 and seen and seen[0] > 0
        assert pipeline.read_run_rows(wh, "sales_anomalies", failed[0]).empty
        assert len(pipeline.read_run_rows(wh, "sales_anomalies", first.run_id)) == len(rows)
        view = wh.query("SELECT DISTINCT run_id FROM `{dataset}.sales_anomalies_recent`")
        assert view.run_id.tolist() == [kept.run_id]
    finally:
        wh.close()


# ----------------------------------------------------------------------------- the analyst view

def _view_tables() -> dict[str, pd.DataFrame]:
    ts = pd.Timestamp
    runs = pd.DataFrame({
        "run_id": ["r-old", "r-new", "r-failed"], "run_date": ["2025-01-06", "2025-01-13", "2025-01-14"],
        "status": ["COMPLETE", "COMPLETE", "FAILED"],
        "started_at": [ts("2025-01-06T05:00Z"), ts("2025-01-13T05:00Z"), ts("2025-01-14T05:00Z")],
        "finished_at": [ts("2025-01-06T05:10Z"), ts("2025-01-13T05:05Z"), ts("2025-01-14T05:01Z")]})
    stores = pd.DataFrame({"store_id": ["S1", "S2"], "name": ["North Market", "South Market"],
                           "latitude": [41.9, 41.8], "longitude": [-87.6, -87.7], "region": ["North", "South"],
                           "receiving_open": ["06:00:00"] * 2, "receiving_close": ["14:00:00"] * 2,
                           "capacity_units": [1000, 1000]})
    products = pd.DataFrame({"product_id": ["P1", "P2"], "name": ["Coffee 1kg", "Tea 20 bags"],
                             "category": ["grocery", "beverages"], "unit_cost": [6.0, 1.0], "price": [10.0, 4.0],
                             "case_pack": [6, 12]})
    rows = [  # run, store, product, day, kind, units, expected, excluded
        ("r-new", "S1", "P1", "2025-01-08", "spike", 30, 6.0, False),
        ("r-new", "S1", "P1", "2025-01-09", "spike", 28, 7.0, False),
        ("r-new", "S1", "P1", "2025-01-10", "spike", 25, 8.0, False),
        ("r-new", "S1", "P1", "2025-01-11", "dip", 0, 8.5, False),
        ("r-new", "S2", "P2", "2025-01-05", "spike", 20, 2.0, True),
        ("r-new", "S2", "P2", "2025-01-07", "spike", 18, 2.5, True),
        ("r-old", "S1", "P1", "2025-01-01", "spike", 50, 5.0, True),
        ("r-failed", "S2", "P2", "2025-01-12", "spike", 99, 1.0, True),
    ]
    anomalies = pd.DataFrame(rows, columns=["run_id", "store_id", "product_id", "sale_date", "kind", "units",
                                            "expected", "excluded_from_training"])
    anomalies = anomalies.assign(
        run_date=anomalies.run_id.map({"r-new": "2025-01-13", "r-old": "2025-01-06", "r-failed": "2025-01-14"}),
        lower_bound=0.0, upper_bound=15.0, anomaly_probability=0.999, on_promotion=False, method="local")
    return {"runs": runs, "stores": stores, "products": products, "sales_anomalies": anomalies}


def _check_view(wh) -> None:
    view = wh.query("SELECT * FROM `{dataset}.sales_anomalies_recent` ORDER BY store_id, sale_date")
    assert set(view.run_id) == {"r-new"} and len(view) == 6
    got = [(r.store_name, str(pd.Timestamp(r.sale_date).date()), r.kind, int(r.consecutive_days),
            int(r.days_before_run), round(float(r.deviation_units), 6), round(float(r.deviation_value), 6),
            bool(r.excluded_from_training)) for r in view.itertuples()]
    assert got == [
        ("North Market", "2025-01-08", "spike", 3, 5, 24.0, 240.0, False),
        ("North Market", "2025-01-09", "spike", 3, 4, 21.0, 210.0, False),
        ("North Market", "2025-01-10", "spike", 3, 3, 17.0, 170.0, False),
        ("North Market", "2025-01-11", "dip", 1, 2, -8.5, -85.0, False),
        ("South Market", "2025-01-05", "spike", 1, 8, 18.0, 72.0, True),
        ("South Market", "2025-01-07", "spike", 1, 6, 15.5, 62.0, True),
    ]
    assert set(view.product_name) == {"Coffee 1kg", "Tea 20 bags"} and set(view.region) == {"North", "South"}


def test_sales_anomalies_recent_view_on_duckdb(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", dataset="retailopt")
    try:
        wh.ensure_schema()
        for table, frame in _view_tables().items():
            wh.insert(table, frame)
        _check_view(wh)
    finally:
        wh.close()


def test_sales_anomalies_recent_view_on_bqemulator(bqemu_client):
    from retailopt.warehouse.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    wh.ensure_schema()
    assert wh.query("SELECT * FROM `{dataset}.sales_anomalies_recent`").empty
    for table, frame in _view_tables().items():
        wh.insert(table, frame)
    _check_view(wh)
