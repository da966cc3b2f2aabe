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
    stock = ledger.stock_position(wh, date(2026, 1, 16), max_wait_days=2).set_index("store_id")
    assert {s: (int(stock.on_hand[s]), int(stock.on_order[s])) for s in "ABC"} == EXPECTED
    failed = ledger.failed_delivery_exceptions(wh, date(2026, 1, 16))
    assert sorted(zip(failed.store_id, failed.reason_code)) == [("B", "DELIVERY_FAILED"), ("C", "DELIVERY_FAILED")]
    assert failed.reason.str.contains("12 of 30 units").any() and failed.reason.str.contains("closed").any()
    # The 16th's routes carry the 30 units of O3 no route took; the 17th's O2 too (released, never
    # dispatched); no unit dispatched once is carried again.
    day16 = ledger.carried_lines(wh, date(2026, 1, 16), max_wait_days=2)
    assert list(zip(day16.line_id, day16.quantity)) == [("O3", 30)]
    day17 = ledger.carried_lines(wh, date(2026, 1, 17), max_wait_days=2)
    assert list(zip(day17.line_id, day17.quantity)) == [("O2", 40), ("O3", 30)]
    # Another plan of the 15th (a what-if) looking ahead to the 17th does not count the 15th's own
    # released lines: it is an alternative to them.
    ahead = ledger.carried_lines(wh, date(2026, 1, 17), max_wait_days=2, released_before=date(2026, 1, 15))
    assert ahead.empty


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


def _waiting_transfer(wh) -> None:
    """Snapshot of the 14th: A 100 on hand, C 0 (10 on order each). Run R1 of the 15th released a
    transfer A->C of 30 due the 16th, split over two loads: 12 units went on a route on the 16th
    (delivered), 18 never found a truck (the 16th's and 17th's routes skipped their load). Plans
    ran on the 15th, 16th and 17th."""
    wh.insert("inventory", pd.DataFrame([
        {"snapshot_date": S, "store_id": s, "product_id": "P", "on_hand": q, "on_order": 10, "max_capacity": 500}
        for s, q in (("A", 100), ("C", 0))]))
    wh.insert("committed_lines", pd.DataFrame([
        {"run_id": "R1", "run_date": date(2026, 1, 15), "line_type": "TRANSFER", "line_id": "T9", "product_id": "P",
         "origin_id": "A", "destination_id": "C", "quantity": 30, "value": 90.0,
         "expected_arrival": date(2026, 1, 16), "released_at": AT, "released_by": "p@x"}]))
    wh.insert("dispatch_tasks", pd.DataFrame([
        {"run_id": "R2", "run_date": date(2026, 1, 16), "task_id": "d-T9", "task_type": "DELIVERY",
         "vehicle_id": "V", "route_id": "r", "stop_sequence": 2, "location_id": "C", "shipment_id": "s-T9",
         "planned_time": AT, "source_run_id": "R1", "line_type": "TRANSFER", "line_id": "T9", "product_id": "P",
         "origin_id": "A", "destination_id": "C", "quantity": 12, "state": "CLOSED", "outcome": "SUCCEEDED",
         "units_delivered": 12, "closed_at": AT, "closed_by": "d@x", "note": None}]))
    for run_id, day in (("R1", 15), ("R2", 16), ("R3", 17)):
        wh.execute(sqlfiles.read_sql("queries/insert_run.sql"), {"run_id": run_id, "run_date": date(2026, 1, day),
                                                                 "started_at": AT, "parameters": "{}"})
        wh.execute(sqlfiles.read_sql("queries/finish_run.sql"), {"run_id": run_id, "status": "COMPLETE",
                                                                 "finished_at": AT, "timings": "{}", "kpis": "{}",
                                                                 "error": None})


def test_a_released_transfer_that_keeps_missing_trucks_is_cancelled(tmp_path):
    """With transfer_max_wait_days 1 the 18 units without a truck are carried by the routes of the
    16th and the 17th, then cancelled by the plans of the 18th: they stay at A, C no longer has them
    on order (so its order comes), and the 18th's plan alone reports it. Every unit is in one
    place each day: A + C on hand + in transit = 100 + 0 (the 12 delivered moved to C)."""
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", dataset="retailopt")
    wh.ensure_schema()
    try:
        _waiting_transfer(wh)
        for day, carried, a, c_hand, c_order in ((16, 18, 100 - 30, 0, 10 + 30),       # nothing closed before the 16th
                                                  (17, 18, 100 - 12 - 18, 12, 10 + 18),  # 12 delivered on the 16th
                                                  (18, 0, 100 - 12, 12, 10)):             # 18 cancelled: back at A
            run_date = date(2026, 1, day)
            lines = ledger.carried_lines(wh, run_date, max_wait_days=1)
            assert int(lines.quantity.sum()) == carried, day
            stock = ledger.stock_position(wh, run_date, max_wait_days=1).set_index("store_id")
            assert (int(stock.on_hand["A"]), int(stock.on_hand["C"]), int(stock.on_order["C"])) == (a, c_hand, c_order)
            in_transit = int(stock.on_order["C"]) - 10  # the snapshot's own 10 on order are the ERP's
            assert int(stock.on_hand["A"]) + int(stock.on_hand["C"]) + in_transit == 100, day
            cancelled = ledger.cancelled_transfer_exceptions(wh, run_date, max_wait_days=1)
            if day < 18:
                assert cancelled.empty
        assert list(zip(cancelled.store_id, cancelled.reason_code)) == [("C", "TRANSFER_CANCELLED")]
        assert "18 of 30 units" in cancelled.reason.iat[0] and "stay at store A" in cancelled.reason.iat[0]
        # The plan after the 18th's does not report it again; waiting longer cancels later.
        wh.execute(sqlfiles.read_sql("queries/insert_run.sql"), {"run_id": "R4", "run_date": date(2026, 1, 18),
                                                                 "started_at": AT, "parameters": "{}"})
        wh.execute(sqlfiles.read_sql("queries/finish_run.sql"), {"run_id": "R4", "status": "COMPLETE",
                                                                 "finished_at": AT, "timings": "{}", "kpis": "{}",
                                                                 "error": None})
        assert ledger.cancelled_transfer_exceptions(wh, date(2026, 1, 19), max_wait_days=1).empty
        assert int(ledger.carried_lines(wh, date(2026, 1, 18), max_wait_days=2).quantity.sum()) == 18
        with pytest.raises(ValueError, match="max_wait_days"):
            ledger.carried_lines(wh, date(2026, 1, 18), max_wait_days=-1)
    finally:
        wh.close()
