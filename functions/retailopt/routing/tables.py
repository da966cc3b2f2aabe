"""An `OptimizeToursResponse` as the routes and route_stops tables, and as GeoJSON for the map."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
from google.maps import routeoptimization_v1 as ro

from retailopt.routing.request import UNITS

ROUTE_COLUMNS = ["run_date", "route_id", "vehicle_id", "depot_id", "start_time", "end_time", "distance_km",
                 "duration_minutes", "stop_count", "units_carried", "cost"]
STOP_COLUMNS = ["run_date", "route_id", "vehicle_id", "stop_sequence", "location_id", "latitude", "longitude",
                "visit_type", "shipment_id", "units", "arrival_time"]
_MATCH_DEGREES = 1e-6  # coordinates the request copied from a location match it to this precision


def locations_frame(stores: pd.DataFrame, dcs: pd.DataFrame) -> pd.DataFrame:
    """`location_id, latitude, longitude` of every store and distribution centre."""
    parts = []
    if stores is not None and len(stores):
        parts.append(stores[["store_id", "latitude", "longitude"]].rename(columns={"store_id": "location_id"}))
    if dcs is not None and len(dcs):
        parts.append(dcs[["dc_id", "latitude", "longitude"]].rename(columns={"dc_id": "location_id"}))
    if not parts:
        return pd.DataFrame(columns=["location_id", "latitude", "longitude"])
    out = pd.concat(parts, ignore_index=True)
    out["location_id"] = out["location_id"].astype(str)
    return out


class _Locator:
    """Location id of a coordinate pair: the request carries coordinates, the tables carry ids."""

    def __init__(self, locations: pd.DataFrame):
        self.ids = locations["location_id"].astype(str).to_numpy()
        self.lat = locations["latitude"].to_numpy(dtype=float)
        self.lng = locations["longitude"].to_numpy(dtype=float)

    def __call__(self, lat: float, lng: float) -> str:
        if len(self.ids):
            d = np.abs(self.lat - lat) + np.abs(self.lng - lng)
            k = int(np.argmin(d))
            if d[k] <= _MATCH_DEGREES:
                return str(self.ids[k])
        return f"{lat:.6f},{lng:.6f}"


def _when(ts) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


def _visit_latlng(visit_request) -> tuple[float, float] | None:
    if visit_request.HasField("arrival_location"):
        return visit_request.arrival_location.latitude, visit_request.arrival_location.longitude
    if visit_request.HasField("arrival_waypoint") and visit_request.arrival_waypoint.location.HasField("lat_lng"):
        ll = visit_request.arrival_waypoint.location.lat_lng
        return ll.latitude, ll.longitude
    return None


def _vehicle_latlng(vehicle, which: str) -> tuple[float, float] | None:
    if vehicle.HasField(f"{which}_location"):
        ll = getattr(vehicle, f"{which}_location")
        return ll.latitude, ll.longitude
    wp = getattr(vehicle, f"{which}_waypoint")
    if vehicle.HasField(f"{which}_waypoint") and wp.location.HasField("lat_lng"):
        return wp.location.lat_lng.latitude, wp.location.lat_lng.longitude
    return None


def response_to_tables(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse, *,
                       run_date: date, locations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`routes` and `route_stops` rows (without run_id) for the vehicles that drive.

    Stop times are the visit start times in UTC (the time unloading or loading starts); a location
    id comes from matching the visit's coordinates against `locations`.
    """
    req = ro.OptimizeToursRequest.pb(request)
    resp = ro.OptimizeToursResponse.pb(response)
    locate = _Locator(locations)
    routes, stops = [], []
    for route in resp.routes:
        if not route.visits:
            continue
        vehicle = req.model.vehicles[route.vehicle_index]
        vehicle_id = route.vehicle_label or vehicle.label or str(route.vehicle_index)
        route_id = f"{run_date.isoformat()}-{vehicle_id}"
        depot = _vehicle_latlng(vehicle, "start")
        carried: dict[int, int] = {}
        for seq, visit in enumerate(route.visits, start=1):
            shipment = req.model.shipments[visit.shipment_index]
            vr = (shipment.pickups if visit.is_pickup else shipment.deliveries)[visit.visit_request_index]
            where = _visit_latlng(vr)
            units = _units(shipment, vr)
            carried[visit.shipment_index] = units
            stops.append({
                "run_date": run_date, "route_id": route_id, "vehicle_id": vehicle_id, "stop_sequence": seq,
                "location_id": locate(*where) if where else "",
                "latitude": where[0] if where else np.nan, "longitude": where[1] if where else np.nan,
                "visit_type": "PICKUP" if visit.is_pickup else "DELIVERY",
                "shipment_id": visit.shipment_label or shipment.label or str(visit.shipment_index),
                "units": units, "arrival_time": _when(visit.start_time)})
        start, end = _when(route.vehicle_start_time), _when(route.vehicle_end_time)
        routes.append({
            "run_date": run_date, "route_id": route_id, "vehicle_id": vehicle_id,
            "depot_id": locate(*depot) if depot else "",
            "start_time": start, "end_time": end,
            "distance_km": route.metrics.travel_distance_meters / 1000.0,
            "duration_minutes": (end - start).total_seconds() / 60.0,
            "stop_count": len(route.visits),
            "units_carried": int(sum(carried.values())),
            "cost": float(route.route_total_cost)})
    routes_df = pd.DataFrame(routes, columns=ROUTE_COLUMNS)
    stops_df = pd.DataFrame(stops, columns=STOP_COLUMNS)
    for frame, cols in ((routes_df, ["start_time", "end_time"]), (stops_df, ["arrival_time"])):
        for col in cols:
            frame[col] = pd.to_datetime(frame[col], utc=True)
        frame["run_date"] = pd.to_datetime(frame["run_date"])
    for col in ("stop_count", "units_carried"):
        routes_df[col] = routes_df[col].astype("int64")
    for col in ("stop_sequence", "units"):
        stops_df[col] = stops_df[col].astype("int64")
    return routes_df, stops_df


