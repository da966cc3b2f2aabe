"""Truck routing: the Route Optimization API request, a local OR-Tools solver, tables and GeoJSON."""

from retailopt.routing.cloud import RoutingApiError, solve_cloud
from retailopt.routing.engine import solve_routes
from retailopt.routing.local_solver import solve_local
from retailopt.routing.model import RequestError
from retailopt.routing.request import RequestBuildError, build_request, request_from_json, request_to_json
from retailopt.routing.tables import locations_frame, response_to_geojson, response_to_tables

__all__ = ["RequestBuildError", "RequestError", "RoutingApiError", "build_request", "locations_frame",
           "request_from_json", "request_to_json", "response_to_geojson", "response_to_tables", "solve_cloud",
           "solve_local", "solve_routes"]
