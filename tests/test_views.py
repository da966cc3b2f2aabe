"""The analyst views of sql/views/: GoogleSQL that parses, the same answers on DuckDB and
bqemulator for a hand-made warehouse, and figures that agree with the base tables after real
planning runs."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from retailopt import pipeline, sqlfiles
from retailopt.config import load_settings
from retailopt.sample import generate_sample_chain
from retailopt.warehouse import open_warehouse
from retailopt.warehouse.duck import DuckDBWarehouse

VIEWS = ["latest_plan_transfers", "latest_plan_orders", "stockout_risk", "forecast_accuracy_weekly", "run_history"]


def view(wh, name: str, order_by: str | None = None) -> pd.DataFrame:
    order = f" ORDER BY {order_by}" if order_by else ""
    return wh.query(f"SELECT * FROM `{{dataset}}.{name}`{order}")


def _day(value) -> dt.date:
    return pd.Timestamp(value).date()


def _rounded(row: tuple) -> tuple:
    return tuple(round(v, 9) if isinstance(v, float) else v for v in row)


# ----------------------------------------------------------------------------- the SQL text

@pytest.mark.parametrize("name", VIEWS)
def test_view_file_is_one_described_googlesql_view(name):
    text = (sqlfiles.sql_dir() / "views" / f"{name}.sql").read_text(encoding="utf-8")
    statements = [s for s in sqlglot.parse(text.replace("{dataset}", "ds"), read="bigquery",
                                           error_level=sqlglot.ErrorLevel.RAISE) if s is not None]
    assert len(statements) == 1
    create = statements[0]
    assert isinstance(create, exp.Create) and create.kind == "VIEW" and create.this.name == name
    # Terraform describes the view with the file's first line (infra/gen_bq_schemas.py), the DDL
    # with OPTIONS: both say the same, and say the grain.
    first_line = text.splitlines()[0].removeprefix("-- ")
    (description,) = [p.args["value"].this for p in create.args["properties"].expressions
                      if p.name.lower() == "description"]
    assert description == first_line and "one row per" in description


def test_every_view_file_parses_and_translates():
    for path in sqlfiles.view_files():
        text = sqlfiles.render(path.read_text(encoding="utf-8"), "ds")
        for statement in sqlglot.parse(text, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE):
            assert isinstance(statement, exp.Create) and statement.kind == "VIEW", path.name
        assert sqlfiles.to_duckdb(text), path.name


# ----------------------------------------------------------------------------- a hand-made warehouse

PARAMETERS = json.dumps({"chain_id": "demo", "forecast_engine": "local", "routing_engine": "local",
                         "horizon_days": 14, "service_level": 0.95, "fleet_max_vehicles": None,
                         "transfer_lead_days": 1})
NEW_KPIS = {"positions": 4, "positions_at_risk_before": 2, "positions_at_risk_after": 1, "expected_lost_units": 7.5,
            "transfers": 1, "units_moved": 12, "transfer_value": 30.0, "transfer_cost": 2.5, "orders": 1,
            "units_ordered": 24, "order_value": 24.0, "vehicles_used": 2, "route_km": 42.5, "route_cost": 99.9,
            "shipments": 3, "shipments_unrouted": 0, "quarantined_rows": 3}


def _days(first: str, last: str) -> list[dt.date]:
    return [d.date() for d in pd.date_range(first, last)]


def hand_made_tables() -> dict[str, pd.DataFrame]:
    """Two complete runs, then a failed and a running one (started later, never shown as the plan);
    a transfer line carried by two vehicle loads; a position with two exceptions; sales through
    2025-01-16 with a day without a row (0 sold) and a day a store sold nothing (not loaded)."""
    stores = pd.DataFrame({"store_id": ["S1", "S2"], "name": ["North Market", "South Market"],
                           "latitude": [41.9, 41.8], "longitude": [-87.6, -87.7], "region": ["North", "South"],
                           "receiving_open": ["06:00:00"] * 2, "receiving_close": ["14:00:00"] * 2,
                           "capacity_units": [1000, 1000]})
    dcs = pd.DataFrame({"dc_id": ["D1"], "name": ["Central DC"], "latitude": [42.0], "longitude": [-87.9],
                        "region": ["North"], "open_time": ["04:00:00"], "close_time": ["22:00:00"],
                        "lead_time_days": [2]})
    products = pd.DataFrame({"product_id": ["P1", "P2"], "name": ["Coffee 1kg", "Tea 20 bags"],
                             "category": ["grocery", "beverages"], "unit_cost": [6.0, 1.0], "price": [10.0, 4.0],
                             "case_pack": [6, 12]})
    ts = pd.Timestamp
    runs = pd.DataFrame({
        "run_id": ["r-old", "r-new", "r-failed", "r-running"],
        "run_date": ["2025-01-06", "2025-01-13", "2025-01-14", "2025-01-15"],
        "status": ["COMPLETE", "COMPLETE", "FAILED", "RUNNING"],
        "started_at": [ts("2025-01-06T05:00Z"), ts("2025-01-13T05:00Z"), ts("2025-01-14T05:00Z"), ts("2025-01-15T05:00Z")],
        "finished_at": [ts("2025-01-06T05:10Z"), ts("2025-01-13T05:02:30.5Z"), ts("2025-01-14T05:01Z"), None],
        "parameters": [PARAMETERS] * 4,
        "kpis": [json.dumps({**NEW_KPIS, "units_moved": 3}), json.dumps(NEW_KPIS), "{}", None],
        "error": [None, None, "RuntimeError: solver exploded", None],
    })
    transfers = pd.DataFrame({
        "run_id": ["r-new", "r-new", "r-old", "r-failed"],
        "run_date": ["2025-01-13", "2025-01-13", "2025-01-06", "2025-01-14"],
        "transfer_id": ["T1", "T1", "T9", "T5"], "product_id": ["P1", "P1", "P2", "P2"],
        "from_store_id": ["S2", "S2", "S1", "S1"], "to_store_id": ["S1", "S1", "S2", "S2"],
        "quantity": [8, 4, 3, 99], "value": [20.0, 10.0, 5.0, 1.0], "cost": [2.0, 0.5, 1.0, 1.0],
        "distance_km": [5.0] * 4, "shipment_id": ["T-S2-S1-1", "T-S2-S1-2", "T-S1-S2-1", "T-S1-S2-1"]})
    orders = pd.DataFrame({
        "run_id": ["r-new", "r-old"], "run_date": ["2025-01-13", "2025-01-06"], "order_id": ["O1", "O7"],
        "dc_id": ["D1", "D1"], "store_id": ["S2", "S1"], "product_id": ["P2", "P1"], "quantity": [24, 6],
        "cases": [2, 1], "order_value": [24.0, 36.0], "expected_arrival": ["2025-01-15", "2025-01-08"],
        "shipment_id": ["O-D1-S2-1", "O-D1-S1-1"]})
    stops = pd.DataFrame({
        "run_id": ["r-new"] * 6, "run_date": ["2025-01-13"] * 6,
        "route_id": ["R1", "R1", "R1", "R1", "R2", "R2"], "vehicle_id": ["V1", "V1", "V1", "V1", "V2", "V2"],
        "stop_sequence": [1, 2, 3, 4, 1, 2], "location_id": ["S2", "S2", "S1", "S1", "D1", "S2"],
        "latitude": [41.8] * 6, "longitude": [-87.7] * 6,
        "visit_type": ["PICKUP", "PICKUP", "DELIVERY", "DELIVERY", "PICKUP", "DELIVERY"],
        "shipment_id": ["T-S2-S1-1", "T-S2-S1-2", "T-S2-S1-1", "T-S2-S1-2", "O-D1-S2-1", "O-D1-S2-1"],
        "units": [8, 4, 8, 4, 24, 24],
        "arrival_time": [ts("2025-01-13T12:00Z"), ts("2025-01-13T12:05Z"), ts("2025-01-13T12:40Z"),
                         ts("2025-01-13T12:45Z"), ts("2025-01-13T11:30Z"), ts("2025-01-13T12:10Z")]})
    policy_rows = [  # run, store, product, status, after, on_hand, expected_lost_units
        ("r-new", "S1", "P1", "STOCKOUT_RISK", "OK", 2, 5.0),
        ("r-new", "S2", "P2", "STOCKOUT_RISK", "STOCKOUT_RISK", 1, 2.5),
        ("r-new", "S2", "P1", "OVERSTOCK", "OK", 40, 0.0),
        ("r-new", "S1", "P2", "OK", "STOCKOUT_RISK", 5, 0.0),
        ("r-old", "S1", "P1", "STOCKOUT_RISK", "OK", 1, 9.0),
    ]
    policy = pd.DataFrame(policy_rows, columns=["run_id", "store_id", "product_id", "status", "status_after_plan",
                                                "on_hand", "expected_lost_units"])
    policy = policy.assign(run_date=policy.run_id.map({"r-new": "2025-01-13", "r-old": "2025-01-06"}), on_order=0,
                           mean_daily_demand=3.0, lead_time_days=2, review_period_days=7, service_level=0.95,
                           safety_stock=4.0, reorder_point=10.0, order_up_to=30.0, days_of_cover=1.0)
    exceptions = pd.DataFrame({
        "run_id": ["r-new", "r-new"], "run_date": ["2025-01-13"] * 2, "store_id": ["S2", "S2"],
        "product_id": ["P2", "P2"], "reason_code": ["STORE_CAPACITY", "CAPACITY_BELOW_TARGET"],
        "reason": ["store full", "max_capacity=5 < reorder point 10"], "action": ["order cut", "target capped"]})
    forecast_parts = []
    for run_id, first, last, mean, low, high in [("r-old", "2025-01-06", "2025-01-19", 5.0, 2.0, 8.0),
                                                 ("r-new", "2025-01-13", "2025-01-26", 4.0, 1.0, 6.0),
                                                 ("r-failed", "2025-01-14", "2025-01-16", 100.0, 0.0, 200.0)]:
        for store, product in [("S1", "P1"), ("S2", "P2")]:
            days = _days(first, last)
            forecast_parts.append(pd.DataFrame({
                "run_id": run_id, "store_id": store, "product_id": product, "forecast_date": days,
                "forecast_mean": mean, "confidence_level": 0.9, "lower_bound": low, "upper_bound": high,
                "model": "test"}))
    sales_rows = []
    for day in _days("2025-01-06", "2025-01-16"):
        sales_rows.append((day, "S1", "P2", 1))  # S1 sells every day
        if day != dt.date(2025, 1, 8):  # no row: S1 sold no P1 that day
            sales_rows.append((day, "S1", "P1", 6))
        if day != dt.date(2025, 1, 10):  # S2 sold nothing at all that day: not a loaded day
            sales_rows.append((day, "S2", "P2", 3))
    sales = pd.DataFrame(sales_rows, columns=["sale_date", "store_id", "product_id", "units"]).assign(
        price=1.0, on_promotion=False)
    return {"stores": stores, "distribution_centers": dcs, "products": products, "runs": runs,
            "transfers": transfers, "replenishment_orders": orders, "route_stops": stops,
            "inventory_policy": policy, "plan_exceptions": exceptions,
            "forecasts": pd.concat(forecast_parts, ignore_index=True), "sales": sales}


# week_start, category, series_days, actual, forecast, abs error, runs, mean lead days, coverage
EXPECTED_ACCURACY = [
    # ISO week 2 (6-12 Jan), forecasts of r-old: S1 P1 sold 6 a day but 0 on the 8th; S2 was
    # closed on the 10th, so that day does not count.
    ("2025-01-06", "beverages", 6, 18, 30.0, 12.0, 1, 17 / 6, 1.0),
    ("2025-01-06", "grocery", 7, 36, 35.0, 11.0, 1, 3.0, 6 / 7),
    # ISO week 3, sales loaded through the 16th: r-new's forecasts replace r-old's; r-failed's
    # never count.
    ("2025-01-13", "beverages", 4, 12, 16.0, 4.0, 1, 1.5, 1.0),
    ("2025-01-13", "grocery", 4, 24, 16.0, 8.0, 1, 1.5, 1.0),
]


def check_hand_made_views(wh) -> None:
    transfers = view(wh, "latest_plan_transfers", "shipment_id")
    assert transfers.run_id.tolist() == ["r-new", "r-new"] and set(transfers.transfer_id) == {"T1"}
    assert transfers.quantity.tolist() == [8, 4]
    assert set(transfers.product_name) == {"Coffee 1kg"} and set(transfers.category) == {"grocery"}
    assert set(transfers.from_store_name) == {"South Market"} and set(transfers.to_store_name) == {"North Market"}
    assert transfers.net_value.tolist() == [18.0, 9.5] and transfers.retail_value.tolist() == [80.0, 40.0]
    assert [_day(d) for d in transfers.expected_arrival] == [dt.date(2025, 1, 14)] * 2
    assert transfers.vehicle_id.tolist() == ["V1", "V1"]
    assert [pd.Timestamp(t) for t in transfers.pickup_time] == [pd.Timestamp("2025-01-13T12:00Z"),
                                                                 pd.Timestamp("2025-01-13T12:05Z")]
    assert [pd.Timestamp(t) for t in transfers.delivery_time] == [pd.Timestamp("2025-01-13T12:40Z"),
                                                                   pd.Timestamp("2025-01-13T12:45Z")]

    orders = view(wh, "latest_plan_orders")
    assert len(orders) == 1
    row = orders.iloc[0]
    assert (row.run_id, row.order_id, row.dc_name, row.store_name, row.region) == (
        "r-new", "O1", "Central DC", "South Market", "South")
    assert (row.product_name, row.category, int(row.quantity), int(row.cases)) == ("Tea 20 bags", "beverages", 24, 2)
    assert (float(row.order_value), float(row.retail_value)) == (24.0, 96.0)
    assert _day(row.expected_arrival) == dt.date(2025, 1, 15) and row.vehicle_id == "V2"
    assert pd.Timestamp(row.delivery_time) == pd.Timestamp("2025-01-13T12:10Z")

    risk = view(wh, "stockout_risk", "store_id, product_id").set_index(["store_id", "product_id"])
    assert set(risk.index) == {("S1", "P1"), ("S2", "P2"), ("S1", "P2")} and set(risk.run_id) == {"r-new"}
    s1p1, s2p2, s1p2 = risk.loc[("S1", "P1")], risk.loc[("S2", "P2")], risk.loc[("S1", "P2")]
    assert (s1p1.store_name, s1p1.product_name, s1p1.category) == ("North Market", "Coffee 1kg", "grocery")
    assert s1p1.risk_outcome == "RESOLVED_BY_PLAN" and s2p2.risk_outcome == "REMAINS_AT_RISK"
    assert s1p2.risk_outcome == "AT_RISK_AFTER_PLAN" and s1p2.status_before_plan == "OK"
    assert (int(s1p1.transfer_units_in), int(s1p1.ordered_units), int(s1p1.position_after_plan)) == (12, 0, 14)
    assert (int(s2p2.transfer_units_out), int(s2p2.ordered_units), int(s2p2.position_after_plan)) == (0, 24, 25)
    assert (float(s1p1.lost_sales_value), float(s1p1.lost_margin)) == (50.0, 20.0)
    assert (float(s2p2.lost_sales_value), float(s2p2.lost_margin)) == (10.0, 7.5)
    assert pd.isna(s1p1.exception_codes) and pd.isna(s1p1.exception_reasons)
    assert s2p2.exception_codes == "CAPACITY_BELOW_TARGET, STORE_CAPACITY"
    assert s2p2.exception_reasons == ("CAPACITY_BELOW_TARGET: max_capacity=5 < reorder point 10 (target capped); "
                                      "STORE_CAPACITY: store full (order cut)")

    accuracy = view(wh, "forecast_accuracy_weekly", "week_start, category")
    got = [(str(_day(r.week_start)), r.category, int(r.series_days), int(r.actual_units), float(r.forecast_units),
            float(r.abs_error_units), int(r.runs), float(r.mean_lead_days), float(r.interval_coverage))
           for r in accuracy.itertuples()]
    assert [_rounded(r) for r in got] == [_rounded(r) for r in EXPECTED_ACCURACY]
    assert accuracy.iso_year.tolist() == [2025] * 4 and accuracy.iso_week.tolist() == [2, 2, 3, 3]
    assert accuracy.series.tolist() == [1] * 4
    assert accuracy.wape.tolist() == pytest.approx([12 / 18, 11 / 36, 4 / 12, 8 / 24])
    assert accuracy.bias.tolist() == pytest.approx([12 / 18, -1 / 36, 4 / 12, -8 / 24])
    assert [str(_day(d)) for d in accuracy.last_day] == ["2025-01-12"] * 2 + ["2025-01-16"] * 2

    history = view(wh, "run_history", "run_date").set_index("run_id")
    assert history.index.tolist() == ["r-old", "r-new", "r-failed", "r-running"]
    assert history.status.tolist() == ["COMPLETE", "COMPLETE", "FAILED", "RUNNING"]
    assert history.is_latest_plan.tolist() == [False, True, False, False]
    assert float(history.loc["r-new", "duration_s"]) == pytest.approx(150.5)
    assert pd.isna(history.loc["r-running", "duration_s"])
    assert history.loc["r-failed", "error"] == "RuntimeError: solver exploded"
    for key in ("positions_at_risk_before", "positions_at_risk_after", "units_moved", "units_ordered",
                "vehicles_used", "route_km", "route_cost", "expected_lost_units", "quarantined_rows", "transfers",
                "orders", "transfer_value", "order_value", "shipments_unrouted"):
        assert float(history.loc["r-new", key]) == pytest.approx(NEW_KPIS[key]), key
        assert pd.isna(history.loc["r-failed", key]) and pd.isna(history.loc["r-running", key]), key
    assert int(history.loc["r-old", "units_moved"]) == 3
    assert set(history.chain_id) == {"demo"} and set(history.horizon_days.astype(int)) == {14}
    assert set(history.service_level.astype(float)) == {0.95} and history.fleet_max_vehicles.isna().all()
    assert set(history.forecast_engine) == {"local"} and set(history.routing_engine) == {"local"}


def load_hand_made(wh) -> None:
    wh.ensure_schema()
    for table, frame in hand_made_tables().items():
        wh.insert(table, frame)


def test_views_answer_on_duckdb(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", dataset="retailopt")
    try:
        load_hand_made(wh)
        check_hand_made_views(wh)
    finally:
        wh.close()


def test_views_answer_the_same_on_bqemulator(bqemu_client):
    from retailopt.warehouse.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    # Empty tables first: every view is created and answers with its columns and no rows.
    wh.ensure_schema()
    for name in VIEWS:
        frame = view(wh, name)
        assert frame.empty and len(frame.columns) > 5, name
    load_hand_made(wh)
    check_hand_made_views(wh)


# ----------------------------------------------------------------------------- real planning runs

@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Two complete runs on a generated chain, then a failed one. The second plans from two weeks
    before the last sale (so its forecast days have actual sales) and finishes last of the
    complete runs: it is the latest plan. Transfers are made cheap so the plans move stock (no
    minimum value, and the search carries a load whatever its van costs: the transfer pricing keeps
    them)."""
    chain = tmp_path_factory.mktemp("chain")
    generate_sample_chain(chain, n_stores=5, n_products=15, days=200)
    work = tmp_path_factory.mktemp("work")
    settings = load_settings({"data_dir": str(work), "routing_time_limit_s": 2, "handling_cost_per_unit": 0.01,
                              "transport_cost_per_unit_km": 0.001, "min_transfer_value": -1e9,
                              "min_transfer_units": 1, "routing_penalty_factor": 1000})
    first = pipeline.run_planning(settings, chain)
    latest = pipeline.run_planning(settings.replace(run_date=first.run_date - dt.timedelta(days=14)))
    wh = open_warehouse(settings)
    try:
        failed = pipeline.start_run(wh, settings)
        pipeline.fail_run(wh, failed, "RuntimeError: test failure")
    finally:
        wh.close()
    return settings, first, latest, failed


