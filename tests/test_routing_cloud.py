"""Route Optimization API client: request shape, retries on transient errors only, dry run, long-running.

No test calls the real API: the client runs over a fake transport built from the library's own
transport base class, which records each request and answers from a script.
"""

from __future__ import annotations

import re

import pytest
import grpc
from google.api_core import exceptions, operations_v1
from google.auth.credentials import AnonymousCredentials
from google.longrunning import operations_pb2
from google.maps import routeoptimization_v1 as ro
from google.maps.routeoptimization_v1.services.route_optimization.transports.base import (
    DEFAULT_CLIENT_INFO, RouteOptimizationTransport)
from google.protobuf import any_pb2
from google.type import latlng_pb2

from retailopt.routing import cloud
from retailopt.routing.cloud import RoutingApiError, solve_cloud, transient_retry


class FakeTransport(RouteOptimizationTransport):
    def __init__(self, script: list):
        super().__init__(credentials=AnonymousCredentials())
        self.script = list(script)
        self._operations = None
        self.calls: list[tuple[str, ro.OptimizeToursRequest, float | None]] = []
        self._optimize = self._answer("optimize_tours")
        self._long = self._answer("optimize_tours_long_running")
        self._batch = self._answer("batch_optimize_tours")
        self._uri = self._answer("optimize_tours_uri")
        self._get_operation = self._answer("get_operation")
        self._prep_wrapped_messages(DEFAULT_CLIENT_INFO)

    def _answer(self, method: str):
        def call(request, timeout=None, metadata=(), **kwargs):
            self.calls.append((method, request, timeout))
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        return call

    @property
    def optimize_tours(self):
        return self._optimize

    @property
    def optimize_tours_long_running(self):
        return self._long

    @property
    def batch_optimize_tours(self):
        return self._batch

    @property
    def optimize_tours_uri(self):
        return self._uri

    @property
    def get_operation(self):
        return self._get_operation

    @property
    def operations_client(self):
        # The library's own operations client on a channel that is never dialled: the fake's
        # operations are already done when returned, so nothing is polled.
        if self._operations is None:
            self._operations = operations_v1.OperationsClient(grpc.insecure_channel("localhost:9"))
        return self._operations

    def close(self):
        pass


def _request(n: int = 2) -> ro.OptimizeToursRequest:
    at = latlng_pb2.LatLng(latitude=41.9, longitude=-87.6)
    return ro.OptimizeToursRequest(model=ro.ShipmentModel(
        shipments=[ro.Shipment(label=f"s{k}", deliveries=[ro.Shipment.VisitRequest(arrival_location=at)])
                   for k in range(n)],
        vehicles=[ro.Vehicle(label="v", start_location=at)]))


def _client(script: list) -> tuple[ro.RouteOptimizationClient, FakeTransport]:
    transport = FakeTransport(script)
    return ro.RouteOptimizationClient(transport=transport), transport


def _fast_retry():
    return transient_retry(10, initial_s=0.001, maximum_s=0.002)


def test_request_is_sent_with_parent_timeout_and_deadline():
    answer = ro.OptimizeToursResponse(request_label="ok")
    client, transport = _client([answer])
    original = _request()
    got = solve_cloud(original, project="my-project-1", time_limit_s=12.5, client=client, retry=_fast_retry())
    assert got.request_label == "ok"
    method, sent, timeout = transport.calls[0]
    assert method == "optimize_tours"
    assert isinstance(sent, ro.OptimizeToursRequest)
    assert sent.parent == "projects/my-project-1"
    assert sent.timeout.total_seconds() == pytest.approx(12.5)
    # The retry wrapper passes what is left of the deadline: the time since the call began is gone.
    assert 12.5 + cloud.DEADLINE_MARGIN_S - 1.0 < timeout <= 12.5 + cloud.DEADLINE_MARGIN_S
    assert original.parent == ""  # the caller's request is not changed


def test_transient_errors_are_retried_then_succeed():
    client, transport = _client([exceptions.ServiceUnavailable("busy"), exceptions.DeadlineExceeded("slow"),
                                 exceptions.ResourceExhausted("quota"), ro.OptimizeToursResponse()])
    solve_cloud(_request(), project="my-project-1", time_limit_s=5, client=client, retry=_fast_retry())
    assert len(transport.calls) == 4


@pytest.mark.parametrize("error", [exceptions.InvalidArgument("model.shipments[0]: bad"),
                                   exceptions.PermissionDenied("no"), exceptions.NotFound("no")])
def test_permanent_errors_are_not_retried(error):
    client, transport = _client([error, ro.OptimizeToursResponse()])
    with pytest.raises(RoutingApiError, match=re.escape(error.message)):
        solve_cloud(_request(), project="my-project-1", time_limit_s=5, client=client, retry=_fast_retry())
    assert len(transport.calls) == 1


def test_retries_give_up_after_the_deadline():
    client, transport = _client([exceptions.ServiceUnavailable("busy")] * 200)
    with pytest.raises(RoutingApiError, match="kept failing"):
        solve_cloud(_request(), project="my-project-1", time_limit_s=5, client=client,
                    retry=transient_retry(0.05, initial_s=0.01, maximum_s=0.01))
    assert 1 < len(transport.calls) < 200


def test_validate_only_is_a_dry_run():
    client, transport = _client([ro.OptimizeToursResponse()])
    solve_cloud(_request(), project="my-project-1", time_limit_s=5, client=client, validate_only=True,
                location="us-central1", retry=_fast_retry())
    sent = transport.calls[0][1]
    assert sent.solving_mode == ro.OptimizeToursRequest.SolvingMode.VALIDATE_ONLY
    assert sent.parent == "projects/my-project-1/locations/us-central1"


def test_large_requests_use_the_long_running_method(monkeypatch):
    monkeypatch.setattr(cloud, "LARGE_SHIPMENTS", 3)
    answer = ro.OptimizeToursResponse(request_label="long")
    packed = any_pb2.Any()
    packed.Pack(ro.OptimizeToursResponse.pb(answer))
    done = operations_pb2.Operation(name="projects/p/operations/1", done=True, response=packed)
    client, transport = _client([exceptions.ServiceUnavailable("busy"), done])
    got = solve_cloud(_request(5), project="my-project-1", time_limit_s=5, client=client, retry=_fast_retry())
    assert [c[0] for c in transport.calls] == ["optimize_tours_long_running"] * 2
    assert got.request_label == "long"
