"""Request builder, local solver, tables and GeoJSON, command line."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import pytest
from google.maps import routeoptimization_v1 as ro
from google.protobuf import duration_pb2
from google.type import latlng_pb2

from retailopt.config import Settings
from retailopt.routing import (RequestError, build_request, request_from_json, request_to_json,
                               response_to_geojson, response_to_tables, solve_local)
from retailopt.routing import cli
from retailopt.routing.tables import locations_frame
from retailopt.schema import table

Code = ro.SkippedShipment.Reason.Code
RUN = date(2024, 7, 1)  # CDT, UTC-5


def _stores() -> pd.DataFrame:
    rows = [("S1", 41.90, -87.65, time(6), time(14)), ("S2", 41.95, -87.70, time(7), time(15)),
            ("S3", 41.85, -87.62, time(5), time(12)), ("S4", 42.00, -87.80, time(8), time(18)),
            ("S5", 41.80, -87.75, time(6), time(16))]
    return pd.DataFrame([{"store_id": s, "name": s, "latitude": la, "longitude": lo, "region": "R",
                          "receiving_open": o, "receiving_close": c, "capacity_units": 1000}
                         for s, la, lo, o, c in rows])


def _dcs() -> pd.DataFrame:
    return pd.DataFrame([{"dc_id": "DC1", "name": "DC", "latitude": 42.0, "longitude": -87.97, "region": "R",
                          "open_time": time(4), "close_time": time(22), "lead_time_days": 2}])


def _vehicles(n: int = 2, capacity: int = 300) -> pd.DataFrame:
    return pd.DataFrame([{"vehicle_id": f"V{k}", "depot_id": "DC1", "capacity_units": capacity,
                          "capacity_kg": 800.0, "cost_per_km": 0.8, "cost_per_hour": 30.0, "fixed_cost": 100.0,
                          "shift_start": time(6), "shift_end": time(16)} for k in range(n)])


def _products() -> pd.DataFrame:
    return pd.DataFrame([{"product_id": "P1", "name": "a", "category": "c", "unit_cost": 2.0, "price": 4.0,
                          "case_pack": 6, "unit_weight_kg": 0.5, "unit_volume_l": None},
                         {"product_id": "P2", "name": "b", "category": "c", "unit_cost": 3.0, "price": 5.0,
                          "case_pack": 6, "unit_weight_kg": None, "unit_volume_l": None}])


def _transfers() -> pd.DataFrame:
    pairs = [("S1", "S2", 20), ("S3", "S4", 15), ("S5", "S1", 30), ("S2", "S3", 10)]
    return pd.DataFrame([{"run_date": RUN, "transfer_id": f"T{k}", "product_id": "P1" if k % 2 else "P2",
                          "from_store_id": a, "to_store_id": b, "quantity": q, "value": 400.0, "cost": 5.0,
                          "distance_km": 5.0} for k, (a, b, q) in enumerate(pairs)])


def _orders() -> pd.DataFrame:
    return pd.DataFrame([{"run_date": RUN, "order_id": "O1", "dc_id": "DC1", "store_id": "S4",
                          "product_id": "P1", "quantity": 48, "cases": 8, "order_value": 900.0,
                          "expected_arrival": RUN}])


def _request(**kw) -> ro.OptimizeToursRequest:
    frames = {"transfers": _transfers(), "orders": _orders(), "stores": _stores(), "dcs": _dcs(),
              "vehicles": _vehicles(), "products": _products()}
    frames.update(kw)
    return build_request(**frames, run_date=RUN, settings=Settings(routing_time_limit_s=2))


def _utc(ts) -> datetime:
    return datetime.fromtimestamp(ts.timestamp(), tz=timezone.utc)


# --- request builder ------------------------------------------------------------------------------

def test_build_request_maps_rows_to_shipments_and_vehicles():
    req = _request()
    m = req.model
    assert [s.label for s in m.shipments] == ["T-S1-S2-1", "T-S3-S4-1", "T-S5-S1-1", "T-S2-S3-1", "O-DC1-S4-1"]
    t0 = m.shipments[0]
    # S1 receives from 06:00 to 14:00 Chicago time = 11:00 to 19:00 UTC in July.
    assert _utc(t0.pickups[0].time_windows[0].start_time) == datetime(2024, 7, 1, 11, tzinfo=timezone.utc)
    assert _utc(t0.pickups[0].time_windows[0].end_time) == datetime(2024, 7, 1, 19, tzinfo=timezone.utc)
    assert t0.load_demands["units"].amount == 20
    assert "weight_kg" not in t0.load_demands  # P2 has no unit weight
    assert m.shipments[1].load_demands["weight_kg"].amount == 8  # ceil(15 x 0.5)
    assert t0.penalty_cost == pytest.approx(400.0)
    assert m.shipments[4].pickups[0].arrival_location.latitude == pytest.approx(42.0)  # the DC
    v = m.vehicles[0]
    assert v.load_limits["units"].max_load == 300 and v.load_limits["weight_kg"].max_load == 800
    assert (v.cost_per_kilometer, v.cost_per_hour, v.fixed_cost) == (0.8, 30.0, 100.0)
    assert v.route_duration_limit.max_duration == timedelta(hours=10)
    assert _utc(m.global_start_time) == datetime(2024, 7, 1, 5, tzinfo=timezone.utc)
    assert req.use_geodesic_distances and req.geodesic_meters_per_second == pytest.approx(35 / 3.6)


def test_lines_between_the_same_places_travel_as_one_shipment():
    extra = pd.concat([_transfers(), _transfers().iloc[[0]].assign(transfer_id="T9", product_id="P1",
                                                                  quantity=6, value=50.0)])
    m = _request(transfers=extra).model
    first = [s for s in m.shipments if s.label == "T-S1-S2-1"]
    assert len(m.shipments) == 5 and len(first) == 1
    assert first[0].load_demands["units"].amount == 26
    assert first[0].penalty_cost == pytest.approx(450.0)
    assert "weight_kg" not in first[0].load_demands  # one line (P2) has no unit weight


def test_request_json_is_the_api_form_and_round_trips():
    req = _request()
    text = request_to_json(req)
    data = json.loads(text)
    assert "globalStartTime" in data["model"] and "loadDemands" in data["model"]["shipments"][0]
    assert data["model"]["globalStartTime"].endswith("Z")
    assert request_from_json(text) == req


def test_build_request_names_bad_rows():
    bad = _transfers()
    bad.loc[2, "to_store_id"] = "S99"
    with pytest.raises(ValueError, match=r"transfers row 3: to_store_id='S99'"):
        _request(transfers=bad)


# --- local solver ---------------------------------------------------------------------------------

def _check_feasible(req: ro.OptimizeToursRequest, resp: ro.OptimizeToursResponse) -> None:
    """Every constraint the request states holds in the response."""
    m = req.model
    seen: dict[int, list[tuple[int, bool]]] = {}
    for route in resp.routes:
        veh = m.vehicles[route.vehicle_index]
        if not route.visits:
            continue
        assert len(route.transitions) == len(route.visits) + 1
        load: dict[str, int] = {}
        for visit in route.visits:  # delivery-only shipments are on board from the start
            sh = m.shipments[visit.shipment_index]
            if not sh.pickups:
                for key, amount in sh.load_demands.items():
                    load[key] = load.get(key, 0) + amount.amount
        for k, visit in enumerate(route.visits):
            sh = m.shipments[visit.shipment_index]
            vr = (sh.pickups if visit.is_pickup else sh.deliveries)[0]
            start = visit.start_time.timestamp()
            if vr.time_windows:
                assert any(w.start_time.timestamp() - 1e-6 <= start <= w.end_time.timestamp() + 1e-6
                           for w in vr.time_windows)
            sign = 1 if visit.is_pickup else -1
            for key, amount in sh.load_demands.items():
                load[key] = load.get(key, 0) + sign * amount.amount
                lim = veh.load_limits.get(key)
                assert load[key] >= 0
                if lim is not None:
                    assert load[key] <= lim.max_load
            seen.setdefault(visit.shipment_index, []).append((route.vehicle_index, visit.is_pickup))
            arrive = (route.transitions[k].start_time.timestamp()
                      + route.transitions[k].travel_duration.total_seconds())
            assert arrive <= start + 1e-3
        if "route_duration_limit" in veh:
            span = route.vehicle_end_time.timestamp() - route.vehicle_start_time.timestamp()
            assert span <= veh.route_duration_limit.max_duration.total_seconds() + 1e-3
    for s, visits in seen.items():
        sh = m.shipments[s]
        assert len({v for v, _ in visits}) == 1  # pickup and delivery on the same vehicle
        assert [p for _, p in visits] == [True, False][: len(visits)] or not sh.pickups


def test_solve_local_serves_every_shipment_within_constraints():
    req = _request()
    resp = solve_local(req, time_limit_s=0.5)
    assert isinstance(resp, ro.OptimizeToursResponse)
    assert not resp.skipped_shipments
    assert resp.metrics.aggregated_route_metrics.performed_shipment_count == 5
    _check_feasible(req, resp)
    used = [r for r in resp.routes if r.visits]
    assert resp.metrics.used_vehicle_count == len(used) == 1  # fixed cost: one van carries it all
    r = used[0]
    total = sum(t.travel_distance_meters for t in r.transitions)
    assert r.metrics.travel_distance_meters == pytest.approx(total)
    assert r.route_costs["model.vehicles.fixed_cost"] == 100.0
    assert r.route_total_cost == pytest.approx(sum(r.route_costs.values()))
    assert resp.metrics.total_cost == pytest.approx(sum(x.route_total_cost for x in resp.routes))
    # Geodesic travel at 35 km/h: a transition's duration is its distance over the speed.
    t = next(t for t in r.transitions if t.travel_distance_meters > 0)
    assert t.travel_duration.total_seconds() == pytest.approx(t.travel_distance_meters / (35 / 3.6), abs=1e-3)


def test_bad_shipments_are_skipped_with_reasons_not_crashes():
    req = _request()
    m = req.model
    m.shipments[0].load_demands["units"] = ro.Shipment.Load(amount=5000)  # larger than every van
    late = ro.TimeWindow(start_time={"seconds": int(datetime(2024, 7, 2, 3, tzinfo=timezone.utc).timestamp())},
                         end_time={"seconds": int(datetime(2024, 7, 2, 4, tzinfo=timezone.utc).timestamp())})
    m.shipments[1].deliveries[0].time_windows = [late]  # 22:00 Chicago, after every shift
    m.shipments[2].pickups[0].arrival_location = None  # no coordinates, no tag
    resp = solve_local(req, time_limit_s=0.5)
    reasons = {s.index: [r.code for r in s.reasons] for s in resp.skipped_shipments}
    assert reasons[0] == [Code.DEMAND_EXCEEDS_VEHICLE_CAPACITY]
    assert resp.skipped_shipments[0].reasons[0].example_exceeded_capacity_type == "units"
    assert reasons[1] == [Code.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS]
    assert reasons[2] == [Code.CODE_UNSPECIFIED]
    assert resp.validation_errors[0].fields[0].name == "model"
    assert {3, 4}.isdisjoint(reasons)  # the good ones are still served
    _check_feasible(req, resp)


def test_unsupported_and_malformed_fields_are_refused_by_name():
    req = _request()
    req.model.shipments[0].pickup_to_delivery_time_limit = duration_pb2.Duration(seconds=60)
    with pytest.raises(RequestError, match=r"model\.shipments\[0\]\.pickup_to_delivery_time_limit"):
        solve_local(req, time_limit_s=0.5)
    req = _request()
    req.model.vehicles[1].break_rule = ro.BreakRule()
    req.model.vehicles[1].break_rule.break_requests.append(ro.BreakRule.BreakRequest())
    with pytest.raises(RequestError, match=r"model\.vehicles\[1\]\.break_rule"):
        solve_local(req, time_limit_s=0.5)
    req = _request()
    req.model.shipments[0].allowed_vehicle_indices = [7]
    with pytest.raises(RequestError, match="allowed_vehicle_indices"):
        solve_local(req, time_limit_s=0.5)
    req = _request()
    req.use_geodesic_distances = False
    with pytest.raises(RequestError, match="use_geodesic_distances"):
        solve_local(req, time_limit_s=0.5)


def _point(lat: float, lng: float) -> latlng_pb2.LatLng:
    return latlng_pb2.LatLng(latitude=lat, longitude=lng)


def _visit(**kw) -> ro.Shipment.VisitRequest:
    return ro.Shipment.VisitRequest(**kw)


def test_matrix_by_tags_delivery_only_pickup_only_and_allowed_vehicles():
    # Locations A (depot), B, C; travel only as the matrix says.
    secs = {("A", "B"): 100, ("B", "C"): 100, ("C", "A"): 100, ("B", "A"): 100, ("A", "C"): 100,
            ("C", "B"): 100}
    tags = ["A", "B", "C"]
    rows = [ro.ShipmentModel.DurationDistanceMatrix.Row(
        durations=[duration_pb2.Duration(seconds=secs.get((a, b), 0)) for b in tags],
        meters=[secs.get((a, b), 0) * 10.0 for b in tags]) for a in tags]
    load = {"units": ro.Shipment.Load(amount=6)}
    shipments = [
        ro.Shipment(label="deliver-B", deliveries=[_visit(tags=["B"])], load_demands=load),
        ro.Shipment(label="collect-B", pickups=[_visit(tags=["B"])], load_demands=load),
        ro.Shipment(label="C-to-A", pickups=[_visit(tags=["C"])], deliveries=[_visit(tags=["A"])],
                    load_demands={"units": ro.Shipment.Load(amount=1)}, allowed_vehicle_indices=[1]),
    ]
    vehicles = [ro.Vehicle(label=f"v{k}", start_tags=["A"], end_tags=["A"], cost_per_kilometer=1.0,
                           load_limits={"units": ro.Vehicle.LoadLimit(max_load=10)}) for k in range(2)]
    req = ro.OptimizeToursRequest(model=ro.ShipmentModel(
        shipments=shipments, vehicles=vehicles, duration_distance_matrices=[
            ro.ShipmentModel.DurationDistanceMatrix(rows=rows)],
        duration_distance_matrix_src_tags=tags, duration_distance_matrix_dst_tags=tags))
    resp = solve_local(req, time_limit_s=0.5)
    assert not resp.skipped_shipments
    by_shipment = {v.shipment_index: r.vehicle_index for r in resp.routes for v in r.visits}
    assert by_shipment[2] == 1
    for r in resp.routes:
        ships = [(v.shipment_index, v.is_pickup) for v in r.visits]
        if (0, False) in ships and (1, True) in ships:
            # 6 on board from the start plus 6 collected exceeds 10: the delivery must come first.
            assert ships.index((0, False)) < ships.index((1, True))
        for t in r.transitions:
            assert t.travel_distance_meters == pytest.approx(t.travel_duration.total_seconds() * 10.0)


def test_penalty_makes_a_worthless_shipment_optional():
    req = _request()
    far = req.model.shipments[3]
    far.penalty_cost = 0.01
    far.deliveries[0].arrival_location = _point(42.4, -88.3)  # far away and worth a cent
    resp = solve_local(req, time_limit_s=0.5)
    assert [s.index for s in resp.skipped_shipments] == [3]
    assert resp.metrics.costs["model.shipments.penalty_cost"] == pytest.approx(0.01)


def test_distance_limit_skips_with_reason():
    req = _request()
    for v in req.model.vehicles:
        v.route_distance_limit = ro.DistanceLimit(max_meters=1000)
    resp = solve_local(req, time_limit_s=0.5)
    assert len(resp.skipped_shipments) == 5
    assert all(s.reasons[0].code == Code.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT
               for s in resp.skipped_shipments)
    assert resp.metrics.skipped_mandatory_shipment_count == 0  # all have a penalty


def test_validate_only_returns_no_routes():
    req = _request()
    req.solving_mode = ro.OptimizeToursRequest.SolvingMode.VALIDATE_ONLY
    resp = solve_local(req, time_limit_s=0.5)
    assert not resp.routes and not resp.validation_errors


# --- tables and GeoJSON ---------------------------------------------------------------------------

def test_tables_match_the_schema_and_geojson_draws_routes():
    req = _request()
    resp = solve_local(req, time_limit_s=0.5)
    locations = locations_frame(_stores(), _dcs())
    routes, stops = response_to_tables(req, resp, run_date=RUN, locations=locations)
    # CO2e is added by routing.emissions.with_emissions, from the fleet.
    assert list(routes.columns) == [c for c in table("routes").column_names if c not in ("run_id", "co2_kg",
                                                                                          "carbon_cost")]
    assert list(stops.columns) == [c for c in table("route_stops").column_names if c != "run_id"]
    assert len(stops) == 10 and set(stops["visit_type"]) == {"PICKUP", "DELIVERY"}
    assert routes["depot_id"].tolist() == ["DC1"]
    assert set(stops["location_id"]) <= {"S1", "S2", "S3", "S4", "S5", "DC1"}
    assert routes["units_carried"].iloc[0] == 20 + 15 + 30 + 10 + 48
    assert str(stops["arrival_time"].dt.tz) == "UTC"
    assert routes["stop_count"].iloc[0] == 10
    t1 = stops[stops["shipment_id"] == "T-S3-S4-1"]
    assert t1["visit_type"].tolist() == ["PICKUP", "DELIVERY"]
    gj = response_to_geojson(req, resp, run_date=RUN, locations=locations)
    kinds = [f["geometry"]["type"] for f in gj["features"]]
    assert kinds.count("LineString") == 1 and kinds.count("Point") == 10
    line = gj["features"][0]["geometry"]["coordinates"]
    assert line[0] == line[-1] == [-87.97, 42.0] and len(line) == 12
    json.dumps(gj)


# --- command line ---------------------------------------------------------------------------------

def test_cli_solves_a_file_and_reports_malformed_ones(tmp_path, capsys):
    src = tmp_path / "request.json"
    src.write_text(request_to_json(_request()))
    out = tmp_path / "response.json"
    assert cli.main([str(src), "-o", str(out), "--time-limit", "1"]) == 0
    resp = ro.OptimizeToursResponse.from_json(out.read_text())
    assert resp.metrics.aggregated_route_metrics.performed_shipment_count == 5
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"shipments": [{"pickupz": []}]}}')
    assert cli.main([str(bad), "-o", str(out), "--time-limit", "1"]) == 2
    assert "pickupz" in capsys.readouterr().err
    bad.write_text("{not json")
    assert cli.main([str(bad), "-o", str(out), "--time-limit", "1"]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_a_vehicle_that_cannot_drive_and_an_empty_model_do_not_crash():
    req = _request()
    gone = ro.TimeWindow(start_time={"seconds": 0}, end_time={"seconds": 3600})  # 1970, outside the day
    req.model.vehicles[0].start_time_windows = [gone]
    resp = solve_local(req, time_limit_s=0.5)
    assert not resp.skipped_shipments and not resp.routes[0].visits and resp.routes[1].visits
    for v in req.model.vehicles:
        v.start_time_windows = [gone]
    resp = solve_local(req, time_limit_s=0.5)
    assert {r.code for s in resp.skipped_shipments for r in s.reasons} == {
        Code.CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS}
    empty = ro.OptimizeToursRequest(model=ro.ShipmentModel(vehicles=[ro.Vehicle(label="v")]),
                                    use_geodesic_distances=True, geodesic_meters_per_second=10)
    assert len(solve_local(empty, time_limit_s=0.5).routes) == 1


@pytest.mark.parametrize("seed", range(4))
def test_random_requests_give_feasible_responses(seed):
    """Mixed shipment kinds, windows, capacities and penalties: whatever is served obeys the request."""
    import random

    rnd = random.Random(seed)
    day = int(datetime(2024, 7, 1, 5, tzinfo=timezone.utc).timestamp())

    def window() -> list[ro.TimeWindow]:
        if rnd.random() < 0.3:
            return []
        a = rnd.uniform(0, 20)
        return [ro.TimeWindow(start_time={"seconds": day + int(a * 3600)},
                              end_time={"seconds": day + int((a + rnd.uniform(0.2, 6)) * 3600)})]

    def visit() -> ro.Shipment.VisitRequest:
        return ro.Shipment.VisitRequest(arrival_location=_point(41.8 + rnd.random() * 0.3, -87.9 + rnd.random() * 0.3),
                                        duration=duration_pb2.Duration(seconds=rnd.choice([0, 300, 900])),
                                        time_windows=window())

    shipments = []
    for k in range(14):
        kind = rnd.choice(["pair", "pair", "pickup", "delivery"])
        sh = ro.Shipment(label=f"s{k}", load_demands={"units": ro.Shipment.Load(amount=rnd.randint(1, 60)),
                                                      "kg": ro.Shipment.Load(amount=rnd.randint(0, 90))})
        if kind in ("pair", "pickup"):
            sh.pickups = [visit()]
        if kind in ("pair", "delivery"):
            sh.deliveries = [visit()]
        if rnd.random() < 0.7:
            sh.penalty_cost = rnd.uniform(0, 300)
        if rnd.random() < 0.2:
            sh.allowed_vehicle_indices = [rnd.randrange(3)]
        shipments.append(sh)
    depot = _point(41.9, -87.7)
    vehicles = [ro.Vehicle(label=f"v{k}", start_location=depot, end_location=depot if k else None,
                           load_limits={"units": ro.Vehicle.LoadLimit(max_load=rnd.choice([50, 100, 200])),
                                        "kg": ro.Vehicle.LoadLimit(max_load=150)},
                           cost_per_kilometer=1.0, cost_per_hour=rnd.choice([0.0, 20.0]),
                           fixed_cost=rnd.choice([0.0, 50.0]),
                           route_duration_limit=ro.Vehicle.DurationLimit(
                               max_duration=duration_pb2.Duration(seconds=8 * 3600)))
                for k in range(3)]
    req = ro.OptimizeToursRequest(
        model=ro.ShipmentModel(shipments=shipments, vehicles=vehicles, global_start_time={"seconds": day},
                               global_end_time={"seconds": day + 86400}),
        use_geodesic_distances=True, geodesic_meters_per_second=10.0)
    resp = solve_local(req, time_limit_s=0.3)
    _check_feasible(req, resp)
    served = {v.shipment_index for r in resp.routes for v in r.visits}
    skipped = {s.index for s in resp.skipped_shipments}
    assert served | skipped == set(range(14)) and not served & skipped
    for r in resp.routes:
        for v in r.visits:
            allowed = list(shipments[v.shipment_index].allowed_vehicle_indices)
            assert not allowed or r.vehicle_index in allowed


def test_solve_routes_falls_back_to_local_with_geodesic_distances():
    from retailopt.routing import solve_routes

    settings = Settings(routing_engine="api", routing_time_limit_s=0.5)  # no project: not configured
    frames = dict(transfers=_transfers(), orders=_orders(), stores=_stores(), dcs=_dcs(), vehicles=_vehicles(),
                  products=_products())
    req = build_request(**frames, run_date=RUN, settings=settings)
    assert not req.use_geodesic_distances  # built for the road network
    resp = solve_routes(req, settings=settings)
    assert resp.metrics.aggregated_route_metrics.performed_shipment_count == 5
    assert not req.use_geodesic_distances  # the caller's request is unchanged
