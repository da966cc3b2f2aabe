"""Versioned JSON messages between the services, and decoding of the CloudEvents that carry them.

A message body is JSON validated against `schemas/message-v<N>.json`. Anything that cannot be
decoded or validated raises `PermanentError`: redelivering it would fail the same way, so the
handler acknowledges it (dead-letter path) with the reason logged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import resources
from typing import Any, Mapping

import jsonschema

SCHEMA_VERSIONS = (1,)
PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED_TYPE = "google.cloud.storage.object.v1.finalized"
KINDS = ("start", "forecast", "plan", "retrain", "published", "reorder", "transfer", "dispatch")


class PermanentError(Exception):
    """The event can never succeed (malformed, unknown version, unknown run): acknowledge it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@functools.cache
def schema(version: int) -> dict[str, Any]:
    text = resources.files("retailopt.services").joinpath(f"schemas/message-v{version}.json").read_text("utf-8")
    return json.loads(text)


@functools.cache
def _validator(version: int) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(version), format_checker=jsonschema.FormatChecker())


def validate_message(payload: Any) -> dict[str, Any]:
    """Check a decoded body against the schema of its version; the error names the field."""
    if not isinstance(payload, dict):
        raise PermanentError(f"message body must be a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version")
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise PermanentError(f"unsupported schema_version {version!r}: this service reads {list(SCHEMA_VERSIONS)}")
    errors = sorted(_validator(version).iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(message)"
        raise PermanentError(f"invalid message field {where}: {first.message[:200]}")
    return payload


def make_message(kind: str, *, chain_id: str, run_id: str, run_date: date | str | None = None,
                 overrides: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": SCHEMA_VERSIONS[-1],
        "kind": kind,
        "chain_id": chain_id,
        "run_id": run_id,
        "run_date": run_date.isoformat() if isinstance(run_date, date) else run_date,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    if overrides:
        message["overrides"] = dict(overrides)
    message.update({k: v for k, v in extra.items() if v is not None})
    return validate_message(json.loads(json.dumps(message, default=str)))


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def attributes(message: Mapping[str, Any]) -> dict[str, str]:
    """Pub/Sub attributes: lets subscriptions filter without decoding the body."""
    return {"schema_version": str(message["schema_version"]), "kind": str(message["kind"]),
            "run_id": str(message["run_id"]), "chain_id": str(message["chain_id"])}


@dataclass(frozen=True)
class EventInfo:
    id: str
    source: str
    type: str
    time: datetime | None
    subject: str | None = None

    @property
    def dedupe_key(self) -> str:
        return f"event:{self.source}/{self.id}"

    def age_s(self, now: datetime | None = None) -> float | None:
        if self.time is None:
            return None
        return ((now or datetime.now(timezone.utc)) - self.time).total_seconds()


def _parse_time(raw: Any) -> datetime | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError as exc:
            raise PermanentError(f"invalid CloudEvent time {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def event_info(event: Any) -> EventInfo:
    """The CloudEvent attributes used for dedupe and age checks."""
    attrs = event.get_attributes() if hasattr(event, "get_attributes") else dict(event)
    event_id, source, event_type = attrs.get("id"), attrs.get("source"), attrs.get("type")
    if not event_id or not source or not event_type:
        raise PermanentError("CloudEvent without id, source or type")
    return EventInfo(id=str(event_id), source=str(source), type=str(event_type),
                     time=_parse_time(attrs.get("time")), subject=attrs.get("subject"))


def decode_pubsub_event(event: Any) -> tuple[dict[str, Any], EventInfo]:
    """A Pub/Sub messagePublished CloudEvent -> (validated message, event info)."""
    info = event_info(event)
    if info.type != PUBSUB_EVENT_TYPE:
        raise PermanentError(f"unexpected CloudEvent type {info.type!r}: expected {PUBSUB_EVENT_TYPE}")
    data = event.get_data() if hasattr(event, "get_data") else event.data
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PermanentError("CloudEvent data is not JSON") from exc
        except RecursionError as exc:  # deeper than the parser follows: it would fail every time
            raise PermanentError("CloudEvent data is nested too deeply") from exc
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        raise PermanentError("CloudEvent data has no message.data (base64 string)")
    try:
        body = json.loads(base64.b64decode(message["data"], validate=True))
    except (binascii.Error, ValueError) as exc:
        raise PermanentError("message.data is not base64-encoded JSON") from exc
    except RecursionError as exc:  # deeper than the parser follows: it would fail every time
        raise PermanentError("message.data is nested too deeply") from exc
    if info.time is None and message.get("publishTime"):
        info = EventInfo(info.id, info.source, info.type, _parse_time(message["publishTime"]), info.subject)
    return validate_message(body), info


@dataclass(frozen=True)
class StorageObject:
    bucket: str
    name: str
    generation: str
    size: int


def decode_storage_event(event: Any) -> tuple[StorageObject, EventInfo]:
    """A Cloud Storage object-finalized CloudEvent -> (object, event info)."""
    info = event_info(event)
    if info.type != STORAGE_FINALIZED_TYPE:
        raise PermanentError(f"unexpected CloudEvent type {info.type!r}: expected {STORAGE_FINALIZED_TYPE}")
    data = event.get_data() if hasattr(event, "get_data") else event.data
    if not isinstance(data, dict):
        raise PermanentError("storage event data is not a JSON object")
    bucket, name = data.get("bucket"), data.get("name")
    if not isinstance(bucket, str) or not isinstance(name, str) or not bucket or not name:
        raise PermanentError("storage event data needs string fields bucket and name")
    try:
        size = int(data.get("size") or 0)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"storage event field size={data.get('size')!r} is not an integer") from exc
    return StorageObject(bucket=bucket, name=name, generation=str(data.get("generation") or ""), size=size), info


def pubsub_event_data(message: Mapping[str, Any], message_id: str, publish_time: datetime,
                      subscription: str) -> dict[str, Any]:
    """The `data` of a messagePublished CloudEvent, as Eventarc delivers it (used by the local bus)."""
    return {
        "message": {
            "data": base64.b64encode(encode(message)).decode("ascii"),
            "attributes": attributes(message),
            "messageId": message_id,
            "publishTime": publish_time.isoformat().replace("+00:00", "Z"),
        },
        "subscription": subscription,
    }


def canonical_overrides(overrides: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(overrides or {}), sort_keys=True, separators=(",", ":"), default=str)


def run_id_for(chain_id: str, run_date: date, overrides: Mapping[str, Any] | None = None,
               request_key: str | None = None) -> str:
    """Deterministic run id: the same start request (chain, date, overrides, key) is the same run."""
    digest = hashlib.sha256(
        "\x1f".join([chain_id, run_date.isoformat(), canonical_overrides(overrides), request_key or ""]).encode()
    ).hexdigest()[:10]
    return f"{chain_id}-{run_date:%Y%m%d}-{digest}"


def business_key(message: Mapping[str, Any], step: str) -> str:
    """(chain, run date, step) of the run a message belongs to; the run id carries the variant."""
    return f"key:{message['chain_id']}/{message.get('run_date') or '-'}/{step}/{message['run_id']}"
