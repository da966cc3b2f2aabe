"""Build the Route Optimization API request from a run's transfers and orders.

One shipment per vehicle load: the transfer lines from one store to another (pickup at the sending
store), or the order lines from a distribution centre to a store (pickup at the centre), packed into
loads that fit a vehicle (`loads.assign_shipments`, which sets each line's `shipment_id`), delivered
to the receiving store within its receiving hours. The same request goes to the API or to the local
OR-Tools solver, and is saved in the API's own JSON form.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from google.maps import routeoptimization_v1 as ro
from google.protobuf import duration_pb2, timestamp_pb2
from google.type import latlng_pb2

from retailopt.config import Settings
from retailopt.routing.lines import RequestBuildError, consignment_id, is_missing, rows, unit_measures
from retailopt.routing.loads import assign_shipments

__all__ = ["RequestBuildError", "build_request", "consignment_id", "request_from_json", "request_to_json"]

UNITS = "units"
WEIGHT = "weight_kg"
VOLUME = "volume_l"


def build_request(transfers: pd.DataFrame, orders: pd.DataFrame, stores: pd.DataFrame,
                  dcs: pd.DataFrame, vehicles: pd.DataFrame, products: pd.DataFrame, *,
                  run_date: date, settings: Settings) -> ro.OptimizeToursRequest:
    """Shipments, vehicles and the run date's time frame as an `OptimizeToursRequest`."""
    tz = ZoneInfo(settings.timezone)
    places = _places(stores, dcs)
    weights, volumes = unit_measures(products)
    visit = _duration(settings.visit_minutes * 60.0)

    if "shipment_id" not in _columns(transfers) or "shipment_id" not in _columns(orders):
        # Lines not yet packed into vehicle loads: pack them for this fleet (see loads.py).
        transfers, orders = assign_shipments(transfers, orders, vehicles, products)

    shipments: list[ro.Shipment] = []
    # Lines with the same shipment_id travel together: one vehicle load between two places.
    lines = [("transfers", transfers, "transfer_id", "from_store_id", "to_store_id", "value"),
             ("replenishment_orders", orders, "order_id", "dc_id", "store_id", "order_value")]
    for table, frame, id_col, origin_col, dest_col, value_col in lines:
        records = rows(frame, table, [id_col, "product_id", origin_col, dest_col, "quantity", value_col,
                                    "shipment_id"])
        loads: dict[str, dict] = {}
        for row in records:
            label = str(row["shipment_id"])
            entry = loads.setdefault(label, {"row": row, "quantity": 0, "value": 0.0, "weight": 0.0,
                                             "volume": 0.0, "lines": 0, "weighed": True,
                                             "measured": True})
            first = entry["row"]
            if (row[origin_col], row[dest_col]) != (first[origin_col], first[dest_col]):
                raise RequestBuildError(f"{table} row {row['_row']}: shipment_id={label!r} also carries row "
                                        f"{first['_row']} between other places")
            quantity = int(row["quantity"])
            if quantity <= 0:
                raise RequestBuildError(f"{table} row {row['_row']}: quantity must be > 0, got {quantity}")
            product = str(row["product_id"])
            entry["quantity"] += quantity
            entry["value"] += float(row[value_col])
            entry["lines"] += 1
            entry["weight"] += quantity * weights.get(product, 0.0)
            entry["volume"] += quantity * volumes.get(product, 0.0)
            entry["weighed"] &= product in weights
            entry["measured"] &= product in volumes
        for label, entry in loads.items():
            row = entry["row"]
            shipments.append(_shipment(
                label=label, table=table, row=row,
                origin=_place(places, row[origin_col], table, row, origin_col),
                destination=_place(places, row[dest_col], table, row, dest_col),
                quantity=entry["quantity"], lines=entry["lines"], value=entry["value"],
                weight=entry["weight"] if entry["weighed"] else None,
                volume=entry["volume"] if entry["measured"] else None,
                visit=visit, run_date=run_date, tz=tz, settings=settings))

    fleet = [_vehicle(row, places, run_date, tz, settings)
             for row in rows(vehicles, "vehicles", ["vehicle_id", "depot_id", "capacity_units",
                                                      "cost_per_km", "cost_per_hour", "fixed_cost",
                                                      "shift_start", "shift_end"])]
    day_start = datetime.combine(run_date, time(0), tz)
    model = ro.ShipmentModel(
        shipments=shipments, vehicles=fleet,
        global_start_time=_timestamp(day_start),
        global_end_time=_timestamp(datetime.combine(run_date + timedelta(days=1), time(0), tz)))
    return ro.OptimizeToursRequest(
        model=model,
        timeout=_duration(settings.routing_time_limit_s),
        # The local solver has no road network: straight-line distance at the configured speed.
        # The API plans on roads when it is the engine.
        use_geodesic_distances=settings.routing_engine == "local",
        geodesic_meters_per_second=settings.speed_kmh / 3.6 if settings.routing_engine == "local" else 0.0,
        label=f"retailopt-{run_date.isoformat()}",
    )


def request_to_json(request: ro.OptimizeToursRequest) -> str:
    """The API's own JSON form (camelCase field names, RFC 3339 timestamps)."""
    return ro.OptimizeToursRequest.to_json(request, indent=1)


def request_from_json(text: str) -> ro.OptimizeToursRequest:
    """Parse a request saved by `request_to_json` (or written for the API); unknown fields fail."""
    return ro.OptimizeToursRequest.from_json(text)


