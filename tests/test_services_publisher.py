"""The Pub/Sub adapter against a gRPC Publisher service built from the library's own types.

No Pub/Sub emulator runs here, so a local gRPC server answers google.pubsub.v1.Publisher/Publish
with real `PublishResponse` messages; the client library, its batching, retry and transport are
the real ones.
"""

from concurrent import futures

import grpc
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from retailopt.services import messages
from retailopt.services.publisher import PubSubPublisher
from retailopt.services.settings import ServiceSettings


class FakePublisherService:
    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[pubsub_v1.types.PublishRequest] = []
        self.fail_first = fail_first

    def publish(self, request, context):
        if self.fail_first > 0:
            self.fail_first -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        self.requests.append(request)
        start = sum(len(r.messages) for r in self.requests[:-1])
        return pubsub_v1.types.PublishResponse(message_ids=[str(start + i) for i in range(len(request.messages))])


@pytest.fixture()
def server():
    service = FakePublisherService()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", {
        "Publish": grpc.unary_unary_rpc_method_handler(
            service.publish, request_deserializer=pubsub_v1.types.PublishRequest.deserialize,
            response_serializer=pubsub_v1.types.PublishResponse.serialize)})
    grpc_server.add_generic_rpc_handlers((handler,))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield service, f"127.0.0.1:{port}"
    grpc_server.stop(0)


def _publisher(address: str) -> PubSubPublisher:
    transport = PublisherGrpcTransport(channel=grpc.insecure_channel(address), credentials=AnonymousCredentials())
    client = pubsub_v1.PublisherClient(transport=transport)
    return PubSubPublisher("retailopt-test", ServiceSettings(topic_prefix="ro"), client=client, timeout_s=10)


def test_publishes_to_the_prefixed_topic_with_attributes(server):
    service, address = server
    msg = messages.make_message("plan", chain_id="acme", run_id="acme-20260101-x", run_date="2026-01-01")
    message_id = _publisher(address).publish("plan", msg)
    assert message_id == "0"
    (request,) = service.requests
    assert request.topic == "projects/retailopt-test/topics/ro-plan"
    sent = request.messages[0]
    assert messages.validate_message(__import__("json").loads(sent.data)) == msg
    assert dict(sent.attributes) == {"schema_version": "1", "kind": "plan", "run_id": "acme-20260101-x",
                                     "chain_id": "acme"}


def test_transient_errors_are_retried(server):
    service, address = server
    service.fail_first = 2
    msg = messages.make_message("forecast", chain_id="acme", run_id="r1")
    assert _publisher(address).publish("forecast", msg) == "0"
    assert len(service.requests) == 1


def test_many_reorders_are_batched(server):
    service, address = server
    batch = [messages.make_message("reorder", chain_id="acme", run_id="r1",
                                   order={"order_id": f"o{i}", "dc_id": "D", "store_id": "S", "product_id": "P",
                                          "quantity": i}) for i in range(30)]
    ids = _publisher(address).publish_many("reorders", batch)
    assert len(ids) == 30 and len(set(ids)) == 30
    assert len(service.requests) < 30