@pytest.fixture
def warehouse(planned):
    wh = open_warehouse(planned[0])
    yield wh
    wh.close()


def test_latest_plan_transfers_are_the_latest_runs(planned, warehouse):
    _, first, latest, _ = planned
    rows = view(warehouse, "latest_plan_transfers")
    base = pipeline.read_run_rows(warehouse, "transfers", latest.run_id)
    assert len(base) > 0 and len(pipeline.read_run_rows(warehouse, "transfers", first.run_id)) > 0
    assert set(rows.run_id) == {latest.run_id} and len(rows) == len(base)
    assert int(rows.quantity.sum()) == int(base.quantity.sum()) == latest.kpis["units_moved"]
    assert rows.value.sum() == pytest.approx(base.value.sum())
    names = pipeline.read_table(warehouse, "stores").set_index("store_id").name
    assert (rows.from_store_name == rows.from_store_id.map(names)).all()
    assert (rows.to_store_name == rows.to_store_id.map(names)).all()
    assert rows.product_name.notna().all() and rows.category.notna().all()
    lead = dt.timedelta(days=planned[0].transfer_lead_days)
    assert {_day(d) for d in rows.expected_arrival} == {latest.run_date + lead}
    routed = rows[rows.vehicle_id.notna()]
    assert (routed.delivery_time > routed.pickup_time).all()


