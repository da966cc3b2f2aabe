"""What the workbench pages show, read from the warehouse one page at a time.

Every value travels as a query parameter; the only text put into SQL is a sort clause picked
from a fixed list. Pages are LIMIT/OFFSET slices of queries the warehouse sorts and counts, so a
large plan never leaves the warehouse whole.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from retailopt import sqlfiles
from retailopt.warehouse.base import query_file

PAGE_SIZE = 50
MAX_PAGE = 100_000

# What-if settings worth showing when a run's differ from the deployment's (retailopt.services.handlers.WHAT_IF_FIELDS).
_NOT_OVERRIDES = {"run_date", "data_dir"}

REASONS: dict[str, str] = {
    "UNROUTED_LOAD": "unrouted load",
    "SHELF_ROOM": "shelf room",
    "CASE_PACK": "case pack",
    "STORE_ROOM": "store room",
    "NO_DISTRIBUTION_CENTRE": "no distribution centre",
    "SLOW_MOVER": "slow mover",
    "NO_SHORTAGE_ELSEWHERE": "no shortage elsewhere",
    "STOCK_ON_ORDER": "stock on order",
    "NO_WORTHWHILE_TRANSFER": "no worthwhile transfer",
    "UNEXPLAINED": "unexplained",
}

# (label, SQL expression) by the key a page's ?sort= names; a leading "-" sorts descending.
TRANSFER_SORTS = {"value": "value", "quantity": "quantity", "product": "product_name", "from": "from_store_name",
                  "to": "to_store_name", "km": "distance_km", "decision": "decision", "line": "line_id"}
ORDER_SORTS = {"value": "order_value", "quantity": "quantity", "product": "product_name", "store": "store_name",
               "arrival": "expected_arrival", "decision": "decision", "line": "line_id"}
DECISIONS = ("PENDING", "APPROVED", "REJECTED")


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        return 0 if not self.total else (self.page - 1) * self.size + 1

    @property
    def last(self) -> int:
        return min(self.total, self.page * self.size)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (pd.Timestamp,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def stored_json(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text, parse_constant=lambda _: None)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def page_number(raw: str | None) -> int:
    try:
        return min(max(int(raw or 1), 1), MAX_PAGE)
    except ValueError:
        return 1


def _offset(page: int, size: int) -> dict[str, int]:
    return {"limit": size, "offset": (page - 1) * size}


def _sort_clause(sorts: Mapping[str, str], key: str | None, default: str) -> tuple[str, str]:
    key = key or default
    column = sorts.get(key.lstrip("-"))
    if column is None:
        key, column = default, sorts[default.lstrip("-")]
    direction = "DESC" if key.startswith("-") else "ASC"
    return key, f"{column} {direction}, line_id ASC"


# --- runs ------------------------------------------------------------------------------------

def trigger_of(start_event: Any) -> str:
    """What started a run, from the import step's ledger key (`event:<source>/<id>`)."""
    if not isinstance(start_event, str):
        return "command line"
    if "storage.googleapis.com" in start_event:
        return "data drop"
    return "API request"


