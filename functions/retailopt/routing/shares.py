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
from typing import Any, Iterator

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
    out: dict[str, ShipmentCost] = {}
    for route, geometry in _solved_routes(request, response, speed_kmh):
        removal = {index: geometry.saved({index}) for index in dict.fromkeys(geometry.shipment_of)}
        weight = sum(removal.values())
        cost = float(route.route_total_cost)
        alone = len(removal) == 1
        for index, saved in removal.items():
            share = cost * saved / weight if weight > 0 else cost / len(removal)
            out[geometry.label(index)] = ShipmentCost(share=share, marginal=cost if alone else min(saved, cost),
                                      route=int(route.vehicle_index))
    return out


def group_removal_costs(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse,
                        speed_kmh: float, labels: set[str]) -> dict[int, float]:
    """Route (vehicle index) -> what it would save without the visits of every shipment in `labels`
    together, the other stops kept in their order: the whole route's cost when none is left (the
    group caused the route), else the km and time of the group's detours. For routes that carry a
    shipment of the group. How much a set of loads (a plan's transfers) adds to routes that also
    carry others (the orders due that day)."""
    out: dict[int, float] = {}
    for route, geometry in _solved_routes(request, response, speed_kmh):
        group = {s for s in geometry.shipment_of if geometry.label(s) in labels}
        if not group:
            continue
        cost = float(route.route_total_cost)
        out[int(route.vehicle_index)] = cost if group == set(geometry.shipment_of) else min(geometry.saved(group), cost)
    return out


def _solved_routes(request: ro.OptimizeToursRequest, response: ro.OptimizeToursResponse,
                   speed_kmh: float) -> Iterator[tuple[Any, "_RouteGeometry"]]:
    """Each route that visits something (its protobuf message), with its geometry."""
    req = ro.OptimizeToursRequest.pb(request)
    for route in ro.OptimizeToursResponse.pb(response).routes:
        if route.visits:
            yield route, _RouteGeometry(req, route, speed_kmh)


class _RouteGeometry:
    """A solved route's stops in order (start, visits, end) and its vehicle's cost per km and per
    second of visit, to price what it saves without some of its shipments."""

    def __init__(self, req, route, speed_kmh: float) -> None:
        self._shipments = req.model.shipments
        vehicle = req.model.vehicles[route.vehicle_index]
        self.places = [(vehicle.start_location.latitude, vehicle.start_location.longitude)]
        self.service_s: list[float] = []
        self.shipment_of: list[int] = []
        for visit in route.visits:
            shipment = req.model.shipments[visit.shipment_index]
            vr = (shipment.pickups if visit.is_pickup else shipment.deliveries)[visit.visit_request_index]
            self.places.append(_at(vr))
            self.service_s.append(_seconds(vr.duration))
            self.shipment_of.append(visit.shipment_index)
        self.places.append((vehicle.end_location.latitude, vehicle.end_location.longitude))
        self.per_km = vehicle.cost_per_kilometer + (vehicle.cost_per_hour + vehicle.cost_per_traveled_hour) / speed_kmh
        self.per_s = vehicle.cost_per_hour / 3600.0
        self.total_km = self._km([*range(len(self.places))])

    def label(self, index: int) -> str:
        """A shipment's label (its index where it has none)."""
        return self._shipments[index].label or str(index)

    def _km(self, positions: list[int]) -> float:
        return sum(_km(self.places[positions[i]], self.places[positions[i + 1]]) for i in range(len(positions) - 1))

    def saved(self, removed: set[int]) -> float:
        """What the route saves without the visits of the shipments `removed` (indices), the
        fixed cost aside: the detour's km at the cost per km and per hour, the visits' time."""
        # Positions in `places` (visit k is places[k + 1]) without the removed shipments' visits.
        kept = [0] + [k + 1 for k, s in enumerate(self.shipment_of) if s not in removed] + [len(self.places) - 1]
        visits_s = sum(self.service_s[k] for k, s in enumerate(self.shipment_of) if s in removed)
        return max(self.total_km - self._km(kept), 0.0) * self.per_km + visits_s * self.per_s
