"""Structured JSON logs in Cloud Logging's format, one line per step with its outcome.

Cloud Run forwards stdout lines that are JSON objects to Cloud Logging, which reads `severity`,
`message` and the `logging.googleapis.com/*` keys; everything else lands in jsonPayload.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, TextIO

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
_CLOUD_TRACE_RE = re.compile(r"^([0-9a-fA-F]{32})(?:/([0-9]+))?")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_SEVERITIES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
               logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL"}

logger = logging.getLogger("retailopt.services")


def trace_fields(headers: Mapping[str, str] | None, project: str | None = None) -> dict[str, str]:
    """Trace id from X-Cloud-Trace-Context or W3C traceparent, as Cloud Logging expects it."""
    if not headers:
        return {}
    trace_id = span_id = None
    match = _TRACEPARENT_RE.match((headers.get("traceparent") or "").strip().lower())
    if match:
        trace_id, span_id = match.group(1), match.group(2)
    else:
        match = _CLOUD_TRACE_RE.match((headers.get("X-Cloud-Trace-Context") or "").strip())
        if match:
            trace_id = match.group(1).lower()
            # X-Cloud-Trace-Context carries a decimal span id; Cloud Logging wants 16 hex digits.
            span_id = format(int(match.group(2)), "016x")[-16:] if match.group(2) else None
    if not trace_id:
        return {}
    project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("RETAILOPT_PROJECT")
    out = {TRACE_KEY: f"projects/{project}/traces/{trace_id}" if project else trace_id}
    if span_id:
        out[SPAN_KEY] = span_id
    return out


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITIES.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}) or {})
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the services' logs as JSON lines to stdout (idempotent)."""
    for handler in logger.handlers:
        if getattr(handler, "_retailopt_json", False):
            return handler
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(CloudLoggingFormatter())
    handler._retailopt_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def log(severity: int, message: str, **fields: Any) -> None:
    logger.log(severity, message, extra={"fields": {k: v for k, v in fields.items() if v is not None}})


class StepLog:
    """Collects what one step did; `step_log` writes it as a single line when the step ends."""

    def __init__(self, step: str, fields: dict[str, Any]) -> None:
        self.step = step
        self.fields = fields
        self.outcome = "ok"
        self.reason: str | None = None
        self.counts: dict[str, Any] = {}

    def set(self, **fields: Any) -> None:
        self.fields.update(fields)

    def finish(self, outcome: str, reason: str | None = None) -> None:
        self.outcome, self.reason = outcome, reason


@contextlib.contextmanager
def step_log(step: str, *, headers: Mapping[str, str] | None = None, **fields: Any) -> Iterator[StepLog]:
    """One log line per step: severity from the outcome, duration, counts, trace."""
    entry = StepLog(step, {"step": step, **fields, **trace_fields(headers)})
    started = time.perf_counter()
    try:
        yield entry
    except Exception as exc:
        entry.finish("retry" if entry.outcome == "ok" else entry.outcome, entry.reason or f"{type(exc).__name__}: {exc}")
        # A claim held by a concurrent delivery is expected under at-least-once delivery.
        _emit(entry, started, logging.WARNING if entry.outcome == "busy" else logging.ERROR)
        raise
    severity = {"ok": logging.INFO, "duplicate": logging.INFO, "ignored": logging.INFO,
                "dropped": logging.WARNING}.get(entry.outcome, logging.ERROR)
    _emit(entry, started, severity)


def _emit(entry: StepLog, started: float, severity: int) -> None:
    duration = round(time.perf_counter() - started, 4)
    text = f"{entry.step} {entry.outcome}" + (f": {entry.reason}" if entry.reason else "")
    log(severity, text, **entry.fields, outcome=entry.outcome, reason=entry.reason, duration_s=duration,
        counts=entry.counts or None)
