"""Messages nested deeper than Python's parser follows are permanent errors, not crashes (a crash
is a 5xx, which Pub/Sub would redeliver until the dead-letter limit)."""

from __future__ import annotations

import base64

import pytest
from cloudevents.http import CloudEvent

from retailopt.services import messages
from retailopt.services.messages import PermanentError

ATTRIBUTES = {"id": "deep-1", "source": "//pubsub.googleapis.com/projects/p/topics/t",
              "type": messages.PUBSUB_EVENT_TYPE}


@pytest.mark.parametrize("body", [
    b"[" * 100_000,
    b'{"schema_version": 1, "summary": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
])
def test_deeply_nested_message_data_is_a_permanent_error(body):
    event = CloudEvent(ATTRIBUTES, {"message": {"data": base64.b64encode(body).decode(), "messageId": "deep-1"}})
    with pytest.raises(PermanentError, match="message.data is nested too deeply"):
        messages.decode_pubsub_event(event)


def test_deeply_nested_event_data_given_as_text_is_a_permanent_error():
    event = CloudEvent(ATTRIBUTES, "[" * 100_000)
    with pytest.raises(PermanentError, match="CloudEvent data is nested too deeply"):
        messages.decode_pubsub_event(event)
