"""Shared pieces of the workbench tests: a small planned chain in a real DuckDB warehouse, copied
per test, served by the real API app; only Pub/Sub is a double (it records what would be sent)."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

from api_support import RecordingPublisher
from retailopt.config import Settings, load_settings
from retailopt.pipeline import run_planning
from retailopt.sample import generate_sample_chain
from retailopt.services.auth import IdTokenVerifier
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore

# Cheap, permissive transfers, so that the small chain's plan moves stock between stores, delivered
# the same day: the routes of a plan carry what arrives on its date, here its transfers (its orders
# arrive after the centre's lead time, on later plans' routes). A load is worth routing whatever a
# van carrying only these few transfers costs: the search carries it (penalty) and the transfer
# pricing keeps it (no minimum value, retailopt.transfer_pricing).
PLAN_SETTINGS = {"routing_time_limit_s": 1, "min_transfer_value": -1e9, "transfer_sender_min_daily_demand": 0,
                 "transfer_lead_days": 0, "routing_penalty_factor": 1000}


def planned_chain(folder: Path) -> tuple[Path, str]:
    """A 10-store, 30-product chain planned once: (data dir, run id)."""
    generate_sample_chain(folder / "raw", n_stores=10, n_products=30, days=150, end_date=date(2026, 1, 14))
    settings = load_settings({"data_dir": folder / "data", **PLAN_SETTINGS}, environ={})
    result = run_planning(settings, folder / "raw")
    return folder / "data", result.run_id


def copy_data(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "warehouse.duckdb", target / "warehouse.duckdb")
    return target


def workbench_runtime(data_dir: Path, *, planners: tuple[str, ...] = (), verifier: IdTokenVerifier | None = None,
                      allowed: tuple[str, ...] = ()) -> Runtime:
    from retailopt.warehouse import open_warehouse

    settings: Settings = load_settings({"data_dir": data_dir, **PLAN_SETTINGS}, environ={})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    service = ServiceSettings(planners=planners, allowed_callers=allowed,
                              auth_audience="https://retailopt-api.example.run.app" if verifier else None)
    runtime = Runtime(settings, service, warehouse, RecordingPublisher(), LocalStore(data_dir / "raw"),
                      LocalStore(data_dir / "artifacts"), verifier)
    set_runtime(runtime)
    return runtime


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def line_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="line-([A-Za-z0-9_.-]+)">', html)


def published(runtime: Runtime, topic: str = "reorders") -> list[dict[str, Any]]:
    return [m for t, m in runtime.publisher.sent if t == topic]
