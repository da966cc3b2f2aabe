"""Pub/Sub publisher adapter: step messages to `<prefix>-<topic>` with retry on transient errors."""

from __future__ import annotations

from typing import Any, Mapping

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import pubsub_v1

from retailopt.services import messages
from retailopt.services.settings import ServiceSettings

# Transient gRPC statuses; anything else (NOT_FOUND topic, PERMISSION_DENIED) fails at once.
PUBLISH_RETRY = gretry.Retry(
    initial=0.1, maximum=10.0, multiplier=2.0, timeout=60.0,
    predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.Aborted,
                                       gexc.InternalServerError, gexc.ResourceExhausted, gexc.Unknown),
)
# Reorder events come in bursts of hundreds: batch them, but never hold one for long.
BATCH_SETTINGS = pubsub_v1.types.BatchSettings(max_messages=100, max_bytes=1_000_000, max_latency=0.05)


class PubSubPublisher:
    def __init__(self, project: str, service: ServiceSettings, client: Any | None = None,
                 timeout_s: float = 90.0) -> None:
        self.project = project
        self.service = service
        self.timeout_s = timeout_s
        self.client = client or pubsub_v1.PublisherClient(
            batch_settings=BATCH_SETTINGS,
            publisher_options=pubsub_v1.types.PublisherOptions(retry=PUBLISH_RETRY, timeout=timeout_s),
        )

    def topic_path(self, name: str) -> str:
        return self.client.topic_path(self.project, self.service.topic(name))

    def publish(self, name: str, message: Mapping[str, Any]) -> str:
        return self.publish_many(name, [message])[0]

    def publish_many(self, name: str, batch: list[Mapping[str, Any]]) -> list[str]:
        """Publish and wait for every message id: a step counts as done only once its output is out."""
        topic = self.topic_path(name)
        futures = [self.client.publish(topic, messages.encode(m), retry=PUBLISH_RETRY, timeout=self.timeout_s,
                                       **messages.attributes(m)) for m in batch]
        return [f.result(timeout=self.timeout_s) for f in futures]
