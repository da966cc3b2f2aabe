"""Local mode: the API and every event handler in one process, chained by the in-process bus.

The handlers are the functions-framework targets of `functions/main.py`, each in its own app as
on Cloud Run; the bus posts the same CloudEvents to them that Eventarc would. The raw and
artifacts buckets are folders.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import functions_framework
from a2wsgi import WSGIMiddleware

import retailopt
from retailopt.config import Settings
from retailopt.services.auth import IdTokenVerifier
from retailopt.services.bus import SUBSCRIPTIONS, LocalBus
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore

EVENT_TARGETS = ("import_files", "forecast", "plan", "retrain", "dispatch")


def main_source() -> Path:
    """`functions/main.py` (FUNCTION_SOURCE overrides it, as for functions-framework)."""
    override = os.environ.get("FUNCTION_SOURCE")
    return Path(override) if override else Path(retailopt.__file__).resolve().parents[1] / "main.py"


@dataclass
class LocalChain:
    runtime: Runtime
    bus: LocalBus
    apps: dict[str, Any] = field(default_factory=dict)

    @property
    def asgi(self) -> Any:
        """The API at `/`, and each handler at `/events/<target>` for posting CloudEvents by hand."""
        return mount_events(self.apps["api"], {f"/events/{t}": self.apps[t] for t in EVENT_TARGETS})

    def api_client(self) -> Any:
        from starlette.testclient import TestClient

        return TestClient(self.apps["api"])

    def wait_idle(self, timeout_s: float = 300.0) -> bool:
        return self.bus.wait_idle(timeout_s)

    def close(self) -> None:
        self.bus.close()
        set_runtime(None)
        self.runtime.warehouse.close()


# functions-framework's header for the id its logs carry (uvicorn gives header names in lower case).
_EXECUTION_ID = b"function-execution-id"


def mount_events(api: Any, handlers: Mapping[str, Any]) -> Any:
    """One ASGI app: the API's, with the handlers' WSGI apps mounted under their prefixes."""
    mounted = {prefix: WSGIMiddleware(app) for prefix, app in handlers.items()}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Each request gets its execution id here, as the serverless platform sets the header:
            # functions-framework's own fallback draws 12 random choices per request, a fifth of
            # the cost of a cached answer.
            headers = scope["headers"]
            if not any(name == _EXECUTION_ID for name, _ in headers):
                scope["headers"] = [*headers, (_EXECUTION_ID, os.urandom(6).hex().encode())]
            path = scope["path"]
            for prefix, handler in mounted.items():
                if path == prefix or path.startswith(prefix + "/"):
                    inner = {**scope, "path": path[len(prefix):] or "/",
                             "root_path": scope.get("root_path", "") + prefix}
                    await handler(inner, receive, send)
                    return
        await api(scope, receive, send)

    return app


def start_local(settings: Settings, *, raw_dir: Path | None = None, artifacts_dir: Path | None = None,
                verifier: IdTokenVerifier | None = None, service: ServiceSettings | None = None,
                max_attempts: int | None = None, backoff_s: float = 0.2,
                on_idle: Callable[[], None] | None = None) -> LocalChain:
    from retailopt.warehouse import open_warehouse

    service = dataclasses.replace(service or ServiceSettings(), event_bus="local")
    from retailopt.pipeline import recover_runs

    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    # Runs a killed `serve` or `run` left RUNNING are failed now, so their requests can start again.
    recover_runs(warehouse, same_machine=settings.warehouse == "duckdb")
    apps: dict[str, Any] = {}
    deliver_lock = threading.Lock()
    bus_secret = secrets.token_urlsafe(32)

    def deliver(target: str, headers: Mapping[str, str], body: bytes) -> int:
        from retailopt.services.entrypoints import LOCAL_BUS_HEADER

        with deliver_lock:
            client = apps[target].test_client()
        return client.post("/", headers={**headers, LOCAL_BUS_HEADER: bus_secret}, data=body).status_code

    # Like Pub/Sub's max_delivery_attempts, the bus delivers once more than the services' limit, so
    # the service gives up (run FAILED) before the bus dead-letters the event.
    if max_attempts is None:
        max_attempts = service.max_attempts + 1
    if max_attempts <= service.max_attempts:
        raise ValueError(f"the bus's max_attempts ({max_attempts}) must exceed the services' ({service.max_attempts})")
    bus = LocalBus(deliver=deliver, max_attempts=max_attempts, backoff_s=backoff_s, on_idle=on_idle)
    runtime = Runtime(settings, service, warehouse, bus,
                      LocalStore(raw_dir or Path(settings.data_dir) / "raw", "local-raw"),
                      LocalStore(artifacts_dir or Path(settings.data_dir) / "artifacts", "local-artifacts"), verifier,
                      local_bus_secret=bus_secret)
    set_runtime(runtime)
    source = str(main_source())
    for target in ("api", *EVENT_TARGETS):
        apps[target] = functions_framework.create_app(target, source)
    assert set(t for ts in SUBSCRIPTIONS.values() for t in ts) <= set(EVENT_TARGETS)
    return LocalChain(runtime, bus, apps)
