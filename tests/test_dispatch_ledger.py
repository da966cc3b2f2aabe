"""The ledger's SQL (stock position, carried lines, failed deliveries) on hand-made rows whose
answer is worked out by hand, on the embedded warehouse and on BigQuery (bqemulator): the same
GoogleSQL gives the same stock on both."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pandas as pd
import pytest

from retailopt import sqlfiles
from retailopt.dispatch import ledger
from retailopt.warehouse.duck import DuckDBWarehouse

S = date(2026, 1, 14)  # the snapshot's day
AT = datetime(2026, 1, 15, 12, tzinfo=timezone.utc)


def _rows(wh) -> None:
    wh.insert("inventory", pd.DataFrame([
        {"snapshot_date": S, "store_id": s, "product_id": "P", "on_hand": 100, "on_order": 10, "max_capacity": 500}
        for s in ("A", "B", "C")]))
    committed = [
        # run R1 of Jan 15: transfer A->B 20 delivered in full on the 15th; transfer A->C 10 failed;
        # order DC->B 30 delivered 12 of 30; order DC->C 40 not dispatched yet (due the 17th)
        ("R1", date(2026, 1, 15), "TRANSFER", "T1", "A", "B", 20, date(2026, 1, 15)),
        ("R1", date(2026, 1, 15), "TRANSFER", "T2", "A", "C", 10, date(2026, 1, 15)),
        ("R1", date(2026, 1, 15), "ORDER", "O1", "DC", "B", 30, date(2026, 1, 15)),
        ("R1", date(2026, 1, 15), "ORDER", "O2", "DC", "C", 40, date(2026, 1, 17)),
        # order DC->A 50: 20 of it on a route (its task still open), 30 on a load no route carried
        ("R1", date(2026, 1, 15), "ORDER", "O3", "DC", "A", 50, date(2026, 1, 15)),
        # released before the snapshot (the ERP counts it on order): delivered on the 15th in full
        ("R0", date(2026, 1, 13), "ORDER", "O0", "DC", "A", 5, date(2026, 1, 15)),
    ]
    wh.insert("committed_lines", pd.DataFrame([
        {"run_id": r, "run_date": d, "line_type": t, "line_id": i, "product_id": "P", "origin_id": o,
         "destination_id": to, "quantity": q, "value": 1.0, "expected_arrival": a, "released_at": AT,
         "released_by": "p@x"} for r, d, t, i, o, to, q, a in committed]))
    tasks = [("T1", "TRANSFER", "A", "B", 20, 20, "SUCCEEDED", None), ("T2", "TRANSFER", "A", "C", 10, 0, "FAILED", "closed"),
             ("O1", "ORDER", "DC", "B", 30, 12, "SUCCEEDED", "damaged"), ("O0", "ORDER", "DC", "A", 5, 5, "SUCCEEDED", None),
             ("O3", "ORDER", "DC", "A", 20, 0, "SUCCEEDED", None)]
    wh.insert("dispatch_tasks", pd.DataFrame([
        {"run_id": "R1", "run_date": date(2026, 1, 15), "task_id": f"d-{i}", "task_type": "DELIVERY", "vehicle_id": "V",
         "route_id": "r", "stop_sequence": 2, "location_id": to, "shipment_id": f"s-{i}", "planned_time": AT,
         "source_run_id": "R0" if i == "O0" else "R1", "line_type": t, "line_id": i, "product_id": "P",
         "origin_id": o, "destination_id": to, "quantity": q, "state": "CLOSED", "outcome": out,
         "units_delivered": got, "closed_at": AT, "closed_by": "d@x", "note": note}
        for i, t, o, to, q, got, out, note in tasks]).assign(
            state=lambda f: f.state.where(f.line_id != "O3", "OPEN"),
            outcome=lambda f: f.outcome.where(f.line_id != "O3", None),
            units_delivered=lambda f: f.units_delivered.where(f.line_id != "O3", None),
            closed_at=lambda f: f.closed_at.where(f.line_id != "O3", None),
            closed_by=lambda f: f.closed_by.where(f.line_id != "O3", None)))
    wh.execute(sqlfiles.read_sql("queries/insert_run.sql"), {"run_id": "R1", "run_date": date(2026, 1, 15),
                                                             "started_at": AT, "parameters": "{}"})
    wh.execute(sqlfiles.read_sql("queries/finish_run.sql"), {"run_id": "R1", "status": "COMPLETE", "finished_at": AT,
                                                             "timings": "{}", "kpis": "{}", "error": None})


# Worked out by hand, for the plan of Jan 16 (snapshot of the 14th: on hand 100, on order 10 each):
#   A: sent T1 (20 delivered), T2 failed (back: 0 net); O0 delivered 5, which the snapshot had on
#      order; O3 50 released, none closed: on order
#   B: T1 +20; O1 12 of 30 delivered, the rest is not coming
#   C: T2 failed (nothing); O2 40 released, open: on order
EXPECTED = {"A": (100 - 20 + 5, 10 - 5 + 50), "B": (100 + 20 + 12, 10), "C": (100, 10 + 40)}


def _check(wh) -> None:
    stock = ledger.stock_position(wh, date(2026, 1, 16)).set_index("store_id")
    assert {s: (int(stock.on_hand[s]), int(stock.on_order[s])) for s in "ABC"} == EXPECTED
    failed = ledger.failed_delivery_exceptions(wh, date(2026, 1, 16))
    assert sorted(zip(failed.store_id, failed.reason_code)) == [("B", "DELIVERY_FAILED"), ("C", "DELIVERY_FAILED")]
    assert failed.reason.str.contains("12 of 30 units").any() and failed.reason.str.contains("closed").any()
    # The 16th's routes carry the 30 units of O3 no route took; the 17th's O2 too (released, never
    # dispatched); no unit dispatched once is carried again.
    day16 = ledger.carried_lines(wh, date(2026, 1, 16))
    assert list(zip(day16.line_id, day16.quantity)) == [("O3", 30)]
    day17 = ledger.carried_lines(wh, date(2026, 1, 17))
    assert list(zip(day17.line_id, day17.quantity)) == [("O2", 40), ("O3", 30)]


def test_the_ledger_on_the_embedded_warehouse(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", dataset="retailopt")
    wh.ensure_schema()
    try:
        _rows(wh)
        _check(wh)
    finally:
        wh.close()


def test_the_ledger_on_bigquery(bqemu_client):
    from retailopt.warehouse.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    wh.ensure_schema()
    _rows(wh)
    _check(wh)
