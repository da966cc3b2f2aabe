"""A large request solved as several problems within one time limit: by depot, by sector, most
valuable loads first; the merged response covers every shipment of the whole request once."""

from __future__ import annotations

import math
import time as _time
from datetime import date, time

import numpy as np
import pandas as pd
import pytest

from retailopt.config import Settings
from retailopt.routing import build_request, response_to_tables, solve_local
from retailopt.routing.parts import solve_in_parts, split_request
from retailopt.routing.tables import locations_frame
from retailopt.routing.unrouted import unrouted_exceptions, unrouted_value

from test_routing import _check_feasible

RUN = date(2024, 7, 1)
DCS = {"DC1": (42.05, -87.95), "DC2": (41.65, -87.70)}


def _stores(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    lat, lng = rng.uniform(41.6, 42.1, n), rng.uniform(-88.1, -87.6, n)
    return pd.DataFrame({"store_id": [f"S{i:03d}" for i in range(n)], "name": "s", "latitude": lat,
                         "longitude": lng, "region": "R", "receiving_open": time(5), "receiving_close": time(18),
                         "capacity_units": 10**6})


def _dcs() -> pd.DataFrame:
    return pd.DataFrame([{"dc_id": k, "name": k, "latitude": la, "longitude": lo, "region": "R",
                          "open_time": time(4), "close_time": time(22), "lead_time_days": 2}
                         for k, (la, lo) in DCS.items()])


def _vehicles(per_dc: int, capacity: int = 1000) -> pd.DataFrame:
    return pd.DataFrame([{"vehicle_id": f"{dc}-V{k}", "depot_id": dc, "capacity_units": capacity,
                          "capacity_kg": None, "cost_per_km": 0.8, "cost_per_hour": 30.0, "fixed_cost": 50.0,
                          "shift_start": time(5), "shift_end": time(17)}
                         for dc in DCS for k in range(per_dc)])


def _products() -> pd.DataFrame:
    return pd.DataFrame([{"product_id": "P1", "name": "p", "category": "c", "unit_cost": 2.0, "price": 4.0,
                          "case_pack": 10, "unit_weight_kg": None, "unit_volume_l": None}])


def _orders(stores: pd.DataFrame, units: int = 600) -> pd.DataFrame:
    """One order a store, from the nearest centre; values differ so the order of value is clear."""
    rows = []
    for k, s in enumerate(stores.itertuples()):
        dc = min(DCS, key=lambda d: math.dist(DCS[d], (s.latitude, s.longitude)))
        rows.append({"run_date": RUN, "order_id": f"O{k}", "dc_id": dc, "store_id": s.store_id,
                     "product_id": "P1", "quantity": units, "cases": units // 10,
                     "order_value": 100.0 + 7.0 * k, "expected_arrival": RUN})
    return pd.DataFrame(rows)


def _no_transfers() -> pd.DataFrame:
    return pd.DataFrame(columns=["run_date", "transfer_id", "product_id", "from_store_id", "to_store_id",
                                 "quantity", "value", "cost", "distance_km"])


def _request(n_stores: int, per_dc: int, limit: float = 4.0):
    stores = _stores(n_stores)
    orders = _orders(stores)
    req = build_request(_no_transfers(), orders, stores, _dcs(), _vehicles(per_dc), _products(), run_date=RUN,
                        settings=Settings(routing_time_limit_s=limit))
    return req, stores, orders


def test_a_large_request_splits_by_depot_and_sector_and_every_load_is_in_one_problem():
    req, _, _ = _request(120, per_dc=8)
    problems = split_request(req, max_shipments=25)
    seen = [s for _, _, offered, left in problems for s in offered + left]
    assert sorted(seen) == list(range(len(req.model.shipments)))
    assert sorted(v for _, vehicles, _, _ in problems for v in vehicles) == list(range(len(req.model.vehicles)))
    for name, vehicles, offered, left in problems:
        depots = {req.model.vehicles[v].display_name for v in vehicles}
        assert depots == {name.split()[0]}  # a problem's vehicles share its depot
        assert len(offered) + len(left) <= 25 and vehicles
        for s in offered + left:  # each load is picked up at its problem's depot
            pickup = req.model.shipments[s].pickups[0].arrival_location
            assert (round(pickup.latitude, 4), round(pickup.longitude, 4)) == tuple(
                round(x, 4) for x in DCS[name.split()[0]])
    assert len(problems) > 2  # the 120 loads of two depots need sectors at 25 a problem


def test_when_the_fleet_cannot_carry_everything_the_most_valuable_loads_are_offered():
    # Stores on a ring 20 km around DC1: every round trip takes as long, so value alone decides.
    lat0, lng0 = DCS["DC1"]
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    stores = _stores(60).assign(latitude=lat0 + 0.18 * np.sin(angles),
                                longitude=lng0 + 0.24 * np.cos(angles))
    orders = _orders(stores).assign(dc_id="DC1")
    req = build_request(_no_transfers(), orders, stores, _dcs(), _vehicles(1), _products(), run_date=RUN,
                        settings=Settings(routing_time_limit_s=4))
    problems = split_request(req, slack=1.0)
    value = {i: s.penalty_cost for i, s in enumerate(req.model.shipments)}
    left_out = [s for _, _, _, left in problems for s in left]
    assert left_out, "two vehicles cannot drive 60 round trips in a shift"
    for _, _, offered, left in problems:
        if offered and left:
            assert min(value[s] for s in offered) > max(value[s] for s in left)


def test_a_small_request_stays_one_problem_with_the_whole_fleet():
    req, _, _ = _request(20, per_dc=3)
    problems = split_request(req)
    assert len(problems) == 1 and problems[0][0] == "all"
    assert problems[0][1] == list(range(len(req.model.vehicles)))
    assert problems[0][2] == list(range(len(req.model.shipments))) and problems[0][3] == []


def test_a_problem_gets_at_most_one_vehicle_per_load_from_both_depots_and_of_every_size():
    # 8 loads and 2 x 40 vehicles, half of them too small for a load: the model keeps 8 vehicles
    # (no route needs more), each able to carry a load, from the depots the loads are near.
    stores = _stores(8)
    orders = _orders(stores).assign(order_value=lambda f: f.order_value * 20)  # every load worth its trip
    fleet = pd.concat([_vehicles(20), _vehicles(20, capacity=100).assign(
        vehicle_id=lambda f: f.vehicle_id + "-small")], ignore_index=True)
    req = build_request(_no_transfers(), orders, stores, _dcs(), fleet, _products(), run_date=RUN,
                        settings=Settings(routing_time_limit_s=2))
    (name, vehicles, offered, left), = split_request(req)
    assert len(offered) == 8 and not left
    assert len(vehicles) == 8
    assert all(req.model.vehicles[v].load_limits["units"].max_load >= 600 for v in vehicles)
    depots = {req.model.vehicles[v].display_name.split()[0] for v in vehicles}
    assert depots == set(orders.dc_id)
    response = solve_in_parts(req, time_limit_s=2, solve=solve_local).response
    _check_feasible(req, response)
    assert {v.shipment_index for r in response.routes for v in r.visits} == set(range(8))
    assert len(response.routes) == len(fleet)  # the response still names every vehicle


@pytest.mark.parametrize("per_dc", [1, 6])
def test_solved_in_parts_within_the_limit_every_load_routed_or_skipped_with_its_value(per_dc):
    limit = 4.0
    req, stores, orders = _request(90, per_dc=per_dc, limit=limit)
    started = _time.monotonic()
    result = solve_in_parts(req, time_limit_s=limit, solve=solve_local, max_shipments=30)
    wall = _time.monotonic() - started
    assert wall < limit + 1.5  # the limit holds for all problems together (plus merging)
    assert all(p.solve_s <= p.time_limit_s + 0.5 for p in result.problems)
    response = result.response
    _check_feasible(req, response)
    routed = {v.shipment_index for r in response.routes for v in r.visits}
    skipped = {sk.index for sk in response.skipped_shipments}
    assert routed.isdisjoint(skipped) and routed | skipped == set(range(len(req.model.shipments)))
    assert len(response.skipped_shipments) == len(skipped)
    assert [r.vehicle_index for r in response.routes] == list(range(len(req.model.vehicles)))
    assert response.metrics.aggregated_route_metrics.performed_shipment_count == len(routed)
    assert sum(p.routed for p in result.problems) == len(routed)
    for sk in response.skipped_shipments:
        assert sk.penalty_cost == pytest.approx(req.model.shipments[sk.index].penalty_cost)
    if per_dc == 1:
        assert skipped  # one truck per centre carries a part of 90 loads
        # The loads left behind are worth less than those carried.
        values = {i: s.penalty_cost for i, s in enumerate(req.model.shipments)}
        assert np.mean([values[s] for s in routed]) > np.mean([values[s] for s in skipped])
    routes, stops = response_to_tables(req, response, run_date=RUN, locations=locations_frame(stores, _dcs()))
    assert set(stops.shipment_id) == {req.model.shipments[s].label for s in routed}
    packed = orders.assign(shipment_id=[req.model.shipments[i].label for i in range(len(orders))])
    exceptions = unrouted_exceptions(_no_transfers(), packed, response)
    assert len(exceptions) == len(skipped)
    assert set(exceptions.reason_code) <= {"UNROUTED_LOAD"}
    assert unrouted_value(_no_transfers(), packed, response) == pytest.approx(
        sum(req.model.shipments[s].penalty_cost for s in skipped))
    if len(exceptions):
        row = exceptions.iloc[0]
        assert row.reason.startswith("load O-") and "value" in row.reason


def test_injected_routes_start_the_search_and_are_renumbered_in_each_problem():
    """A previous solution given as injected_first_solution_routes (the API's field) is where the
    local search starts: a solve of 0.3 s from a 3 s solution costs no more than it. Split into
    problems, each problem's injected routes name its own vehicles and shipments. An index out of
    range is refused with the field's path."""
    from google.maps import routeoptimization_v1 as ro

    from retailopt.routing.model import RequestError
    from retailopt.routing.parts import _sub_request

    req, _, _ = _request(24, per_dc=3)
    first = solve_local(req, time_limit_s=3.0)
    cost = sum(float(r.route_total_cost) for r in first.routes)
    again = ro.OptimizeToursRequest(req)
    again.injected_first_solution_routes = [ro.ShipmentRoute(vehicle_index=r.vehicle_index, visits=list(r.visits))
                                            for r in first.routes if len(r.visits)]
    warm = solve_local(again, time_limit_s=0.3)
    assert sum(float(r.route_total_cost) for r in warm.routes) <= cost + 1e-6
    assert len(warm.skipped_shipments) <= len(first.skipped_shipments)

    pb = ro.OptimizeToursRequest.pb(again)
    route = next(r for r in pb.injected_first_solution_routes if len(r.visits) >= 4)
    vehicle, shipments = route.vehicle_index, sorted({v.shipment_index for v in route.visits})
    keep = shipments[: len(shipments) // 2]
    sub = _sub_request(pb, [vehicle], keep, 1.0)
    assert [r.vehicle_index for r in sub.injected_first_solution_routes] == [0]
    renumbered = [v.shipment_index for v in sub.injected_first_solution_routes[0].visits]
    assert sorted(set(renumbered)) == list(range(len(keep)))
    assert len(renumbered) == 2 * len(keep)  # each kept load's pickup and delivery, the others' left out

    bad = ro.OptimizeToursRequest(req)
    bad.injected_first_solution_routes = [ro.ShipmentRoute(vehicle_index=0, visits=[
        ro.ShipmentRoute.Visit(shipment_index=len(req.model.shipments), is_pickup=True)])]
    with pytest.raises(RequestError, match=r"injected_first_solution_routes\[0\]\.visits\[0\]\.shipment_index"):
        solve_local(bad, time_limit_s=0.3)