def _units(shipment, visit_request) -> int:
    if UNITS in shipment.load_demands:
        return int(shipment.load_demands[UNITS].amount)
    if UNITS in visit_request.load_demands:
        return int(visit_request.load_demands[UNITS].amount)
    return 0


def response_to_geojson(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse, *,
                        run_date: date, locations: pd.DataFrame) -> dict:
    """A FeatureCollection: one LineString per route (depot, stops, depot) and one Point per stop."""
    routes, stops = response_to_tables(request, response, run_date=run_date, locations=locations)
    req = ro.OptimizeToursRequest.pb(request)
    by_label = {v.label: v for v in req.model.vehicles}
    features = []
    for route in routes.itertuples(index=False):
        own = stops[stops["route_id"] == route.route_id].sort_values("stop_sequence")
        coords = [[float(r.longitude), float(r.latitude)] for r in own.itertuples(index=False)
                  if not np.isnan(r.latitude)]
        vehicle = by_label.get(route.vehicle_id)
        for which, at in (("start", 0), ("end", len(coords) + 1)):
            ends = _vehicle_latlng(vehicle, which) if vehicle is not None else None
            if ends:
                coords.insert(at, [ends[1], ends[0]])
        features.append({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": coords},
            "properties": {"kind": "route", "route_id": route.route_id, "vehicle_id": route.vehicle_id,
                           "depot_id": route.depot_id, "distance_km": round(float(route.distance_km), 3),
                           "duration_minutes": round(float(route.duration_minutes), 1),
                           "stop_count": int(route.stop_count), "units_carried": int(route.units_carried),
                           "cost": round(float(route.cost), 2),
                           "start_time": route.start_time.isoformat(), "end_time": route.end_time.isoformat()}})
    for stop in stops.itertuples(index=False):
        if np.isnan(stop.latitude):
            continue
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(stop.longitude), float(stop.latitude)]},
            "properties": {"kind": "stop", "route_id": stop.route_id, "vehicle_id": stop.vehicle_id,
                           "stop_sequence": int(stop.stop_sequence), "location_id": stop.location_id,
                           "visit_type": stop.visit_type, "shipment_id": stop.shipment_id,
                           "units": int(stop.units), "arrival_time": stop.arrival_time.isoformat()}})
    return {"type": "FeatureCollection", "features": features}
