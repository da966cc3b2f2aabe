"""Pick the solver for a run: the Route Optimization API when configured, else the local solver."""

from __future__ import annotations

import logging
import time

from google.maps import routeoptimization_v1 as ro

from retailopt.config import Settings
from retailopt.routing.cloud import solve_cloud
from retailopt.routing.local_solver import solve_local
from retailopt.routing.parts import PartsResult, ProblemReport, solve_in_parts

log = logging.getLogger(__name__)


def solve_routes(request: ro.OptimizeToursRequest, *, settings: Settings,
                 client: ro.RouteOptimizationClient | None = None) -> ro.OptimizeToursResponse:
    """Solve with the API when `routing_engine` is "api" and a project is set, else locally.

    A request built for the API asks for road distances, which the local solver does not have; when
    it falls back, it solves a copy with geodesic distances at `speed_kmh` and logs that it did.
    Locally a large request is solved as several problems within the one time limit (`parts.py`).
    """
    return solve_routes_by_problem(request, settings=settings, client=client).response


def solve_routes_by_problem(request: ro.OptimizeToursRequest, *, settings: Settings,
                            client: ro.RouteOptimizationClient | None = None) -> PartsResult:
    """`solve_routes`, with the problems solved: their sizes, time limits and solve times."""
    if settings.routing_engine == "api" and settings.project:
        started = time.monotonic()
        response = solve_cloud(request, project=settings.project, time_limit_s=settings.routing_time_limit_s,
                               client=client)
        routed = response.metrics.aggregated_route_metrics.performed_shipment_count
        return PartsResult(response, [ProblemReport(
            "Route Optimization API", len(request.model.shipments), len(request.model.shipments),
            len(request.model.vehicles), settings.routing_time_limit_s, time.monotonic() - started,
            int(routed), int(response.metrics.used_vehicle_count))])
    local = request
    if not request.use_geodesic_distances and not request.model.duration_distance_matrices:
        log.warning("routing API not configured: solving locally with geodesic distances at %s km/h",
                    settings.speed_kmh)
        local = ro.OptimizeToursRequest(request)
        local.use_geodesic_distances = True
        local.geodesic_meters_per_second = settings.speed_kmh / 3.6
    return solve_in_parts(local, time_limit_s=settings.routing_time_limit_s, solve=solve_local)
