"""Validated configuration of a planning run.

Values come from defaults, then `RETAILOPT_*` environment variables, then explicit overrides
(command-line flags or an HTTP what-if request). Dataset and project names are validated here
because they are the only identifiers ever placed into SQL text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATASET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_VEHICLE_IDS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64})*$")
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
ENV_PREFIX = "RETAILOPT_"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    # Where the embedded warehouse, artifacts and local storage live.
    data_dir: Path = Path("data")
    # "duckdb" (embedded default) or "bigquery".
    warehouse: str = "duckdb"
    dataset: str = "retailopt"
    project: str | None = None
    location: str = "US"
    chain_id: str = "default"
    # Planning date; None means the day after the last sales date in the warehouse.
    run_date: date | None = None
    # Forecasting.
    forecast_engine: str = "local"  # "local" or "bigquery_ml"
    horizon_days: int = 28
    confidence_level: float = 0.9
    holiday_country: str = "US"
    holiday_subdivision: str | None = None
    history_days: int = 730
    # Inventory policy.
    review_period_days: int = 7
    service_level: float = 0.95
    service_level_by_category: Mapping[str, float] = field(default_factory=dict)
    holding_cost_rate: float = 0.25  # per year, fraction of unit cost
    overstock_cover_days: float = 60.0
    # ABC class (chain revenue share: A top 80 %, B next 15 %, C the rest) -> target. A class in
    # fill_rate_by_class uses a fill-rate target; otherwise service_level_by_class, then
    # service_level, give the cycle service level. service_level_by_category overrides both.
    service_level_by_class: Mapping[str, float] = field(default_factory=lambda: {"A": 0.97, "B": 0.95})
    fill_rate_by_class: Mapping[str, float] = field(default_factory=lambda: {"C": 0.95})
    # Positions selling less than this per day use a discrete (Poisson / negative binomial) demand.
    slow_mover_daily_demand: float = 1.0
    # Fixed cost of one distribution-centre order line, for the EOQ.
    order_cost_per_line: float = 4.0
    # Days a store-to-store transfer takes to arrive.
    transfer_lead_days: int = 1
    # Rebalancing.
    handling_cost_per_unit: float = 0.30
    transport_cost_per_unit_km: float = 0.02
    max_transfer_km: float = 60.0
    min_transfer_units: int = 2
    min_transfer_value: float = 5.0
    # A sender keeps its order-up-to level plus this many days of expected demand (None: the review
    # period): positions look like surplus partly because their forecast is low by chance, and a
    # sender stripped to its levels pays for that error in lost sales.
    transfer_sender_reserve_days: float | None = None
    # Positions selling less than this per day do not send (None: slow_mover_daily_demand; 0: all
    # may): one store's slow-mover forecast is mostly noise, so its "surplus" usually is not one
    # (replay evidence in docs/policy.md).
    transfer_sender_min_daily_demand: float | None = None
    routing_engine: str = "local"  # "local" or "api"
    routing_time_limit_s: float = 10.0
    speed_kmh: float = 35.0
    visit_minutes: float = 10.0
    # IANA zone of store hours and shifts; the API's timestamps are UTC.
    timezone: str = "America/Chicago"
    routing_max_route_hours: float = 10.0
    # Penalty of skipping a shipment = value x this factor (a shipment not worth its route is skipped).
    routing_penalty_factor: float = 1.0
    # What-if fleet: route with these vehicles only (comma-separated ids; unset: the whole fleet),
    # and with at most this many of them (the largest capacities first).
    fleet_vehicle_ids: str | None = None
    fleet_max_vehicles: int | None = None
    # Seed for everything random (sample data, bootstrap).
    seed: int = 42
    # Seconds a RUNNING run may go without a heartbeat before it is marked FAILED (its process
    # died); a working step renews it every quarter of this. Longer than a Pub/Sub redelivery
    # of a crashed step (the dedupe claim's 900 s), so the cloud retries before giving up.
    run_lease_s: float = 1200.0

    def __post_init__(self) -> None:
        _check(bool(_DATASET_RE.match(self.dataset)), "dataset", self.dataset, "letters, digits and _")
        if self.project is not None:
            _check(bool(_PROJECT_RE.match(self.project)), "project", self.project, "a GCP project id")
        _check(self.warehouse in ("duckdb", "bigquery"), "warehouse", self.warehouse, "duckdb or bigquery")
        _check(self.forecast_engine in ("local", "bigquery_ml"), "forecast_engine", self.forecast_engine,
               "local or bigquery_ml")
        _check(self.routing_engine in ("local", "api"), "routing_engine", self.routing_engine, "local or api")
        _check(self.warehouse != "bigquery" or self.project is not None, "project", self.project,
               "set when warehouse is bigquery")
        _check(1 <= self.horizon_days <= 366, "horizon_days", self.horizon_days, "1..366")
        _check(0.5 <= self.confidence_level < 1, "confidence_level", self.confidence_level, "0.5..<1")
        _check(0.5 <= self.service_level < 1, "service_level", self.service_level, "0.5..<1")
        for category, level in self.service_level_by_category.items():
            _check(0.5 <= float(level) < 1, f"service_level_by_category[{category}]", level, "0.5..<1")
        for name in ("service_level_by_class", "fill_rate_by_class"):
            for key, level in getattr(self, name).items():
                _check(0.5 <= float(level) < 1, f"{name}[{key}]", level, "0.5..<1")
        _check(self.slow_mover_daily_demand >= 0, "slow_mover_daily_demand", self.slow_mover_daily_demand,
               ">= 0")
        _check(self.order_cost_per_line >= 0, "order_cost_per_line", self.order_cost_per_line, ">= 0")
        _check(self.transfer_lead_days >= 0, "transfer_lead_days", self.transfer_lead_days, ">= 0")
        _check(self.review_period_days >= 1, "review_period_days", self.review_period_days, ">= 1")
        _check(self.history_days >= 28, "history_days", self.history_days, ">= 28")
        _check(self.max_transfer_km > 0, "max_transfer_km", self.max_transfer_km, "> 0")
        _check(self.min_transfer_units >= 1, "min_transfer_units", self.min_transfer_units, ">= 1")
        _check(self.transfer_sender_min_daily_demand is None or self.transfer_sender_min_daily_demand >= 0,
               "transfer_sender_min_daily_demand", self.transfer_sender_min_daily_demand, ">= 0 or unset")
        _check(self.transfer_sender_reserve_days is None or self.transfer_sender_reserve_days >= 0,
               "transfer_sender_reserve_days", self.transfer_sender_reserve_days, ">= 0 or unset")
        _check(self.routing_time_limit_s > 0, "routing_time_limit_s", self.routing_time_limit_s, "> 0")
        _check(self.speed_kmh > 0, "speed_kmh", self.speed_kmh, "> 0")
        _check(self.visit_minutes >= 0, "visit_minutes", self.visit_minutes, ">= 0")
        _check(_is_timezone(self.timezone), "timezone", self.timezone, "an IANA time zone name")
        _check(0 < self.routing_max_route_hours <= 24, "routing_max_route_hours",
               self.routing_max_route_hours, "0..24")
        _check(self.routing_penalty_factor >= 0, "routing_penalty_factor", self.routing_penalty_factor,
               ">= 0")
        _check(self.fleet_vehicle_ids is None or bool(_VEHICLE_IDS_RE.match(self.fleet_vehicle_ids)),
               "fleet_vehicle_ids", self.fleet_vehicle_ids, "comma-separated vehicle ids")
        _check(self.fleet_max_vehicles is None or self.fleet_max_vehicles >= 1, "fleet_max_vehicles",
               self.fleet_max_vehicles, ">= 1 or unset")
        _check(2 <= self.run_lease_s <= 86400, "run_lease_s", self.run_lease_s, "2..86400")

    def service_level_for(self, category: str) -> float:
        return float(self.service_level_by_category.get(category, self.service_level))

    def replace(self, **overrides: Any) -> "Settings":
        return load_settings(overrides, base=self, environ={})

    def as_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data_dir"] = str(self.data_dir)
        out["run_date"] = self.run_date.isoformat() if self.run_date else None
        out["service_level_by_category"] = dict(self.service_level_by_category)
        out["service_level_by_class"] = dict(self.service_level_by_class)
        out["fill_rate_by_class"] = dict(self.fill_rate_by_class)
        return out


def _is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"invalid setting {name}={value!r}: expected {expected}")


def _coerce(name: str, raw: Any, annotation: str) -> Any:
    if raw is None:
        return None
    try:
        if "Path" in annotation:
            return Path(raw)
        if "date" in annotation:
            return raw if isinstance(raw, date) else date.fromisoformat(str(raw))
        if "Mapping" in annotation:
            return dict(json.loads(raw) if isinstance(raw, str) else raw)
        if annotation.startswith("int"):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if annotation.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        return str(raw)
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"invalid setting {name}={raw!r}: expected {annotation}") from exc


def load_settings(overrides: Mapping[str, Any] | None = None, *, base: Settings | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment (RETAILOPT_<NAME>) and explicit overrides."""
    environ = os.environ if environ is None else environ
    fields = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for name, annotation in fields.items():
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value not in (None, ""):
            values[name] = _coerce(name, env_value, annotation)
    for name, raw in (overrides or {}).items():
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}")
        if raw is not None:
            values[name] = _coerce(name, raw, fields[name])
    return dataclasses.replace(base or Settings(), **values)


def env_var_names() -> list[str]:
    """Every environment variable the code reads for its settings (Terraform must set them)."""
    return sorted(ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings))
