"""Process-wide dependencies of the handlers, built once from the environment.

Cloud Run keeps an instance warm between requests, so the warehouse connection, the Pub/Sub
client and the verifier's key cache are made once per process. Local mode and tests install
their own `Runtime` with `set_runtime`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from retailopt.config import Settings, load_settings
from retailopt.services.auth import GoogleCerts, IdTokenVerifier
from retailopt.services.dedupe import Ledger
from retailopt.services.settings import ServiceSettings, load_service_settings
from retailopt.services.storage import GcsStore, LocalStore, ObjectStore


class Publisher(Protocol):
    def publish(self, topic: str, message: Any) -> str: ...

    def publish_many(self, topic: str, batch: list[Any]) -> list[str]: ...


@dataclass
class Runtime:
    settings: Settings
    service: ServiceSettings
    warehouse: Any
    publisher: Publisher
    raw_store: ObjectStore
    artifacts_store: ObjectStore
    verifier: IdTokenVerifier | None = None
    # Local mode: deliveries of the in-process bus carry this random secret instead of a token.
    local_bus_secret: str | None = None

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.warehouse)
        self._fleet: Any = None

    def fleet(self) -> Any:
        """The Fleet Engine Deliveries client: the service itself (`fleet_engine = "cloud"`, the
        project's Application Default Credentials) or the warehouse-backed stand-in; the dispatch
        code calls both the same way."""
        if self._fleet is None:
            if self.service.fleet_engine == "cloud":
                from google.maps import fleetengine_delivery_v1 as fe

                self._fleet = fe.DeliveryServiceClient()
            else:
                from retailopt.dispatch.local_fleet import local_client

                self._fleet = local_client(self.warehouse)
        return self._fleet

    def fleet_parent(self) -> str:
        from retailopt.dispatch.fleet import provider

        return provider(self.settings.project if self.service.fleet_engine == "cloud" else None)


_lock = threading.Lock()
_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = runtime


def peek_runtime() -> Runtime | None:
    """The runtime if it is built already; never builds it (callers on an event loop)."""
    with _lock:
        return _runtime


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime()
        return _runtime


def build_runtime(settings: Settings | None = None, service: ServiceSettings | None = None) -> Runtime:
    """The cloud wiring: warehouse from settings, Pub/Sub, Cloud Storage, Google's certificates."""
    from retailopt.warehouse import open_warehouse

    settings = settings or load_settings()
    service = service or load_service_settings()
    warehouse = open_warehouse(settings)
    if settings.warehouse == "duckdb":
        warehouse.ensure_schema()
    # BigQuery: Terraform creates the dataset, tables and views from sql/; the services' accounts
    # hold data rights only (no dataset creation), so they never run DDL.
    if service.event_bus != "pubsub":
        raise RuntimeError("the local event bus exists only inside `serve`; set RETAILOPT_EVENT_BUS=pubsub")
    from retailopt.services.publisher import PubSubPublisher

    project = service.pubsub_project or settings.project
    if not project:
        raise RuntimeError("set RETAILOPT_PUBSUB_PROJECT or RETAILOPT_PROJECT for Pub/Sub")
    raw_store, artifacts_store = _stores(settings, service)
    verifier = None
    if service.auth_audience:
        verifier = IdTokenVerifier(service.auth_audience, service.allowed_callers, GoogleCerts(),
                                   run_service=service.auth_run_service)
    return Runtime(settings, service, warehouse, PubSubPublisher(project, service), raw_store, artifacts_store,
                   verifier)


def _stores(settings: Settings, service: ServiceSettings) -> tuple[ObjectStore, ObjectStore]:
    if service.raw_bucket or service.artifacts_bucket:
        from google.cloud import storage

        client = storage.Client(project=settings.project)
        raw: ObjectStore = GcsStore(client, service.raw_bucket) if service.raw_bucket else LocalStore(
            Path(settings.data_dir) / "raw", "local-raw")
        artifacts: ObjectStore = GcsStore(client, service.artifacts_bucket) if service.artifacts_bucket else LocalStore(
            Path(settings.data_dir) / "artifacts", "local-artifacts")
        return raw, artifacts
    return (LocalStore(Path(settings.data_dir) / "raw", "local-raw"),
            LocalStore(Path(settings.data_dir) / "artifacts", "local-artifacts"))