def overrides_of(parameters: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The run's settings that differ from the deployment's: its what-if overrides."""
    from retailopt.services.handlers import WHAT_IF_FIELDS

    return {k: parameters[k] for k in sorted(WHAT_IF_FIELDS - _NOT_OVERRIDES)
            if k in parameters and parameters[k] != base.get(k)}


def runs(wh: Any, page: int, base_settings: Mapping[str, Any]) -> Page:
    frame = query_file(wh, "wb_runs", _offset(page, PAGE_SIZE))
    rows = records(frame)
    for row in rows:
        params = stored_json(row.pop("parameters", None))
        row["overrides"] = overrides_of(params, base_settings)
        row["trigger"] = trigger_of(row.pop("start_event", None))
    total = int(rows[0]["total"]) if rows else _count_runs(wh)
    return Page(rows, total, page, PAGE_SIZE)


def _count_runs(wh: Any) -> int:
    return int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.runs`").n.iloc[0])


def run_ids(wh: Any, limit: int = 200) -> list[str]:
    frame = wh.query("SELECT run_id FROM `{dataset}.runs` WHERE status = 'COMPLETE' "
                     "ORDER BY finished_at DESC, run_id DESC LIMIT @limit", {"limit": limit})
    return [str(r) for r in frame.run_id]


# --- overview --------------------------------------------------------------------------------

def overview(wh: Any, run_id: str) -> dict[str, Any]:
    rows = records(query_file(wh, "wb_overview", {"run_id": run_id}))
    return rows[0] if rows else {}


def released(wh: Any, run_id: str) -> dict[str, Any] | None:
    frame = wh.query("SELECT decided_by, decided_at, new_quantity, reason FROM `{dataset}.plan_decisions` "
                     "WHERE run_id = @run_id AND action = 'RELEASE' ORDER BY decided_at LIMIT 1", {"run_id": run_id})
    rows = records(frame)
    return rows[0] if rows else None


def filters(wh: Any) -> dict[str, list[dict[str, Any]]]:
    """Stores and categories for the filter menus (names shown, ids sent)."""
    stores = records(wh.query("SELECT store_id, name FROM `{dataset}.stores` ORDER BY name, store_id"))
    categories = [str(c) for c in wh.query(
        "SELECT DISTINCT category FROM `{dataset}.products` ORDER BY category").category]
    return {"stores": stores, "categories": categories}


# --- exception worklist ----------------------------------------------------------------------

def _worklist_sql() -> str:
    return sqlfiles.read_sql("queries/wb_worklist.sql")


def worklist(wh: Any, run_id: str, *, store_id: str | None, category: str | None, reason: str | None,
             page: int, size: int = PAGE_SIZE) -> Page:
    sql = (f"SELECT w.*, COUNT(*) OVER () AS total FROM ({_worklist_sql()}) AS w "
           "WHERE (@reason IS NULL OR w.reason_code = @reason) "
           "ORDER BY w.value_at_risk DESC, w.store_id, w.product_id LIMIT @limit OFFSET @offset")
    params = {"run_id": run_id, "store_id": store_id, "category": category, "reason": reason, **_offset(page, size)}
    rows = records(wh.query(sql, params))
    for row in rows:
        row["reason_text"] = reason_text(row)
    total = int(rows[0]["total"]) if rows else 0
    return Page(rows, total, page, size)


def worklist_summary(wh: Any, run_id: str, *, store_id: str | None, category: str | None) -> list[dict[str, Any]]:
    sql = (f"SELECT w.reason_code, w.status_after_plan, COUNT(*) AS positions, SUM(w.value_at_risk) AS value "
           f"FROM ({_worklist_sql()}) AS w GROUP BY w.reason_code, w.status_after_plan "
           "ORDER BY positions DESC, w.reason_code")
    return records(wh.query(sql, {"run_id": run_id, "store_id": store_id, "category": category}))


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "?"
    return f"{float(value):,.{digits}f}"


def reason_text(row: Mapping[str, Any]) -> str:
    """Why the plan did not fix the position, in a planner's words, from the worklist row."""
    code = row.get("reason_code")
    if row.get("first_code"):
        return str(row.get("exception_reasons") or code)
    pack, cap, after = row.get("case_pack"), row.get("max_capacity"), row.get("position_after")
    room = None if cap is None or after is None else cap - after
    if code == "UNROUTED_LOAD":
        return (f"{_n(row.get('units_unrouted'))} units planned to arrive are on a vehicle load no route carries "
                "(vehicle capacity or shift length): they will not come unless a vehicle is added")
    if code == "SHELF_ROOM":
        return (f"the shelf holds {_n(cap)} units, below the reorder point of {_n(row.get('reorder_point'), 1)}: "
                "no order can lift it out of risk")
    if code == "CASE_PACK":
        return (f"one case of {_n(pack)} units does not fit the shelf room left ({_n(room)} of {_n(cap)} units "
                f"after {_n(after)} in stock, on order and planned)")
    if code == "STORE_ROOM":
        return (f"one case of {_n(pack)} units does not fit the store's free room "
                f"({_n(row.get('store_room_after'))} units after the plan)")
    if code == "NO_DISTRIBUTION_CENTRE":
        return "no distribution centre supplies this store: nothing can be ordered"
    if code == "SLOW_MOVER":
        return (f"sells {_n(row.get('mean_daily_demand'), 2)} units a day, below the "
                f"{_n(row.get('sender_min_daily'), 2)} a sender must sell: a slow mover's surplus is not moved")
    if code == "NO_SHORTAGE_ELSEWHERE":
        return "no other store is short of this product: there is nowhere to send the surplus"
    if code == "STOCK_ON_ORDER":
        return (f"the excess is stock on order ({_n(row.get('on_order'))} units), not on the shelf "
                f"({_n(row.get('on_hand'))}): only shelf stock can be sent")
    if code == "NO_WORTHWHILE_TRANSFER":
        return (f"the stores short of it ({_n(row.get('stores_short'))}) are farther than "
                f"{_n(row.get('max_transfer_km'))} km, or a transfer would earn less than "
                f"{_n(row.get('min_transfer_value'), 2)} after handling and transport")
    return "unexplained: none of the known reasons applies"


# --- transfers and orders --------------------------------------------------------------------

def _lines_sql(kind: str) -> str:
    return sqlfiles.read_sql(f"queries/wb_{kind}.sql")


def lines(wh: Any, kind: str, run_id: str, *, store_id: str | None = None, category: str | None = None,
          decision: str | None = None, sort: str | None = None, page: int = 1,
          size: int = PAGE_SIZE) -> tuple[Page, str]:
    sorts = TRANSFER_SORTS if kind == "transfers" else ORDER_SORTS
    key, order_by = _sort_clause(sorts, sort, "-value")
    sql = (f"SELECT l.*, COUNT(*) OVER () AS total FROM ({_lines_sql(kind)}) AS l "
           f"WHERE (@decision IS NULL OR l.decision = @decision) ORDER BY {order_by} LIMIT @limit OFFSET @offset")
    params = {"run_id": run_id, "line_id": None, "store_id": store_id, "category": category,
              "decision": decision if decision in DECISIONS else None, **_offset(page, size)}
    rows = records(wh.query(sql, params))
    total = int(rows[0]["total"]) if rows else 0
    return Page(rows, total, page, size), key


def line(wh: Any, kind: str, run_id: str, line_id: str) -> dict[str, Any] | None:
    rows = records(query_file(wh, f"wb_{kind}", {"run_id": run_id, "line_id": line_id, "store_id": None,
                                                 "category": None}))
    return rows[0] if rows else None


def decision_counts(wh: Any, kind: str, run_id: str) -> dict[str, int]:
    sql = f"SELECT l.decision, COUNT(*) AS n FROM ({_lines_sql(kind)}) AS l GROUP BY l.decision"
    frame = wh.query(sql, {"run_id": run_id, "line_id": None, "store_id": None, "category": None})
    return {str(d): int(n) for d, n in zip(frame.decision, frame.n)}


def decisions_log(wh: Any, run_id: str, limit: int = 200) -> list[dict[str, Any]]:
    return records(wh.query(
        "SELECT decision_id, line_type, line_id, action, old_quantity, new_quantity, reason, decided_by, decided_at "
        "FROM `{dataset}.plan_decisions` WHERE run_id = @run_id ORDER BY decided_at DESC, decision_id DESC "
        "LIMIT @limit", {"run_id": run_id, "limit": limit}))


# --- comparison ------------------------------------------------------------------------------

KPI_LABELS: dict[str, str] = {
    "positions_at_risk_before": "Positions at risk before the plan",
    "positions_at_risk_after": "Positions at risk after the plan",
    "stores_at_risk_before": "Stores at risk before the plan",
    "stores_at_risk_after": "Stores at risk after the plan",
    "positions_overstocked_after": "Positions overstocked after the plan",
    "expected_lost_units": "Expected lost units (if nothing is done)",
    "transfers": "Transfer lines",
    "units_moved": "Units moved between stores",
    "transfer_value": "Transfer value",
    "transfer_cost": "Transfer cost",
    "orders": "DC order lines",
    "units_ordered": "Units ordered",
    "order_value": "Order value",
    "vehicles_used": "Vehicles",
    "route_km": "Route km",
    "route_cost": "Route cost",
    "shipments_unrouted": "Unrouted loads",
}
MONEY_KPIS = {"transfer_value", "transfer_cost", "order_value", "route_cost"}


def compare_kpis(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, label in KPI_LABELS.items():
        va, vb = a.get(key), b.get(key)
        delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        out.append({"key": key, "label": label, "a": va, "b": vb, "delta": delta, "money": key in MONEY_KPIS})
    return out


def changed_lines(wh: Any, run_a: str, run_b: str, page: int, size: int = PAGE_SIZE) -> Page:
    rows = records(query_file(wh, "wb_compare", {"run_a": run_a, "run_b": run_b, **_offset(page, size)}))
    total = int(rows[0]["total"]) if rows else 0
    return Page(rows, total, page, size)
