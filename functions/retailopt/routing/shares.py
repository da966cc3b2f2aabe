"""Each shipment's share of the cost of the route that carries it.

A route's cost (fixed + km + hours) is shared by its shipments in proportion to their removal
cost: what the route would save without the shipment's pickup and delivery, its stop order
otherwise kept (the km of the detour at the vehicle's cost per km and per hour, and the two
visits' time at its cost per hour). The removal cost is the shipment's marginal cost in that
route; scaling the marginal costs to the route's total also charges the costs no single shipment
causes (the fixed cost, the legs from and back to the depot) to those that need the longest
detours. The shares of a route add up to its cost.

Distances are great-circle, as the local solver plans (with the Route Optimization API the route
drives roads; only the proportions come from these distances, the total is the API's cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.maps import routeoptimization_v1 as ro

from retailopt.routing.model import EARTH_RADIUS_M


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))) / 1000.0


def _at(visit_request) -> tuple[float, float]:
    ll = visit_request.arrival_location
    return ll.latitude, ll.longitude


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def route_shares(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse,
                 speed_kmh: float) -> dict[str, float]:
    """Shipment label -> its share of its route's cost (`route_total_cost`), for every shipment a
    route carries; skipped shipments are not in it. `speed_kmh` turns saved km into saved hours."""
    return {label: cost.share for label, cost in route_costs(request, response, speed_kmh).items()}


@dataclass(frozen=True)
class ShipmentCost:
    """A routed shipment's cost: its share of the route, what the route would save without it
    (marginal: the whole route's cost when it is the route's only shipment), and the route."""

    share: float
    marginal: float
    route: int  # vehicle index


def route_costs(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse,
                speed_kmh: float) -> dict[str, ShipmentCost]:
    """Shipment label -> its `ShipmentCost`, for every shipment a route carries."""
    req = ro.OptimizeToursRequest.pb(request)
    resp = ro.OptimizeToursResponse.pb(response)
    out: dict[str, ShipmentCost] = {}
    for route in resp.routes:
        if not route.visits:
            continue
        vehicle = req.model.vehicles[route.vehicle_index]
        start = (vehicle.start_location.latitude, vehicle.start_location.longitude)
        end = (vehicle.end_location.latitude, vehicle.end_location.longitude)
        places = [start]
        service_s: list[float] = []
        shipment_of: list[int] = []
        for visit in route.visits:
            shipment = req.model.shipments[visit.shipment_index]
            vr = (shipment.pickups if visit.is_pickup else shipment.deliveries)[visit.visit_request_index]
            places.append(_at(vr))
            service_s.append(_seconds(vr.duration))
            shipment_of.append(visit.shipment_index)
        places.append(end)
        per_km = vehicle.cost_per_kilometer + (vehicle.cost_per_hour + vehicle.cost_per_traveled_hour) / speed_kmh
        per_s = vehicle.cost_per_hour / 3600.0
        total_km = sum(_km(places[i], places[i + 1]) for i in range(len(places) - 1))
        removal: dict[int, float] = {}
        for index in dict.fromkeys(shipment_of):
            # Positions in `places` (visit k is places[k + 1]) without this shipment's two visits.
            kept = [0] + [k + 1 for k, s in enumerate(shipment_of) if s != index] + [len(places) - 1]
            km = sum(_km(places[kept[i]], places[kept[i + 1]]) for i in range(len(kept) - 1))
            visits_s = sum(service_s[k] for k, s in enumerate(shipment_of) if s == index)
            removal[index] = max(total_km - km, 0.0) * per_km + visits_s * per_s
        weight = sum(removal.values())
        cost = float(route.route_total_cost)
        alone = len(removal) == 1
        for index, saved in removal.items():
            share = cost * saved / weight if weight > 0 else cost / len(removal)
            label = req.model.shipments[index].label or str(index)
            out[label] = ShipmentCost(share=share, marginal=cost if alone else min(saved, cost),
                                      route=int(route.vehicle_index))
    return out
