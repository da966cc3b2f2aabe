import base64
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from cloudevents.http import CloudEvent

from retailopt.services import messages
from retailopt.services.messages import PermanentError


def _pubsub_event(body: bytes, **attrs) -> CloudEvent:
    attributes = {"id": "m-1", "source": "//pubsub.googleapis.com/projects/p/topics/t",
                  "type": messages.PUBSUB_EVENT_TYPE, **attrs}
    return CloudEvent(attributes, {"message": {"data": base64.b64encode(body).decode(), "messageId": "m-1"},
                                   "subscription": "s"})


def test_make_message_round_trips_through_a_pubsub_event():
    msg = messages.make_message("forecast", chain_id="acme", run_id="acme-20260101-abc", run_date=date(2026, 1, 1),
                                overrides={"service_level": 0.9})
    decoded, info = messages.decode_pubsub_event(_pubsub_event(messages.encode(msg)))
    assert decoded == msg
    assert info.dedupe_key == "event://pubsub.googleapis.com/projects/p/topics/t/m-1"


@pytest.mark.parametrize("body, fragment", [
    (b"not json", "base64-encoded JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"schema_version": 2, "kind": "forecast"}).encode(), "unsupported schema_version 2"),
    (json.dumps({"schema_version": True}).encode(), "unsupported schema_version"),
    (json.dumps({"schema_version": 1, "kind": "forecast", "chain_id": "a", "created_at": "2026-01-01T00:00:00Z"}
                ).encode(), "run_id"),
    (json.dumps({"schema_version": 1, "kind": "forecast", "chain_id": "a", "run_id": 7,
                 "created_at": "2026-01-01T00:00:00Z"}).encode(), "run_id"),
    (json.dumps({"schema_version": 1, "kind": "forecast", "chain_id": "a b", "run_id": "r",
                 "created_at": "2026-01-01T00:00:00Z"}).encode(), "chain_id"),
    (json.dumps({"schema_version": 1, "kind": "reorder", "chain_id": "a", "run_id": "r",
                 "created_at": "2026-01-01T00:00:00Z"}).encode(), "order"),
    (json.dumps({"schema_version": 1, "kind": "start", "chain_id": "a", "run_id": "r",
                 "created_at": "2026-01-01T00:00:00Z", "source": {"prefix": "../etc"}}).encode(), "source/prefix"),
])
def test_bad_bodies_are_permanent_errors_naming_the_problem(body, fragment):
    with pytest.raises(PermanentError) as err:
        messages.decode_pubsub_event(_pubsub_event(body))
    assert fragment in err.value.reason


def test_wrong_event_type_and_missing_data_are_permanent():
    event = CloudEvent({"id": "1", "source": "s", "type": "com.example.other"}, {"x": 1})
    with pytest.raises(PermanentError, match="unexpected CloudEvent type"):
        messages.decode_pubsub_event(event)
    event = CloudEvent({"id": "1", "source": "s", "type": messages.PUBSUB_EVENT_TYPE}, {"message": {}})
    with pytest.raises(PermanentError, match="message.data"):
        messages.decode_pubsub_event(event)


def test_storage_event_and_age():
    when = datetime.now(timezone.utc) - timedelta(hours=2)
    event = CloudEvent({"id": "9", "source": "//storage.googleapis.com/projects/_/buckets/raw",
                        "type": messages.STORAGE_FINALIZED_TYPE, "time": when.isoformat()},
                       {"bucket": "raw", "name": "acme/2026-01-01/_READY", "generation": "17", "size": "0"})
    obj, info = messages.decode_storage_event(event)
    assert (obj.bucket, obj.name, obj.generation) == ("raw", "acme/2026-01-01/_READY", "17")
    assert 7100 < info.age_s() < 7300
    bad = CloudEvent({"id": "9", "source": "s", "type": messages.STORAGE_FINALIZED_TYPE}, {"bucket": "raw"})
    with pytest.raises(PermanentError, match="bucket and name"):
        messages.decode_storage_event(bad)


def test_run_id_is_deterministic_per_request():
    a = messages.run_id_for("acme", date(2026, 1, 1), {"service_level": 0.9, "horizon_days": 14})
    b = messages.run_id_for("acme", date(2026, 1, 1), {"horizon_days": 14, "service_level": 0.9})
    assert a == b and a.startswith("acme-20260101-")
    assert a != messages.run_id_for("acme", date(2026, 1, 1), {"service_level": 0.95})
    assert a != messages.run_id_for("acme", date(2026, 1, 1), {"service_level": 0.9, "horizon_days": 14}, "again")