def test_latest_plan_orders_are_the_latest_runs(planned, warehouse):
    _, _, latest, _ = planned
    rows = view(warehouse, "latest_plan_orders")
    base = pipeline.read_run_rows(warehouse, "replenishment_orders", latest.run_id)
    assert set(rows.run_id) == {latest.run_id} and len(rows) == len(base) > 0
    assert int(rows.quantity.sum()) == int(base.quantity.sum()) == latest.kpis["units_ordered"]
    assert rows.order_value.sum() == pytest.approx(base.order_value.sum())
    assert rows.dc_name.notna().all() and rows.store_name.notna().all() and rows.product_name.notna().all()
    assert sorted(rows.order_id) == sorted(base.order_id)


def test_stockout_risk_matches_the_policy(planned, warehouse):
    _, _, latest, _ = planned
    rows = view(warehouse, "stockout_risk")
    policy = pipeline.read_run_rows(warehouse, "inventory_policy", latest.run_id)
    at_risk = policy[(policy.status == "STOCKOUT_RISK") | (policy.status_after_plan == "STOCKOUT_RISK")]
    assert set(rows.run_id) == {latest.run_id} and len(rows) == len(at_risk) > 0
    assert (rows.status_before_plan == "STOCKOUT_RISK").sum() == latest.kpis["positions_at_risk_before"]
    assert (rows.status_after_plan == "STOCKOUT_RISK").sum() == latest.kpis["positions_at_risk_after"]
    assert rows.store_name.notna().all() and rows.product_name.notna().all()
    prices = pipeline.read_table(warehouse, "products").set_index("product_id")
    assert rows.lost_sales_value.to_numpy() == pytest.approx(
        (rows.expected_lost_units * rows.product_id.map(prices.price)).to_numpy())
    # The position after the plan is the one the planner judged: at risk exactly when it is
    # below the reorder point.
    assert ((rows.position_after_plan < rows.reorder_point) == (rows.status_after_plan == "STOCKOUT_RISK")).all()
    exceptions = pipeline.read_run_rows(warehouse, "plan_exceptions", latest.run_id)
    flagged = rows[rows.exception_codes.notna()]
    expected = {(s, p) for s, p in zip(exceptions.store_id, exceptions.product_id)} & set(
        zip(rows.store_id, rows.product_id))
    assert set(zip(flagged.store_id, flagged.product_id)) == expected


