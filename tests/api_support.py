"""Shared pieces of the API tests: a real Api on an embedded DuckDB warehouse, nothing published.

The publisher is the only double (no Pub/Sub emulator runs here): it records what POST /runs
would send, so no test here runs the pipeline.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import functions_framework
from starlette.testclient import TestClient

from retailopt import sqlfiles
from retailopt.config import load_settings
from retailopt.services.local import main_source
from retailopt.services.runtime import Runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore

CHAIN = "acme"


class RecordingPublisher:
    """Stands in for Pub/Sub: keeps every message instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, message: Any) -> str:
        return self.publish_many(topic, [message])[0]

    def publish_many(self, topic: str, batch: list[Any]) -> list[str]:
        with self._lock:
            self.sent.extend((topic, dict(m)) for m in batch)
            return [str(len(self.sent) - i) for i in range(len(batch))]


def duck_runtime(folder: Path, max_body_bytes: int = 200_000) -> Runtime:
    from retailopt.warehouse import open_warehouse

    settings = load_settings({"data_dir": folder / "data", "chain_id": CHAIN}, environ={})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return Runtime(settings, ServiceSettings(max_body_bytes=max_body_bytes), warehouse, RecordingPublisher(),
                   LocalStore(folder / "raw"), LocalStore(folder / "artifacts"))


def api_client() -> TestClient:
    """The `api` target as functions-framework serves it (a Starlette app)."""
    return TestClient(functions_framework.create_app("api", str(main_source())), raise_server_exceptions=False)


def insert_run(runtime: Runtime, run_id: str, *, parameters: str = "{}", status: str = "RUNNING",
               kpis: str | None = None, run_date: date = date(2026, 1, 15),
               finished_at: datetime | None = None) -> None:
    """A `runs` row written as the pipeline writes it, but with the JSON text given verbatim."""
    wh = runtime.warehouse
    wh.execute(sqlfiles.read_sql("queries/insert_run.sql"), {
        "run_id": run_id, "run_date": run_date, "started_at": datetime.now(timezone.utc),
        "parameters": parameters})
    if status != "RUNNING":
        wh.execute(sqlfiles.read_sql("queries/finish_run.sql"), {
            "run_id": run_id, "status": status, "finished_at": finished_at or datetime.now(timezone.utc),
            "timings": json.dumps({"plan": 1.5}), "kpis": kpis if kpis is not None else "{}", "error": None})
