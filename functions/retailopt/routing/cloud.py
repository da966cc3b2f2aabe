"""Solve a request with the Google Maps Route Optimization API.

`optimize_tours` for the daily run, with a deadline and retries on transient errors only; the
long-running variant when the request is large or the solve long; `VALIDATE_ONLY` for a dry run.
"""

from __future__ import annotations

from google.api_core import exceptions, retry as retries
from google.maps import routeoptimization_v1 as ro
from google.protobuf import duration_pb2

# Errors worth another attempt: the service was busy or the call timed out on the way.
TRANSIENT_ERRORS = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded,
                    exceptions.ResourceExhausted, exceptions.InternalServerError, exceptions.Aborted)
# Above these the long-running method is used: a synchronous call holds a connection open.
LARGE_SHIPMENTS = 1000
LONG_SOLVE_S = 300.0
# Room on top of the solver's own time limit for queueing and transfer.
DEADLINE_MARGIN_S = 60.0


class RoutingApiError(RuntimeError):
    """The API refused the request or kept failing; the message carries the API's reason."""


def transient_retry(deadline_s: float, *, initial_s: float = 1.0, maximum_s: float = 30.0) -> retries.Retry:
    """Exponential back-off, only for TRANSIENT_ERRORS, for at most `deadline_s` in total."""
    return retries.Retry(predicate=retries.if_exception_type(*TRANSIENT_ERRORS), initial=initial_s,
                         maximum=maximum_s, multiplier=2.0, timeout=deadline_s)


def is_large(request: ro.OptimizeToursRequest, time_limit_s: float) -> bool:
    return len(request.model.shipments) > LARGE_SHIPMENTS or time_limit_s > LONG_SOLVE_S


def solve_cloud(request: ro.OptimizeToursRequest, *, project: str, time_limit_s: float,
                client: ro.RouteOptimizationClient | None = None, location: str | None = None,
                validate_only: bool = False, retry: retries.Retry | None = None) -> ro.OptimizeToursResponse:
    """Send `request` to the API and return its response.

    The request is copied, never changed in place: parent, timeout and solving mode are set on the
    copy. `validate_only` asks the API to check the request without solving it (a dry run).
    """
    if time_limit_s <= 0:
        raise ValueError("time_limit_s must be > 0")
    client = client or ro.RouteOptimizationClient()
    call = ro.OptimizeToursRequest(request)
    call.parent = f"projects/{project}" + (f"/locations/{location}" if location else "")
    call.timeout = duration_pb2.Duration(seconds=int(time_limit_s), nanos=int(time_limit_s % 1 * 1e9))
    if validate_only:
        call.solving_mode = ro.OptimizeToursRequest.SolvingMode.VALIDATE_ONLY
    deadline = time_limit_s + DEADLINE_MARGIN_S
    policy = retry or transient_retry(deadline * 2)
    try:
        if is_large(request, time_limit_s) and not validate_only:
            operation = client.optimize_tours_long_running(request=call, retry=policy, timeout=deadline)
            return operation.result(timeout=deadline * 2)
        return client.optimize_tours(request=call, retry=policy, timeout=deadline)
    except exceptions.RetryError as exc:
        raise RoutingApiError(f"Route Optimization API kept failing: {exc.cause or exc}") from exc
    except exceptions.GoogleAPICallError as exc:
        raise RoutingApiError(f"Route Optimization API error {exc.code}: {exc.message}") from exc