def test_forecast_accuracy_weekly_scores_the_forecasts_against_sales(planned, warehouse):
    _, first, latest, _ = planned
    rows = view(warehouse, "forecast_accuracy_weekly")
    assert len(rows) > 0 and set(rows.runs) == {1}
    # Only the latest run forecast days that have sales: the first plans from the day after them.
    forecasts = pipeline.read_run_rows(warehouse, "forecasts", latest.run_id)
    sales = pipeline.read_table(warehouse, "sales")
    forecasts["forecast_date"] = pd.to_datetime(forecasts.forecast_date)
    sales["sale_date"] = pd.to_datetime(sales.sale_date)
    loaded = sales[["store_id", "sale_date"]].drop_duplicates()
    scored = forecasts.merge(loaded, left_on=["store_id", "forecast_date"], right_on=["store_id", "sale_date"])
    scored = scored.drop(columns="sale_date").merge(
        sales[["store_id", "product_id", "sale_date", "units"]], how="left",
        left_on=["store_id", "product_id", "forecast_date"], right_on=["store_id", "product_id", "sale_date"])
    scored["units"] = scored.units.fillna(0)
    assert scored.forecast_date.max() < pd.Timestamp(first.run_date)
    categories = pipeline.read_table(warehouse, "products").set_index("product_id").category
    scored["category"] = scored.product_id.map(categories)
    scored["week_start"] = scored.forecast_date - pd.to_timedelta(scored.forecast_date.dt.weekday, unit="D")
    scored["error"] = (scored.forecast_mean - scored.units).abs()
    expected = scored.groupby(["week_start", "category"]).agg(
        actual=("units", "sum"), forecast=("forecast_mean", "sum"), error=("error", "sum"),
        days=("units", "size")).reset_index()
    got = rows.assign(week_start=pd.to_datetime(rows.week_start)).merge(
        expected, on=["week_start", "category"], how="outer", indicator=True)
    assert (got._merge == "both").all()
    assert (got.series_days == got.days).all() and (got.actual_units == got.actual).all()
    # Nothing sold (a category's first, one-day week here): no WAPE or bias rather than infinity.
    sold = got.actual.where(got.actual > 0)
    assert got.wape.to_numpy() == pytest.approx((got.error / sold).to_numpy(), nan_ok=True)
    assert got.bias.to_numpy() == pytest.approx(((got.forecast - got.actual) / sold).to_numpy(), nan_ok=True)
    assert got.wape.notna().sum() > len(got) / 2
    iso = got.week_start.dt.isocalendar()
    assert (got.iso_week == iso.week).all() and (got.iso_year == iso.year).all()


