"""Consignments packed into vehicle loads: every load fits a vehicle, every unit is in exactly one load."""

from __future__ import annotations

from datetime import date, time

import pandas as pd
import pytest

from retailopt import pipeline
from retailopt.config import Settings, load_settings
from retailopt.routing import build_request, response_to_tables, solve_local
from retailopt.routing.loads import assign_shipments
from retailopt.routing.request import RequestBuildError
from retailopt.routing.tables import locations_frame
from retailopt.warehouse import open_warehouse

RUN = date(2024, 7, 1)


def _stores() -> pd.DataFrame:
    rows = [("S1", 41.90, -87.65), ("S2", 41.95, -87.70), ("S3", 41.85, -87.62)]
    return pd.DataFrame([{"store_id": s, "name": s, "latitude": la, "longitude": lo, "region": "R",
                          "receiving_open": time(6), "receiving_close": time(16), "capacity_units": 5000}
                         for s, la, lo in rows])


def _dcs() -> pd.DataFrame:
    return pd.DataFrame([{"dc_id": "DC1", "name": "DC", "latitude": 42.0, "longitude": -87.97, "region": "R",
                          "open_time": time(4), "close_time": time(22), "lead_time_days": 2}])


def _vehicles(caps: list[tuple[int, float | None]]) -> pd.DataFrame:
    return pd.DataFrame([{"vehicle_id": f"V{k}", "depot_id": "DC1", "capacity_units": u, "capacity_kg": kg,
                          "cost_per_km": 0.8, "cost_per_hour": 30.0, "fixed_cost": 50.0,
                          "shift_start": time(5), "shift_end": time(21)} for k, (u, kg) in enumerate(caps)])


def _products() -> pd.DataFrame:
    # P3 is heavy: weight, not units, fills a truck with it. P4 has no known weight.
    rows = [("P1", 0.5), ("P2", 1.0), ("P3", 4.0), ("P4", None)]
    return pd.DataFrame([{"product_id": p, "name": p, "category": "c", "unit_cost": 2.0, "price": 4.0,
                          "case_pack": 6, "unit_weight_kg": w, "unit_volume_l": None} for p, w in rows])


