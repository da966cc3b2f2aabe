"""Configuration of the services (environment variables set by Terraform on every Cloud Run service).

The planning settings themselves come from `retailopt.config` (RETAILOPT_* as well); these are
the few extra values only the services read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from retailopt.config import Bounds, ConfigError, check_number

# Every environment variable the services read, in one list: the Terraform test checks that each
# Cloud Run service sets them.
SERVICE_ENV_VARS: list[str] = [
    "RETAILOPT_ALLOWED_CALLERS",
    "RETAILOPT_ARTIFACTS_BUCKET",
    "RETAILOPT_AUTH_AUDIENCE",
    "RETAILOPT_AUTH_RUN_SERVICE",
    "RETAILOPT_DRIVERS",
    "RETAILOPT_EVENT_BUS",
    "RETAILOPT_FLEET_ENGINE",
    "RETAILOPT_MAX_ATTEMPTS",
    "RETAILOPT_MAX_BODY_BYTES",
    "RETAILOPT_MAX_EVENT_AGE_S",
    "RETAILOPT_PLANNERS",
    "RETAILOPT_PUBSUB_PROJECT",
    "RETAILOPT_RAW_BUCKET",
    "RETAILOPT_TOPIC_PREFIX",
]

# Topics are `<prefix>-<name>`. `import` carries start messages (POST /runs, Cloud Scheduler) to
# the import service, which also receives the raw bucket's object-finalized events.
TOPIC_NAMES: tuple[str, ...] = ("import", "forecast", "plan", "retrain", "published", "reorders", "dispatch")

# 7 days: a Pub/Sub subscription keeps no message longer. max_attempts: Pub/Sub delivers 5..100 times; 1 would give
# up on the first delivery, before the step ever ran.
SERVICE_BOUNDS: dict[str, Bounds] = {"max_attempts": Bounds(2, 100), "max_event_age_s": Bounds(1, 604_800)}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_SA_RE = re.compile(r"^[^@\s,]+@[^@\s,]+$")


@dataclass(frozen=True)
class ServiceSettings:
    raw_bucket: str | None = None
    artifacts_bucket: str | None = None
    topic_prefix: str = "retailopt"
    # Pub/Sub project; None means the project of the planning settings / credentials.
    pubsub_project: str | None = None
    # "pubsub" in the cloud, "local" for the in-process bus of `serve`.
    event_bus: str = "pubsub"
    # ID-token verification is on when an audience is set.
    auth_audience: str | None = None
    # An Eventarc receiver's Cloud Run service name: tokens naming any of its run.app URLs are
    # accepted too (Eventarc Standard has no audience setting; services/auth.py).
    auth_run_service: str | None = None
    allowed_callers: tuple[str, ...] = ()
    # Events older than this are dropped (they are stale plans, not work to catch up on).
    max_event_age_s: float = 86400.0
    # The delivery of an event that reaches this number gives up at once: the run is marked FAILED
    # and the event acknowledged, so a failing step runs at most max_attempts - 1 times. Keep it
    # below the platform's own limit (Pub/Sub's max_delivery_attempts, the local bus's
    # max_attempts), or the platform drops the event first and the run stays RUNNING.
    max_attempts: int = 4
    max_body_bytes: int = 1_000_000
    # Identities (e-mails) holding the planner role in the workbench: they may approve, reject,
    # edit and release; everyone else the API lets in may only read. Empty: in open local mode
    # (no token check) the local user is a planner, with a token check nobody is.
    planners: tuple[str, ...] = ()
    # Identities that may record delivery outcomes (drivers, their dispatcher app); planners may too.
    drivers: tuple[str, ...] = ()
    # Where released routes are dispatched: "cloud" (Fleet Engine of the project) or "local" (the
    # stand-in in the warehouse, retailopt.dispatch.local_fleet).
    fleet_engine: str = "local"

    def __post_init__(self) -> None:
        for name in ("raw_bucket", "artifacts_bucket"):
            value = getattr(self, name)
            if value is not None and not _BUCKET_RE.match(value):
                raise ConfigError(f"invalid setting {name}={value!r}: expected a bucket name")
        if not _PREFIX_RE.match(self.topic_prefix):
            raise ConfigError(f"invalid setting topic_prefix={self.topic_prefix!r}: expected [a-z][a-z0-9-]*")
        if self.event_bus not in ("pubsub", "local"):
            raise ConfigError(f"invalid setting event_bus={self.event_bus!r}: expected pubsub or local")
        for caller in self.allowed_callers:
            if not _SA_RE.match(caller):
                raise ConfigError(f"invalid setting allowed_callers entry {caller!r}: expected an email")
        for planner in self.planners:
            if not _SA_RE.match(planner):
                raise ConfigError(f"invalid setting planners entry {planner!r}: expected an email")
        for driver in self.drivers:
            if not _SA_RE.match(driver):
                raise ConfigError(f"invalid setting drivers entry {driver!r}: expected an email")
        if self.fleet_engine not in ("local", "cloud"):
            raise ConfigError(f"invalid setting fleet_engine={self.fleet_engine!r}: expected local or cloud")
        if self.auth_audience is not None and not self.allowed_callers:
            raise ConfigError("invalid setting allowed_callers=(): set it when auth_audience is set")
        if self.auth_run_service is not None:
            if self.auth_audience is None:
                raise ConfigError("invalid setting auth_run_service: set auth_audience with it")
            if not re.fullmatch(r"[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?", self.auth_run_service):
                raise ConfigError(f"invalid setting auth_run_service={self.auth_run_service!r}: "
                                  "expected a Cloud Run service name")
        for name, bounds in SERVICE_BOUNDS.items():
            check_number(name, getattr(self, name), bounds, integer=name == "max_attempts")
        if not 1024 <= self.max_body_bytes <= 32_000_000:
            raise ConfigError(f"invalid setting max_body_bytes={self.max_body_bytes!r}: expected 1024..32000000")

    def topic(self, name: str) -> str:
        if name not in TOPIC_NAMES:
            raise ConfigError(f"unknown topic {name!r}")
        return f"{self.topic_prefix}-{name}"


def _number(environ: Mapping[str, str], name: str, kind: type, default: float | int) -> float | int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid setting {name}={raw!r}: expected {kind.__name__}") from exc


def load_service_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    env = os.environ if environ is None else environ
    callers = tuple(c.strip() for c in env.get("RETAILOPT_ALLOWED_CALLERS", "").split(",") if c.strip())
    return ServiceSettings(
        raw_bucket=env.get("RETAILOPT_RAW_BUCKET") or None,
        artifacts_bucket=env.get("RETAILOPT_ARTIFACTS_BUCKET") or None,
        topic_prefix=env.get("RETAILOPT_TOPIC_PREFIX") or "retailopt",
        pubsub_project=env.get("RETAILOPT_PUBSUB_PROJECT") or env.get("RETAILOPT_PROJECT") or None,
        event_bus=env.get("RETAILOPT_EVENT_BUS") or "pubsub",
        auth_audience=env.get("RETAILOPT_AUTH_AUDIENCE") or None,
        auth_run_service=env.get("RETAILOPT_AUTH_RUN_SERVICE") or None,
        allowed_callers=callers,
        planners=tuple(p.strip().lower() for p in env.get("RETAILOPT_PLANNERS", "").split(",") if p.strip()),
        drivers=tuple(p.strip().lower() for p in env.get("RETAILOPT_DRIVERS", "").split(",") if p.strip()),
        fleet_engine=env.get("RETAILOPT_FLEET_ENGINE") or "local",
        max_event_age_s=float(_number(env, "RETAILOPT_MAX_EVENT_AGE_S", float, 86400.0)),
        max_attempts=int(_number(env, "RETAILOPT_MAX_ATTEMPTS", int, ServiceSettings.max_attempts)),
        max_body_bytes=int(_number(env, "RETAILOPT_MAX_BODY_BYTES", int, 1_000_000)),
    )
