"""The give-up boundary of a failing step: with max_attempts=N, deliveries 1..N-1 ask for a retry and
delivery N gives up (acknowledged, outcome rejected, run FAILED). The platform's own limit
(Pub/Sub's max_delivery_attempts, the local bus's max_attempts) lies above N, so the service, not
the platform, ends the run."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone

import functions_framework
import pytest
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from google.api_core import exceptions as gexc

from retailopt.config import load_settings
from retailopt.services import logs, messages
from retailopt.services.local import main_source
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore


class FailingPublisher:
    """Stands in for Pub/Sub (no emulator runs here) and is always unavailable: a transient fault."""

    def __init__(self) -> None:
        self.calls = 0

    def publish(self, topic, message):
        return self.publish_many(topic, [message])[0]

    def publish_many(self, topic, batch):
        self.calls += 1
        raise gexc.ServiceUnavailable("pubsub unavailable")


def _runtime(tmp_path, max_attempts: int) -> Runtime:
    from retailopt.warehouse import open_warehouse

    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": "acme"}, environ={})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return Runtime(settings, ServiceSettings(max_event_age_s=3600, max_attempts=max_attempts), warehouse,
                   FailingPublisher(), LocalStore(tmp_path / "raw"), LocalStore(tmp_path / "artifacts"))


@pytest.fixture()
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.CloudLoggingFormatter())
    logs.logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.logger.removeHandler(handler)


def _event(message: dict, event_id: str) -> CloudEvent:
    now = datetime.now(timezone.utc)
    return CloudEvent({"id": event_id, "source": "//pubsub.googleapis.com/projects/p/topics/retailopt-import",
                       "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                      messages.pubsub_event_data(message, event_id, now, "projects/p/subscriptions/s"))


@pytest.mark.parametrize("max_attempts", [2, 4])
def test_the_delivery_that_reaches_the_limit_gives_up(tmp_path, log_lines, max_attempts):
    runtime = _runtime(tmp_path, max_attempts)
    set_runtime(runtime)
    try:
        run_id = f"acme-20260115-limit{max_attempts}"
        message = messages.make_message("start", chain_id="acme", run_id=run_id, run_date="2026-01-15")
        headers, body = to_structured(_event(message, f"limit-{max_attempts}"))
        client = functions_framework.create_app("import_files", str(main_source())).test_client()
        codes = [client.post("/", headers=headers, data=body).status_code for _ in range(max_attempts)]
        # Deliveries 1..N-1 fail transiently and ask for a retry; delivery N gives up and acknowledges.
        assert codes == [500] * (max_attempts - 1) + [200]
        assert runtime.publisher.calls == max_attempts - 1
        last = log_lines()[-1]
        assert last["outcome"] == "rejected" and f"gave up after {max_attempts} attempts" in last["reason"]
        runs = runtime.warehouse.query("SELECT status FROM `{dataset}.runs` WHERE run_id = @r", {"r": run_id})
        assert runs.status.tolist() == ["FAILED"]
        # A later redelivery (the platform's spare attempt) is a duplicate: nothing runs again.
        assert client.post("/", headers=headers, data=body).status_code == 200
        assert runtime.publisher.calls == max_attempts - 1
    finally:
        set_runtime(None)
        runtime.warehouse.close()