def test_run_history_lists_every_run(planned, warehouse):
    settings, first, latest, failed = planned
    rows = view(warehouse, "run_history").set_index("run_id")
    wh_runs = warehouse.query("SELECT run_id FROM `{dataset}.runs`")
    assert sorted(rows.index) == sorted(wh_runs.run_id) and {first.run_id, latest.run_id, failed} <= set(rows.index)
    assert rows.index[rows.is_latest_plan].tolist() == [latest.run_id]
    assert rows.loc[failed, "status"] == "FAILED" and "test failure" in rows.loc[failed, "error"]
    for result in (first, latest):
        row = rows.loc[result.run_id]
        assert row.status == "COMPLETE" and row.duration_s > 0
        for key in ("positions_at_risk_before", "positions_at_risk_after", "units_moved", "units_ordered",
                    "vehicles_used", "route_km", "route_cost", "expected_lost_units", "quarantined_rows"):
            assert float(row[key]) == pytest.approx(result.kpis[key]), key
        assert row.horizon_days == settings.horizon_days and row.chain_id == settings.chain_id
    run = pipeline.get_run(warehouse, latest.run_id)
    assert rows.loc[latest.run_id, "duration_s"] == pytest.approx(
        (run["finished_at"] - run["started_at"]).total_seconds(), abs=1e-3)


def test_views_never_show_a_running_run(planned, warehouse):
    """A run started after the latest plan, with results not yet published, changes nothing."""
    settings, _, latest, _ = planned
    run_id = pipeline.start_run(warehouse, settings)
    try:
        rows = pipeline.read_run_rows(warehouse, "transfers", latest.run_id).drop(columns="run_id")
        pipeline.replace_run_rows(warehouse, "transfers", run_id, rows)
        assert set(view(warehouse, "latest_plan_transfers").run_id) == {latest.run_id}
        assert set(view(warehouse, "stockout_risk").run_id) == {latest.run_id}
        history = view(warehouse, "run_history").set_index("run_id")
        assert history.loc[run_id, "status"] == "RUNNING" and not history.loc[run_id, "is_latest_plan"]
    finally:
        pipeline.fail_run(warehouse, run_id, "test over")

