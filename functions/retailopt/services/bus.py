"""The in-process event bus of local mode: the same messages as Pub/Sub, delivered as CloudEvents.

Each published message becomes a `messagePublished` CloudEvent (the shape Eventarc delivers) and
is posted, through functions-framework, to every target subscribed to its topic. Like Pub/Sub,
a delivery that fails (HTTP 5xx) is retried with backoff, and after `max_attempts` it goes to a
dead-letter list. Messages on topics nobody here subscribes to (published, reorders) are kept for
inspection.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from retailopt.services import messages

# topic -> functions-framework targets in functions/main.py (same wiring as the Eventarc triggers).
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "import": ("import_files",),
    "forecast": ("forecast",),
    "plan": ("plan",),
    "retrain": ("retrain",),
    "dispatch": ("dispatch",),
}

Deliver = Callable[[str, Mapping[str, str], bytes], int]


@dataclass
class Delivery:
    target: str
    topic: str
    headers: dict[str, str]
    body: bytes
    attempt: int = 1


@dataclass
class LocalBus:
    deliver: Deliver
    source: str = "//pubsub.googleapis.com/projects/local/topics"
    max_attempts: int = 5
    backoff_s: float = 0.2
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dead_letters: list[tuple[Delivery, int]] = field(default_factory=list)
    # Called on the bus thread each time the last pending delivery is handled.
    on_idle: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self._queue: "queue.Queue[Delivery | None]" = queue.Queue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._worker: threading.Thread | None = None

    def publish(self, topic: str, message: Mapping[str, Any]) -> str:
        return self.publish_many(topic, [message])[0]

    def publish_many(self, topic: str, batch: list[Mapping[str, Any]]) -> list[str]:
        ids = []
        for message in batch:
            message_id = uuid.uuid4().hex
            ids.append(message_id)
            with self._lock:
                self.published.append((topic, dict(message)))
            for target in SUBSCRIPTIONS.get(topic, ()):
                headers, body = self.cloud_event(topic, message, message_id, target)
                self._enqueue(Delivery(target, topic, headers, body))
        return ids

    def cloud_event(self, topic: str, message: Mapping[str, Any], message_id: str,
                    target: str) -> tuple[dict[str, str], bytes]:
        now = datetime.now(timezone.utc)
        event = CloudEvent({"id": message_id, "source": f"{self.source}/{topic}",
                            "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                           messages.pubsub_event_data(message, message_id, now, f"local/subscriptions/{target}"))
        headers, body = to_structured(event)
        return dict(headers), body

    def _enqueue(self, delivery: Delivery) -> None:
        with self._lock:
            self._pending += 1
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="retailopt-local-bus", daemon=True)
                self._worker.start()
        self._queue.put(delivery)

    def _run(self) -> None:
        # One worker: the steps of a run are sequential anyway, and the embedded warehouse is one file.
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            try:
                status = self.deliver(delivery.target, delivery.headers, delivery.body)
            except Exception:  # a crash of the handler is a 500 on the platform too
                status = 500
            if status >= 500 and delivery.attempt < self.max_attempts:
                time.sleep(self.backoff_s * 2 ** (delivery.attempt - 1))
                delivery.attempt += 1
                self._queue.put(delivery)
                continue
            if status >= 300:
                self.dead_letters.append((delivery, status))
            with self._lock:
                self._pending -= 1
                idle = self._pending == 0
                self._idle.notify_all()
            if idle and self.on_idle is not None:
                self.on_idle()

    def wait_idle(self, timeout_s: float = 300.0) -> bool:
        """Block until every delivery (and what it published) is handled."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        self._queue.put(None)