def _orders(lines: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(store, product, cases) lines from DC1, six units a case."""
    return pd.DataFrame([{"run_date": RUN, "order_id": f"O{k}", "dc_id": "DC1", "store_id": s, "product_id": p,
                          "quantity": 6 * c, "cases": c, "order_value": 10.0 * c, "expected_arrival": RUN}
                         for k, (s, p, c) in enumerate(lines)])


def _transfers(lines: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"run_date": RUN, "transfer_id": f"T{k}", "product_id": p, "from_store_id": a,
                          "to_store_id": b, "quantity": q, "value": 3.0 * q, "cost": 1.0, "distance_km": 5.0}
                         for k, (a, b, p, q) in enumerate(lines)])


def _no_transfers() -> pd.DataFrame:
    return _transfers([]).reindex(columns=["run_date", "transfer_id", "product_id", "from_store_id",
                                           "to_store_id", "quantity", "value", "cost", "distance_km"])


def _request(transfers: pd.DataFrame, orders: pd.DataFrame, vehicles: pd.DataFrame, **settings):
    return build_request(transfers, orders, _stores(), _dcs(), vehicles, _products(), run_date=RUN,
                         settings=Settings(routing_time_limit_s=2, **settings))


def _loads(frame: pd.DataFrame) -> dict[str, tuple[int, float]]:
    """Units and kg (known weights only) per shipment."""
    kg = frame.product_id.map(_products().set_index("product_id").unit_weight_kg).fillna(0.0) * frame.quantity
    grouped = frame.assign(kg=kg).groupby("shipment_id")
    return {s: (int(g.quantity.sum()), float(g.kg.sum())) for s, g in grouped}


def test_a_consignment_bigger_than_a_truck_becomes_loads_that_carry_exactly_its_units():
    # 1,200 units for S1 (no line over 300) and a truck of 300 units / 10,000 kg: four full loads.
    orders = _orders([("S1", "P1", 40), ("S1", "P2", 30), ("S1", "P1", 50), ("S1", "P2", 40), ("S2", "P1", 5)])
    transfers, packed = assign_shipments(_no_transfers(), orders, _vehicles([(300, 10_000.0), (100, None)]),
                                         _products())
    assert transfers.empty
    loads = _loads(packed)
    s1 = {k: v for k, v in loads.items() if k.startswith("O-DC1-S1-")}
    assert sorted(s1) == ["O-DC1-S1-1", "O-DC1-S1-2", "O-DC1-S1-3", "O-DC1-S1-4"]
    assert sum(u for u, _ in s1.values()) == 6 * 160 and all(u <= 300 for u, _ in s1.values())
    assert loads == {**s1, "O-DC1-S2-1": (30, 15.0)}
    # Lines that fit a truck are never split: one row per line, ids and totals unchanged.
    assert packed.order_id.tolist() == orders.order_id.tolist()
    assert packed.quantity.tolist() == orders.quantity.tolist()


def test_a_line_larger_than_a_truck_is_split_into_rows_per_load_in_whole_cases():
    orders = _orders([("S1", "P1", 130), ("S1", "P2", 10)])  # 780 + 60 units; trucks carry 300
    _, packed = assign_shipments(None, orders, _vehicles([(300, None)]), _products())
    big = packed[packed.order_id == "O0"]
    assert big.quantity.tolist() == [300, 300, 180]  # two full trucks of whole cases, then the rest
    assert big.quantity.sum() == 780 and big.cases.sum() == 130 and (big.quantity == 6 * big.cases).all()
    assert big.order_value.sum() == pytest.approx(1300.0) and (big.quantity <= 300).all()
    assert big.shipment_id.is_unique
    totals = packed.groupby("order_id")[["quantity", "cases", "order_value"]].sum()
    pd.testing.assert_frame_equal(totals, orders.set_index("order_id")[["quantity", "cases", "order_value"]],
                                  check_dtype=False)
    assert all(u <= 300 for u, _ in _loads(packed).values())
    # 840 units need three 300-unit loads: the small line rides in the remainder's load.
    assert packed.shipment_id.nunique() == 3


def test_weight_limits_the_load_when_weights_are_known():
    # 500 units of a 4 kg product: units fit one 1,000-unit truck, but it carries only 900 kg.
    orders = _orders([("S2", "P3", 50), ("S2", "P3", 30), ("S2", "P4", 100)])
    _, packed = assign_shipments(None, orders, _vehicles([(1000, 900.0)]), _products())
    loads = _loads(packed)
    assert sum(u for u, _ in loads.values()) == 6 * 180
    assert all(u <= 1000 and kg <= 900 for u, kg in loads.values())
    assert len(loads) == 3  # 2,000 kg of P3 in 900 kg loads; P4 (no weight) fills the room left


def test_each_consignment_is_sized_for_the_vehicle_that_needs_fewest_loads():
    orders = _orders([("S1", "P1", 100)])  # 600 units, 300 kg
    # A van of 250 units and a truck of 700 units but only 200 kg: the van needs 3 loads, the truck 2.
    _, packed = assign_shipments(None, orders, _vehicles([(250, None), (700, 200.0)]), _products())
    loads = _loads(packed)
    assert len(loads) == 2 and all(u <= 700 and kg <= 200 for u, kg in loads.values())


def test_labels_are_deterministic_and_transfers_are_packed_too():
    transfers = _transfers([("S1", "S2", "P1", 250), ("S1", "S2", "P2", 100), ("S3", "S2", "P1", 10)])
    orders = _orders([("S3", "P2", 60)])
    first = assign_shipments(transfers, orders, _vehicles([(300, None)]), _products())
    again = assign_shipments(transfers.iloc[::-1].reset_index(drop=True), orders, _vehicles([(300, None)]),
                             _products())
    assert first[0].shipment_id.tolist() == ["T-S1-S2-1", "T-S1-S2-2", "T-S3-S2-1"]
    assert again[0].shipment_id.tolist() == ["T-S3-S2-1", "T-S1-S2-2", "T-S1-S2-1"]
    assert first[1].shipment_id.tolist() == ["O-DC1-S3-1", "O-DC1-S3-2"]
    assert first[1].quantity.tolist() == [300, 60] and first[1].order_id.tolist() == ["O0", "O0"]


def test_without_a_fleet_a_consignment_stays_one_shipment():
    orders = _orders([("S1", "P1", 100), ("S1", "P2", 100)])
    _, packed = assign_shipments(None, orders, _vehicles([]), _products())
    assert packed.shipment_id.tolist() == ["O-DC1-S1-1"] * 2


def test_bad_quantity_is_named():
    orders = _orders([("S1", "P1", 1)]).assign(quantity=0)
    with pytest.raises(RequestBuildError, match=r"replenishment_orders row 1: quantity must be > 0"):
        assign_shipments(None, orders, _vehicles([(300, None)]), _products())


def test_request_shipments_are_the_loads_and_each_fits_a_vehicle():
    orders = _orders([("S1", "P1", 130), ("S1", "P2", 30), ("S2", "P3", 60), ("S3", "P1", 20)])
    transfers = _transfers([("S2", "S3", "P1", 120)])
    vehicles = _vehicles([(300, 1000.0), (200, 1000.0)])
    t, o = assign_shipments(transfers, orders, vehicles, _products())
    req = _request(t, o, vehicles)
    by_label = {s.label: s for s in req.model.shipments}
    lines = pd.concat([t, o])
    assert set(by_label) == set(lines.shipment_id)
    for label, (units, kg) in _loads(lines).items():
        demands = by_label[label].load_demands
        assert demands["units"].amount == units <= 300
        assert demands["weight_kg"].amount <= 1000
    # build_request packs on its own when the lines have no shipment_id yet: the same shipments.
    own = _request(transfers, orders, vehicles)
    assert [s.label for s in own.model.shipments] == [s.label for s in req.model.shipments]
    assert [s.load_demands["units"].amount for s in own.model.shipments] == [
        s.load_demands["units"].amount for s in req.model.shipments]


def test_a_shipment_id_shared_by_different_places_is_refused():
    orders = _orders([("S1", "P1", 10), ("S2", "P1", 10)]).assign(shipment_id="O-DC1-S1-1")
    with pytest.raises(RequestBuildError, match=r"replenishment_orders row 2: shipment_id='O-DC1-S1-1'"):
        _request(_no_transfers().assign(shipment_id=pd.Series(dtype=object)), orders,
                 _vehicles([(300, None)]))


def test_split_loads_are_all_routed_when_the_fleet_has_time():
    # 1,500 units for S1 against a 600-unit truck: one truck comes back to the centre for each load.
    orders = _orders([("S1", "P1", 150), ("S1", "P2", 100)])
    vehicles = _vehicles([(600, None)])
    t, o = assign_shipments(None, orders, vehicles, _products())
    assert o.shipment_id.nunique() == 3
    req = build_request(t, o, _stores(), _dcs(), vehicles, _products(), run_date=RUN,
                        settings=Settings(routing_time_limit_s=1, routing_penalty_factor=100.0))
    resp = solve_local(req, time_limit_s=1)
    routes, stops = response_to_tables(req, resp, run_date=RUN, locations=locations_frame(_stores(), _dcs()))
    assert not resp.skipped_shipments
    assert routes.units_carried.sum() == o.quantity.sum() == 1500
    delivered = stops[stops.visit_type == "DELIVERY"].set_index("shipment_id").units
    assert delivered.to_dict() == o.groupby("shipment_id").quantity.sum().to_dict()


def test_kpis_count_units_routed_and_not(tmp_path):
    settings = load_settings({"data_dir": str(tmp_path)})
    orders = _orders([("S1", "P1", 150), ("S2", "P2", 10)])
    _, o = assign_shipments(None, orders, _vehicles([(600, None)]), _products())
    routes = pd.DataFrame([{"run_date": RUN, "route_id": "r1", "vehicle_id": "V0", "depot_id": "DC1",
                            "start_time": pd.Timestamp("2024-07-01 11:00", tz="UTC"),
                            "end_time": pd.Timestamp("2024-07-01 13:00", tz="UTC"), "distance_km": 40.0,
                            "duration_minutes": 120.0, "stop_count": 2, "units_carried": 600, "cost": 90.0}])
    stops = pd.DataFrame([{"run_date": RUN, "route_id": "r1", "vehicle_id": "V0", "stop_sequence": k + 1,
                           "location_id": loc, "latitude": 42.0, "longitude": -87.9, "visit_type": kind,
                           "shipment_id": "O-DC1-S1-1", "units": 600,
                           "arrival_time": pd.Timestamp("2024-07-01 12:00", tz="UTC")}
                          for k, (loc, kind) in enumerate([("DC1", "PICKUP"), ("S1", "DELIVERY")])])
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        pipeline.replace_run_rows(wh, "replenishment_orders", "r", o, RUN)
        pipeline.replace_run_rows(wh, "routes", "r", routes, RUN)
        pipeline.replace_run_rows(wh, "route_stops", "r", stops, RUN)
        kpis = pipeline.compute_kpis(wh, "r")
    finally:
        wh.close()
    assert o.shipment_id.nunique() == 3 and len(o) == 3  # 900 units of S1 split 600 + 300
    assert kpis["orders"] == 2 and kpis["units_ordered"] == 960
    assert (kpis["shipments"], kpis["shipments_unrouted"]) == (3, 2)
    assert (kpis["units_routed"], kpis["units_unrouted"]) == (600, 360)


def test_a_case_that_fits_no_vehicle_travels_alone_and_is_skipped_with_its_reason():
    # One case of P3 weighs 24 kg; the only vehicle carries 20 kg.
    orders = _orders([("S1", "P3", 2), ("S1", "P1", 2)])
    vehicles = _vehicles([(300, 20.0)])
    t, o = assign_shipments(None, orders, vehicles, _products())
    heavy = o[o.product_id == "P3"]
    assert heavy.quantity.tolist() == [6, 6] and heavy.shipment_id.is_unique
    req = build_request(t, o, _stores(), _dcs(), vehicles, _products(), run_date=RUN,
                        settings=Settings(routing_time_limit_s=1, routing_penalty_factor=100.0))
    resp = solve_local(req, time_limit_s=1)
    skipped = {s.label: [r.code for r in s.reasons] for s in resp.skipped_shipments}
    assert set(skipped) == set(heavy.shipment_id)
    assert all(codes[0].name == "DEMAND_EXCEEDS_VEHICLE_CAPACITY" for codes in skipped.values())
