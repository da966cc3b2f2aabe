"""Validated configuration of a planning run.

Values come from defaults, then `RETAILOPT_*` environment variables, then explicit overrides
(command-line flags or an HTTP what-if request). Dataset and project names are validated here
because they are the only identifiers ever placed into SQL text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATASET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_CLASSES_RE = re.compile(r"^([ABC](,[ABC])*)?$")
_VEHICLE_IDS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64})*$")
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
ENV_PREFIX = "RETAILOPT_"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting."""


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric setting; an exclusive end is itself outside the range."""

    min: float
    max: float
    min_exclusive: bool = False
    max_exclusive: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.min if self.min_exclusive else value >= self.min
        below = value < self.max if self.max_exclusive else value <= self.max
        return above and below

    @property
    def text(self) -> str:
        """`1..130`; `0<..2000` excludes 0; `0.5..<1` excludes 1."""
        low = _num(self.min) + ("<" if self.min_exclusive else "")
        high = ("<" if self.max_exclusive else "") + _num(self.max)
        return f"{low}..{high}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# The one list of what each numeric setting may be: what a planner of a retail chain could
# reasonably ask for, and nothing that makes the maths meaningless (infinite, NaN, negative costs,
# a 10-million-day history). A setting typed int must also be a whole number; for a mapping the
# bounds hold for every value. terraform/settings.tf and the README repeat this table; tests
# compare them with it.
SETTING_BOUNDS: dict[str, Bounds] = {
    # What-if price of a kg of CO2e, added to each vehicle's cost per km (co2_kg_per_km x this).
    "carbon_price_per_kg": Bounds(0, 100),
    "class_a_stockout_share": Bounds(0.1, 1),
    "confidence_level": Bounds(0.5, 1, max_exclusive=True),
    "cost_service_level_max": Bounds(0.5, 1, max_exclusive=True),
    "cost_service_level_min": Bounds(0.5, 1, max_exclusive=True),
    "fill_rate_by_class": Bounds(0.5, 1, max_exclusive=True),
    "fleet_max_vehicles": Bounds(1, 10_000),
    "handling_cost_per_unit": Bounds(0, 1e6),
    "history_days": Bounds(28, 3660),
    "holding_cost_rate": Bounds(0, 5),
    "horizon_days": Bounds(1, 366),
    "max_transfer_km": Bounds(0, 2000, min_exclusive=True),
    "min_transfer_units": Bounds(1, 100_000),
    # Negative: trips that lose up to this much still go; -1e9 switches the minimum off.
    "min_transfer_value": Bounds(-1e9, 1e9),
    "order_cost_per_line": Bounds(0, 1e6),
    "overstock_cover_days": Bounds(1, 730),
    "review_period_days": Bounds(1, 90),
    "routing_max_route_hours": Bounds(0, 24, min_exclusive=True),
    "routing_penalty_factor": Bounds(0, 1000),
    "routing_time_limit_s": Bounds(0.1, 3600),
    "run_lease_s": Bounds(2, 86_400),
    "seed": Bounds(0, 2**32 - 1),
    "service_level": Bounds(0.5, 1, max_exclusive=True),
    "service_level_by_category": Bounds(0.5, 1, max_exclusive=True),
    "service_level_by_class": Bounds(0.5, 1, max_exclusive=True),
    "slow_mover_daily_demand": Bounds(0, 1000),
    "speed_kmh": Bounds(1, 130),
    "transfer_lead_days": Bounds(0, 60),
    "transfer_max_wait_days": Bounds(0, 60),
    "transfer_pricing_time_s": Bounds(0, 3600, min_exclusive=True),
    "transfer_sender_min_daily_demand": Bounds(0, 1000),
    "transfer_sender_reserve_days": Bounds(0, 366),
    "transport_cost_per_unit_km": Bounds(0, 1e6),
    "visit_minutes": Bounds(0, 240),
}


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
    # Period of the sales rows: "auto" (inferred from the dates), "daily", "weekly", "monthly",
    # "quarterly" or a pandas offset alias naming the anchor ("W-FRI", "MS", "ME"). With weekly or
    # monthly data the forecast is per period, and horizon, history, lead times and the review
    # period are rounded up to whole periods (docs/forecasting.md, "Weekly and monthly data").
    data_frequency: str = "auto"
    # Sales anomalies (forecasting/anomalies.py): "isolated_spikes" fits the local forecast with
    # the expected value instead of a spike day whose neighbours are not high and that is not on
    # promotion (multi-day runs of high sales are kept); "none" fits on the sales as they are.
    exclude_anomalies: str = "isolated_spikes"
    # Inventory policy.
    review_period_days: int = 7
    # The chain's target service level. Unset (the default): costs decide it per product, the
    # newsvendor critical ratio margin / (margin + holding cost of a unit over one review period),
    # within cost_service_level_min..cost_service_level_max (`cost_service_levels`). Set: every
    # class plans for a target derived from it (below), as before issue 15.
    service_level: float | None = None
    # Bounds of the cost-based service level: below the median the reorder point would plan to
    # run out more often than not; above 0.99 the level lies beyond the forecast's last quantile
    # (q99), where its tail is an extrapolation. A floor above the ceiling wins.
    cost_service_level_min: float = 0.5
    cost_service_level_max: float = 0.99
    service_level_by_category: Mapping[str, float] = field(default_factory=dict)
    holding_cost_rate: float = 0.25  # per year, fraction of unit cost
    overstock_cover_days: float = 60.0
    # With service_level set, ABC class (chain revenue share: A top 80 %, B next 15 %, C the rest)
    # -> target, derived from service_level so that raising it raises every class
    # (`class_targets`): A has
    # class_a_stockout_share of the stockout cycles service_level allows (0.6: 0.95 -> 0.97,
    # 0.98 -> 0.988), B is service_level, and the classes
    # in fill_rate_classes plan for a fill rate of service_level instead of a cycle service level.
    # service_level_by_class and fill_rate_by_class set a class's target outright (a class in
    # fill_rate_by_class uses a fill-rate target), service_level or not;
    # service_level_by_category overrides all.
    service_level_by_class: Mapping[str, float] = field(default_factory=dict)
    fill_rate_by_class: Mapping[str, float] = field(default_factory=dict)
    fill_rate_classes: str = "C"
    class_a_stockout_share: float = 0.6
    # Positions selling less than this per day use a discrete (Poisson / negative binomial) demand.
    slow_mover_daily_demand: float = 1.0
    # Fixed cost of one distribution-centre order line, for the EOQ.
    order_cost_per_line: float = 4.0
    # Days a store-to-store transfer takes to arrive.
    transfer_lead_days: int = 1
    # Days a released transfer may wait for a truck past its delivery day; then it is cancelled
    # (its sender keeps the units, its receiver is planned again).
    transfer_max_wait_days: int = 2
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
    # Seconds the pricing of a plan's transfers by solved routes may take in all (planning and
    # solving, `transfer_pricing`): it ends its rounds early rather than pass this, though the first
    # plan and solve, and the solve of the final plan, always run.
    transfer_pricing_time_s: float = 10.0
    routing_engine: str = "local"  # "local" or "api"
    routing_time_limit_s: float = 10.0
    speed_kmh: float = 35.0
    visit_minutes: float = 10.0
    # IANA zone of store hours and shifts; the API's timestamps are UTC.
    timezone: str = "America/Chicago"
    routing_max_route_hours: float = 10.0
    # Penalty of skipping a shipment = value x this factor (a shipment not worth its route is skipped).
    routing_penalty_factor: float = 1.0
    # Price of a kg of CO2e the routes pay (0: emissions are reported, not priced): a vehicle costs
    # cost_per_km + co2_kg_per_km x this per km, so a what-if can minimise cost plus carbon.
    carbon_price_per_kg: float = 0.0
    # "review": a plan waits for a planner's release (workbench, POST /runs/{id}/release);
    # "auto": where no review step is wanted, the planning run releases each plan as planned and
    # its routes are dispatched (`retailopt run`, `serve` and the cloud's plan step alike).
    release_mode: str = "review"
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
        _check(self.exclude_anomalies in ("isolated_spikes", "none"), "exclude_anomalies", self.exclude_anomalies,
               "isolated_spikes or none")
        _check(self.release_mode in ("review", "auto"), "release_mode", self.release_mode, "review or auto")
        _check(_is_frequency(self.data_frequency), "data_frequency", self.data_frequency,
               "auto, daily, weekly, monthly, quarterly or a pandas alias such as W-FRI, MS, ME")
        _check(self.warehouse != "bigquery" or self.project is not None, "project", self.project,
               "set when warehouse is bigquery")
        for name, bounds in SETTING_BOUNDS.items():
            value, kind = getattr(self, name), _FIELD_TYPES[name]
            optional = kind.endswith("| None")
            if kind.startswith("Mapping"):
                for key, item in value.items():
                    check_number(f"{name}[{key}]", item, bounds, integer=False)
            elif not (optional and value is None):
                check_number(name, value, bounds, integer=kind.startswith("int"), optional=optional)
        _check(_is_timezone(self.timezone), "timezone", self.timezone, "an IANA time zone name")
        _check(bool(_CLASSES_RE.match(self.fill_rate_classes)), "fill_rate_classes", self.fill_rate_classes,
               "comma-separated ABC classes (A, B, C) or empty")
        _check(self.fleet_vehicle_ids is None or bool(_VEHICLE_IDS_RE.match(self.fleet_vehicle_ids)),
               "fleet_vehicle_ids", self.fleet_vehicle_ids, "comma-separated vehicle ids")

    def class_targets(self, cls: str) -> tuple[str, float]:
        """("fill_rate", target), ("csl", target) or, where costs decide (service_level unset
        and no target set for the class), ("cost", nan) of an ABC class."""
        if cls in self.fill_rate_by_class:
            return "fill_rate", float(self.fill_rate_by_class[cls])
        if cls in self.service_level_by_class:
            return "csl", float(self.service_level_by_class[cls])
        if self.service_level is None:
            return "cost", math.nan
        if cls in self.fill_rate_classes.split(","):
            return "fill_rate", self.service_level
        if cls == "A":
            return "csl", 1.0 - (1.0 - self.service_level) * self.class_a_stockout_share
        return "csl", self.service_level

    def cost_service_levels(self, margin, unit_cost):
        """The newsvendor critical ratio cu / (cu + co) per product, within
        cost_service_level_min..max: cu = margin (price - unit cost), what a lost sale costs; co =
        holding_cost_rate x unit cost over one review period, what a unit left over at the end of
        a cycle costs until the next order can take it into account. A cycle service level over
        the protection interval (lead time + review period). No margin, or costs missing: the
        lower bound (selling at a loss is no reason to carry stock)."""
        import numpy as np

        cu = np.asarray(margin, dtype=float)
        co = self.holding_cost_rate * np.asarray(unit_cost, dtype=float) * self.review_period_days / 365.0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((cu > 0) & (co >= 0), cu / (cu + co), self.cost_service_level_min)
        ratio = np.where(np.isfinite(ratio), ratio, self.cost_service_level_min)
        # A floor above the ceiling wins (a planner raising the floor means it).
        return np.maximum(np.minimum(ratio, self.cost_service_level_max), self.cost_service_level_min)

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


# Annotations as text ("int", "float | None", "Mapping[str, float]"): they say how a value is read.
_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_frequency(value: Any) -> bool:
    from retailopt.forecasting.frequency import check_setting

    try:
        check_setting(value)
    except ValueError:
        return False
    return True


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"invalid setting {name}={value!r}: expected {expected}")


def _is_number(value: Any, integer: bool) -> bool:
    # bool is an int to Python, never a number of days or a cost to a planner.
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float is beyond every bound anyway
        return False


def check_number(name: str, value: Any, bounds: Bounds, *, integer: bool, optional: bool = False) -> None:
    if not (_is_number(value, integer) and bounds.contains(value)):
        kind = "a whole number" if integer else "a finite number"
        raise ConfigError(f"invalid setting {name}={_shown(value)}: expected {kind} in {bounds.text}"
                          + (" or unset" if optional else ""))


def _shown(value: Any) -> str:
    # A 5000-digit number cannot even be printed (Python's int limit); a long one is cut.
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__} too long to print>"
    return text if len(text) <= 40 else text[:36] + "...>"


def _to_number(name: str, raw: Any, integer: bool) -> int | float:
    """A number from what a caller gave (JSON number, environment string, `--set` text); whole
    numbers may be written as floats (`1e3`, `35.0`). Range checks are `Settings`' own."""
    bounds = SETTING_BOUNDS.get(name.split("[")[0])
    value: Any = raw
    try:
        if isinstance(raw, bool) or not isinstance(raw, (numbers.Real, str)):
            raise ValueError
        if isinstance(raw, str):
            text = raw.strip()
            try:
                value = int(text)
            except ValueError:
                value = float(text)
        if integer and not isinstance(value, numbers.Integral):
            if not float(value).is_integer():
                raise ValueError
            value = int(value)
        return int(value) if integer else float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        kind = "a whole number" if integer else "a finite number"
        where = f" in {bounds.text}" if bounds is not None else ""
        raise ConfigError(f"invalid setting {name}={_shown(raw)}: expected {kind}{where}") from exc


def _coerce(name: str, raw: Any, annotation: str) -> Any:
    if raw is None:
        return None
    try:
        if "Path" in annotation:
            return Path(raw)
        if "date" in annotation:
            return raw if isinstance(raw, date) else date.fromisoformat(str(raw))
        if "Mapping" in annotation:
            mapping = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(mapping, Mapping):
                raise ValueError
            return {str(k): _to_number(f"{name}[{k}]", v, integer=False) for k, v in mapping.items()}
        if annotation.startswith("int"):
            return _to_number(name, raw, integer=True)
        if annotation.startswith("float"):
            return _to_number(name, raw, integer=False)
        return str(raw)
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, ConfigError):
            raise
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
