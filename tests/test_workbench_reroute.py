"""The released plan's lines: plan rows merged per line, scaled to the approved quantity."""

from __future__ import annotations

import pandas as pd
import pytest

from retailopt.workbench import reroute


def _orders() -> pd.DataFrame:
    # Order O1 travels in two loads (a line larger than a truck); O2 in one.
    return pd.DataFrame({
        "run_id": "r", "run_date": pd.Timestamp("2026-01-15"),
        "order_id": ["O1", "O1", "O2"], "dc_id": "DC01", "store_id": ["S1", "S1", "S2"], "product_id": ["P1", "P1", "P2"],
        "quantity": [60, 40, 12], "cases": [5, 5, 1], "order_value": [600.0, 400.0, 30.0],
        "expected_arrival": pd.Timestamp("2026-01-17"), "shipment_id": ["R-DC01-S1-1", "R-DC01-S1-2", "R-DC01-S2-1"]})


def test_an_approved_line_is_one_row_at_its_approved_quantity():
    lines = reroute.approved_lines(_orders(), "ORDER", {"O1": 50})
    assert lines.order_id.tolist() == ["O1"] and "shipment_id" not in lines.columns
    row = lines.iloc[0]
    assert (row.quantity, row.cases, row.order_value) == (50, 5, pytest.approx(500.0))  # 10 units a case
    assert row.store_id == "S1" and row.expected_arrival == pd.Timestamp("2026-01-17")


def test_lines_approved_at_zero_or_not_approved_are_left_out():
    assert reroute.approved_lines(_orders(), "ORDER", {"O1": 0, "O2": 12}).order_id.tolist() == ["O2"]
    assert reroute.approved_lines(_orders(), "ORDER", {}).empty


def test_transfer_money_follows_the_quantity():
    moves = pd.DataFrame({"transfer_id": ["T1"], "product_id": ["P1"], "from_store_id": ["S1"], "to_store_id": ["S2"],
                          "quantity": [8], "value": [80.0], "cost": [4.0], "distance_km": [12.5],
                          "shipment_id": ["T-S1-S2-1"]})
    row = reroute.approved_lines(moves, "TRANSFER", {"T1": 2}).iloc[0]
    assert (row.quantity, row.value, row.cost, row.distance_km) == (2, 20.0, 1.0, 12.5)


def test_a_plan_is_released_as_planned_only_when_every_line_keeps_its_quantity():
    orders = _orders()
    assert reroute.planned_as_released(orders, "ORDER", {"O1": 100, "O2": 12})
    assert not reroute.planned_as_released(orders, "ORDER", {"O1": 100})  # O2 left out
    assert not reroute.planned_as_released(orders, "ORDER", {"O1": 90, "O2": 12})  # O1 edited
    assert reroute.planned_as_released(orders.iloc[0:0], "ORDER", {})


def test_plan_rows_become_load_rows():
    loads = reroute.loads_frame(_orders(), "ORDER", "r")
    assert loads.columns.tolist() == reroute.LOAD_COLUMNS and set(loads.source_run_id) == {"r"}
    assert loads.groupby("shipment_id").quantity.sum().to_dict() == {"R-DC01-S1-1": 60, "R-DC01-S1-2": 40,
                                                                      "R-DC01-S2-1": 12}
    assert set(loads.source_id) == {"DC01"} and set(loads.line_type) == {"ORDER"}
