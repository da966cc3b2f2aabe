"""`retailopt solve-routes REQUEST.json -o RESPONSE.json --time-limit S`: solve a saved request locally."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from google.maps import routeoptimization_v1 as ro

from retailopt.routing.local_solver import solve_local
from retailopt.routing.model import RequestError


def read_request(path: Path) -> ro.OptimizeToursRequest:
    """Parse a request JSON file; a malformed file raises RequestError naming the file and problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(str(path), f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    try:
        return ro.OptimizeToursRequest.from_json(text)
    except Exception as exc:  # protobuf ParseError names the field but has no common base class
        raise RequestError(str(path), f"not an OptimizeToursRequest: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt solve-routes",
                                     description="Solve an OptimizeToursRequest JSON file with the local "
                                                 "OR-Tools solver into an OptimizeToursResponse JSON file.")
    parser.add_argument("request", type=Path, help="OptimizeToursRequest in the API's JSON form")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the response JSON")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds of search (default 10)")
    args = parser.parse_args(argv)
    if args.time_limit <= 0:
        parser.error("--time-limit must be > 0")
    try:
        request = read_request(args.request)
        response = solve_local(request, time_limit_s=args.time_limit)
    except RequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(ro.OptimizeToursResponse.to_json(response, indent=1), encoding="utf-8")
    tmp.replace(args.output)  # a reader never sees half a file
    m = response.metrics
    print(f"{args.output}: {m.used_vehicle_count} vehicles, "
          f"{m.aggregated_route_metrics.travel_distance_meters / 1000:.3f} km, "
          f"{len(response.skipped_shipments)} skipped, total cost {m.total_cost:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