def _columns(frame: pd.DataFrame | None) -> set[str]:
    # An empty or missing frame has nothing to pack, whatever its columns.
    return {"shipment_id"} if frame is None or len(frame) == 0 else set(frame.columns)


def _places(stores: pd.DataFrame, dcs: pd.DataFrame) -> dict[str, dict]:
    """Location id -> coordinates and opening hours, for stores and distribution centres."""
    out: dict[str, dict] = {}
    sources = [(stores, "stores", "store_id", "receiving_open", "receiving_close"),
               (dcs, "distribution_centers", "dc_id", "open_time", "close_time")]
    for frame, table, id_col, open_col, close_col in sources:
        for rec in rows(frame, table, [id_col, "latitude", "longitude", open_col, close_col]):
            out[str(rec[id_col])] = {"lat": float(rec["latitude"]), "lng": float(rec["longitude"]),
                                     "open": _as_time(rec[open_col], table, rec, open_col),
                                     "close": _as_time(rec[close_col], table, rec, close_col)}
    for key, place in out.items():
        if not (-90 <= place["lat"] <= 90 and -180 <= place["lng"] <= 180):
            raise RequestBuildError(f"location {key}: latitude/longitude out of range")
    return out


def _place(places: dict[str, dict], key: object, table: str, row: dict, field: str) -> dict:
    place = places.get(str(key))
    if place is None:
        raise RequestBuildError(f"{table} row {row['_row']}: {field}={key!r} is not a known store or "
                                f"distribution centre")
    return place


def _as_time(value: object, table: str, row: dict, field: str) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, pd.Timedelta):
        return (datetime.min + value.to_pytimedelta()).time()
    if isinstance(value, timedelta):
        return (datetime.min + value).time()
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise RequestBuildError(f"{table} row {row['_row']}: {field}={value!r} is not a time of day") from exc


def _window(run_date: date, tz: ZoneInfo, start: time, end: time) -> ro.TimeWindow:
    begin = datetime.combine(run_date, start, tz)
    # A closing time at or before opening means the window runs past midnight.
    finish = datetime.combine(run_date if end > start else run_date + timedelta(days=1), end, tz)
    finish = min(finish, datetime.combine(run_date + timedelta(days=1), time(0), tz))
    return ro.TimeWindow(start_time=_timestamp(begin), end_time=_timestamp(finish))


def _latlng(place: dict) -> latlng_pb2.LatLng:
    return latlng_pb2.LatLng(latitude=place["lat"], longitude=place["lng"])


def _shipment(*, label: str, table: str, row: dict, origin: dict, destination: dict, quantity: int,
              lines: int, value: float, weight: float | None, volume: float | None,
              visit: duration_pb2.Duration, run_date: date, tz: ZoneInfo,
              settings: Settings) -> ro.Shipment:
    loads = {UNITS: ro.Shipment.Load(amount=quantity)}
    if weight is not None:
        # Rounded up, less float noise from summing lines (a full load must not round past the limit).
        loads[WEIGHT] = ro.Shipment.Load(amount=math.ceil(weight - 1e-6))
    if volume is not None:
        loads[VOLUME] = ro.Shipment.Load(amount=math.ceil(volume))
    return ro.Shipment(
        label=label,
        display_name=f"{lines} line(s), {quantity} units",
        pickups=[ro.Shipment.VisitRequest(
            arrival_location=_latlng(origin), duration=visit,
            time_windows=[_window(run_date, tz, origin["open"], origin["close"])])],
        deliveries=[ro.Shipment.VisitRequest(
            arrival_location=_latlng(destination), duration=visit,
            time_windows=[_window(run_date, tz, destination["open"], destination["close"])])],
        load_demands=loads,
        penalty_cost=max(0.0, value) * settings.routing_penalty_factor,
    )


def _vehicle(row: dict, places: dict[str, dict], run_date: date, tz: ZoneInfo,
             settings: Settings) -> ro.Vehicle:
    depot = _place(places, row["depot_id"], "vehicles", row, "depot_id")
    shift = _window(run_date, tz, _as_time(row["shift_start"], "vehicles", row, "shift_start"),
                    _as_time(row["shift_end"], "vehicles", row, "shift_end"))
    limits = {UNITS: ro.Vehicle.LoadLimit(max_load=int(row["capacity_units"]))}
    from retailopt.routing.emissions import co2_kg_per_km  # a leaf module: no import circle

    # A carbon price (what-if) makes every km cost its emissions too.
    per_km = float(row["cost_per_km"]) + settings.carbon_price_per_kg * co2_kg_per_km(row.get("co2_kg_per_km"))
    capacity_kg = row.get("capacity_kg")
    if not is_missing(capacity_kg):
        limits[WEIGHT] = ro.Vehicle.LoadLimit(max_load=int(math.floor(float(capacity_kg))))
    return ro.Vehicle(
        label=str(row["vehicle_id"]),
        display_name=str(row["depot_id"]),
        start_location=_latlng(depot), end_location=_latlng(depot),
        start_time_windows=[shift], end_time_windows=[shift],
        load_limits=limits,
        cost_per_kilometer=per_km,
        cost_per_hour=float(row["cost_per_hour"]),
        fixed_cost=float(row["fixed_cost"]),
        route_duration_limit=ro.Vehicle.DurationLimit(
            max_duration=_duration(settings.routing_max_route_hours * 3600.0)),
    )


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(ZoneInfo("UTC")))
    return stamp


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=int(whole), nanos=int(round((seconds - whole) * 1e9)) % 1_000_000_000)
