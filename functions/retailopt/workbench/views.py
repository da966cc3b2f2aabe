"""What the workbench pages show, read from the warehouse one page at a time.

Every value travels as a query parameter; the only text put into SQL is a sort clause picked
from a fixed list. Pages are LIMIT/OFFSET slices of queries the warehouse sorts and counts, so a
large plan never leaves the warehouse whole.
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from retailopt import sqlfiles
from retailopt.warehouse.base import query_file
from retailopt.workbench import store

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
    # plan_exceptions codes (the planner's own record of the position)
    "SHELF_ROOM_AT_DELIVERY": "shelf room at delivery",
    "DELIVERY_FAILED": "delivery failed",
    "TRANSFER_CANCELLED": "transfer cancelled (no truck)",
    "CAPACITY_BELOW_TARGET": "shelf below target",
    "STORE_CAPACITY": "store room, order cut",
    "CAPACITY_BELOW_STOCK": "stock above the shelf",
    "NEGATIVE_STOCK": "negative stock",
    "MISSING_COST": "missing cost",
    "UNKNOWN_PRODUCT": "unknown product",
    "LEAD_TIME_MISSING": "lead time missing",
    "NO_FORECAST": "no forecast",
    "NO_INVENTORY": "no stock record",
    "BAD_CASE_PACK": "bad case pack",
}

# The keys a lines page's ?sort= may name (a leading "-" sorts descending): each its rank in
# plan_lines and the columns a filtered page sorts by (then the line id). Quantity and value are
# the planned ones (an edited line shows its new quantity and keeps its place); names as they
# were when the run was published.
LINE_KEYS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "value": ("value_rank", ("planned_value",)),
    "quantity": ("quantity_rank", ("planned_quantity",)),
    "product": ("product_rank", ("product_name", "product_id")),
    "from": ("source_rank", ("source_name", "source_id")),
    "to": ("store_rank", ("store_name", "store_id")),
    "store": ("store_rank", ("store_name", "store_id")),
    "km": ("distance_rank", ("distance_km",)),
    "arrival": ("arrival_rank", ("expected_arrival",)),
    "line": ("line_rank", ()),
    "decision": (None, ("decision",)),
}
TRANSFER_SORTS = ("value", "quantity", "product", "from", "to", "km", "decision", "line")
ORDER_SORTS = ("value", "quantity", "product", "store", "arrival", "decision", "line")
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

def overview(wh: Any, run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's figures (plan_overview), written when it was published."""
    return store.ensure(wh, dict(run))


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

# The rank a page of the worklist is a range of, by the one filter it has.
_RANK_OF = {(): "position_rank", ("store_id",): "store_rank", ("category",): "category_rank",
            ("reason_code",): "reason_rank"}
_WORKLIST_PAGE = """
WITH page AS (
  SELECT *
  FROM `{{dataset}}.plan_worklist`
  WHERE run_id = @run_id AND {window}
)
SELECT page.*, s.name AS store_name, pr.name AS product_name
FROM page
LEFT JOIN `{{dataset}}.stores` AS s ON s.store_id = page.store_id
LEFT JOIN `{{dataset}}.products` AS pr ON pr.product_id = page.product_id
ORDER BY page.position_rank
"""


def worklist(wh: Any, run_id: str, *, store_id: str | None, category: str | None, reason: str | None,
             page: int, size: int = PAGE_SIZE, total: int | None = None) -> Page:
    """One page of the run's worklist (plan_worklist), largest value at risk first.

    With at most one filter the page is a range of the rank within that filter; with several,
    the warehouse sorts the ranks of the few positions they leave, and the page's rows are then
    read by rank. `total` (the positions the filters leave) comes from the summary when the
    caller has it.
    """
    given = tuple(k for k, v in (("store_id", store_id), ("category", category), ("reason_code", reason)) if v)
    rank = _RANK_OF.get(given)
    first = (page - 1) * size
    params = {"run_id": run_id, "store_id": store_id, "category": category, "reason": reason, "limit": size,
              "offset": first, "first": first + 1, "last": first + size}
    if rank is not None:
        conditions = [f"{rank} BETWEEN @first AND @last"] + [f"{column} = @{'reason' if column == 'reason_code' else column}"
                                                             for column in given]
        sql = _WORKLIST_PAGE.format(window=" AND ".join(conditions))
    else:
        filters = " AND ".join(f"{c} = @{'reason' if c == 'reason_code' else c}" for c in given)
        ranks = wh.query(f"SELECT position_rank FROM `{{dataset}}.plan_worklist` WHERE run_id = @run_id AND {filters} "
                         "ORDER BY position_rank LIMIT @limit OFFSET @offset", params).position_rank.tolist()
        params["ranks"] = [-1] + [int(r) for r in ranks]  # never empty: an INT64 array
        sql = _WORKLIST_PAGE.format(window="position_rank IN UNNEST(@ranks)")
    rows = records(wh.query(sql, params))
    for row in rows:
        row["reason_text"] = reason_text(row)
    if total is None:
        summary = worklist_summary(wh, run_id, store_id=store_id, category=category)
        total = sum(int(s["positions"]) for s in summary if reason is None or s["reason_code"] == reason)
    return Page(rows, total, page, size)


def worklist_summary(wh: Any, run_id: str, *, store_id: str | None, category: str | None) -> list[dict[str, Any]]:
    """Positions and value at risk per reason and status after the plan."""
    filters = "".join(f" AND {c} = @{c}" for c, v in (("store_id", store_id), ("category", category)) if v)
    sql = ("SELECT reason_code, status_after_plan, COUNT(*) AS positions, SUM(value_at_risk) AS value "
           f"FROM `{{dataset}}.plan_worklist` WHERE run_id = @run_id{filters} "
           "GROUP BY reason_code, status_after_plan ORDER BY positions DESC, reason_code, status_after_plan")
    return records(wh.query(sql, {"run_id": run_id, "store_id": store_id, "category": category}))


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "?"
    return f"{float(value):,.{digits}f}"


def reason_text(row: Mapping[str, Any]) -> str:
    """Why the plan did not fix the position, in a planner's words, from the worklist row."""
    code = row.get("reason_code")
    if row.get("exception_reasons"):
        return str(row["exception_reasons"])
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

LINE_TYPES = {"transfers": "TRANSFER", "orders": "ORDER"}
RANKS = ("line_rank", "value_rank", "quantity_rank", "product_rank", "source_rank", "store_rank", "distance_rank",
         "arrival_rank")
_NAMED_LINES = """
SELECT l.*, pr.name AS product_name, COALESCE(src.name, dc.name) AS source_name, dst.name AS store_name
FROM ({inner}) AS l
LEFT JOIN `{{dataset}}.products` AS pr ON pr.product_id = l.product_id
LEFT JOIN `{{dataset}}.stores` AS src ON l.line_type = 'TRANSFER' AND src.store_id = l.source_id
LEFT JOIN `{{dataset}}.distribution_centers` AS dc ON l.line_type = 'ORDER' AND dc.dc_id = l.source_id
LEFT JOIN `{{dataset}}.stores` AS dst ON dst.store_id = l.store_id
"""
# The decided lines of a run and kind: their latest decision, ranks and filter columns.
_DECIDED = """
WITH latest AS (
  SELECT line_id, action
  FROM `{dataset}.plan_decisions`
  WHERE run_id = @run_id AND line_type = @line_type AND action IN ('APPROVE', 'REJECT', 'EDIT')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY line_id ORDER BY decided_at DESC, decision_id DESC) = 1
)
SELECT l.line_id, l.store_id, l.source_id, l.category, """ + ", ".join(f"l.{r}" for r in RANKS) + """,
  CASE d.action WHEN 'APPROVE' THEN 'APPROVED' WHEN 'REJECT' THEN 'REJECTED' ELSE 'PENDING' END AS decision
FROM latest AS d
JOIN `{dataset}.plan_lines` AS l ON l.line_id = d.line_id
WHERE l.run_id = @run_id AND l.line_type = @line_type
"""
_DECIDED_CACHE: "weakref.WeakKeyDictionary[Any, OrderedDict[tuple, pd.DataFrame]]" = weakref.WeakKeyDictionary()
_DECIDED_LOCK = threading.Lock()
# Lines of a run per store or category filter: they never change.
_COUNTS: "weakref.WeakKeyDictionary[Any, OrderedDict[tuple, int]]" = weakref.WeakKeyDictionary()


def _lines_sql(*conditions: str) -> str:
    """wb_lines.sql with conditions on its lines `l` added to its WHERE (its last clause): there
    the warehouse applies them before it joins the decisions, not after."""
    return sqlfiles.read_sql("queries/wb_lines.sql").rstrip() + "".join(f"\n  AND {c}" for c in conditions)


def _named(inner: str) -> str:
    """`inner`'s lines with the names of their product, sender (store or centre) and store."""
    return _NAMED_LINES.format(inner=inner)


def _line_row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """A line as the pages and messages name its fields (from/to stores; centre and store)."""
    if kind == "transfers":
        row.update(from_store_id=row["source_id"], to_store_id=row["store_id"],
                   from_store_name=row.get("source_name"), to_store_name=row.get("store_name"))
    else:
        row.update(dc_id=row["source_id"], dc_name=row.get("source_name"), order_value=row["value"])
    return row


def decided(wh: Any, kind: str, run_id: str) -> pd.DataFrame:
    """The run's lines of `kind` with a decision: latest decision, ranks, store and category.

    A few rows where the run has millions of lines, but found by id among all of them: kept in
    memory per warehouse until the run's decisions change (their count and latest id are read
    each time, so a decision made anywhere shows at once).
    """
    params = {"run_id": run_id, "line_type": LINE_TYPES[kind]}
    version = wh.query("SELECT COUNT(*) AS n, MAX(decision_id) AS last FROM `{dataset}.plan_decisions` "
                       "WHERE run_id = @run_id AND line_type = @line_type", params)
    key = (run_id, kind, int(version.n.iloc[0]), str(version["last"].iloc[0]))
    with _DECIDED_LOCK:
        kept = _DECIDED_CACHE.setdefault(wh, OrderedDict())
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
    frame = wh.query(_DECIDED, params) if key[2] else pd.DataFrame(
        columns=["line_id", "store_id", "source_id", "category", *RANKS, "decision"])
    for rank in RANKS:
        frame[rank] = frame[rank].astype("int64")
    frame = frame.sort_values("line_rank").reset_index(drop=True)
    with _DECIDED_LOCK:
        kept[key] = frame
        while len(kept) > 16:
            kept.popitem(last=False)
    return frame


def _fetch(wh: Any, kind: str, run_id: str, ranks: list[int]) -> list[dict[str, Any]]:
    """The lines of these line ranks, in this order, with decisions and names."""
    if not ranks:
        return []
    params = {"run_id": run_id, "line_type": LINE_TYPES[kind], "ranks": [int(r) for r in ranks]}
    found = {int(r["line_rank"]): r
             for r in records(wh.query(_named(_lines_sql("l.line_rank IN UNNEST(@ranks)")), params))}
    return [_line_row(kind, found[int(r)]) for r in ranks if int(r) in found]


def _store_condition(kind: str) -> str:
    if kind == "transfers":  # a store's transfers: those it sends and those it receives
        return "(l.store_id = @store_id OR l.source_id = @store_id)"
    return "l.store_id = @store_id"


def lines(wh: Any, kind: str, run_id: str, *, store_id: str | None = None, category: str | None = None,
          decision: str | None = None, sort: str | None = None, page: int = 1, size: int = PAGE_SIZE,
          total: int | None = None) -> tuple[Page, str]:
    """One page of a run's transfer or order lines and its total, sorted as `sort` says.

    A page is found by the sort key's rank (plan_lines): unfiltered, it is a range of ranks,
    skipping the lines whose decision takes them out (few); filtered by store or category, the
    warehouse sorts the filter's ranks only. The page's rows are then read by their line rank.
    `total`: the run's lines of the kind, if the caller knows it.
    """
    keys = TRANSFER_SORTS if kind == "transfers" else ORDER_SORTS
    sort = sort if sort and sort.lstrip("-") in keys else "-value"
    key, descending = sort.lstrip("-"), sort.startswith("-")
    decision = decision if decision in DECISIONS else None
    first = (page - 1) * size
    done = decided(wh, kind, run_id)
    if store_id or category:
        ranks, count = _filtered(wh, kind, run_id, done, store_id, category, decision, key, descending, first, size)
        return Page(_fetch(wh, kind, run_id, ranks), count, page, size), sort
    if total is None:
        total = int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.plan_lines` WHERE run_id = @run_id "
                             "AND line_type = @line_type", {"run_id": run_id, "line_type": LINE_TYPES[kind]}).n.iloc[0])
    counts = _decision_counts(done, total)
    count = total if decision is None else counts.get(decision, 0)
    if key == "decision":
        # The lines of each decision in turn, each by line id: few approved or rejected, the rest.
        order = ["APPROVED", "PENDING", "REJECTED"][::-1 if descending else 1]
        ranks, start = [], 0
        for segment in [decision] if decision else order:
            n = counts.get(segment, 0)
            lo, hi = max(first, start), min(first + size, start + n)
            if lo < hi:
                ranks += _window(wh, kind, run_id, done, total, segment, "line", False, lo - start, hi - lo)
            start += n
    else:
        ranks = _window(wh, kind, run_id, done, total, decision, key, descending, first, size)
    return Page(_fetch(wh, kind, run_id, ranks), count, page, size), sort


def _window(wh: Any, kind: str, run_id: str, done: pd.DataFrame, total: int, decision: str | None, key: str,
            descending: bool, offset: int, limit: int) -> list[int]:
    """Line ranks of `limit` lines from `offset` of the run's lines of one decision (None: all),
    by `key`: the approved or rejected ones from the decided lines; the others are a range of
    the key's rank, less the decided lines whose decision is another."""
    rank = LINE_KEYS[key][0]
    if decision in ("APPROVED", "REJECTED"):
        chosen = done[done.decision == decision].sort_values(rank, ascending=not descending)
        return chosen.line_rank.iloc[offset:offset + limit].tolist()
    out = done[done.decision != "PENDING"] if decision == "PENDING" else done.iloc[:0]
    skipped = sorted(total + 1 - int(r) if descending else int(r) for r in out[rank])
    first, last = _place(offset + 1, skipped), min(_place(offset + limit, skipped), total)
    if first > last:
        return []
    low, high = (total + 1 - last, total + 1 - first) if descending else (first, last)
    frame = wh.query(f"SELECT line_rank, {rank} AS place FROM `{{dataset}}.plan_lines` WHERE run_id = @run_id "
                     f"AND line_type = @line_type AND {rank} BETWEEN @low AND @high",
                     {"run_id": run_id, "line_type": LINE_TYPES[kind], "low": low, "high": high})
    excluded = set(out.line_rank.tolist())
    frame = frame[~frame.line_rank.isin(excluded)].sort_values("place", ascending=not descending)
    return frame.line_rank.tolist()


def _filtered(wh: Any, kind: str, run_id: str, done: pd.DataFrame, store_id: str | None, category: str | None,
              decision: str | None, key: str, descending: bool, offset: int,
              limit: int) -> tuple[list[int], int]:
    """Line ranks of a page of the lines of a store or category, and how many there are."""
    where = ["run_id = @run_id", "line_type = @line_type"]
    if store_id:
        where.append(_store_condition(kind).replace("l.", ""))
    if category:
        where.append("category = @category")
    approved = [-1] + done.line_rank[done.decision == "APPROVED"].tolist()  # never empty: typed INT64
    rejected = [-1] + done.line_rank[done.decision == "REJECTED"].tolist()
    params = {"run_id": run_id, "line_type": LINE_TYPES[kind], "store_id": store_id, "category": category,
              "approved": approved, "rejected": rejected, "limit": limit, "offset": offset}
    # How many: the filter's lines (they never change), less or only those decided otherwise.
    key_count = (run_id, kind, store_id, category)
    with _DECIDED_LOCK:
        count = _COUNTS.setdefault(wh, OrderedDict()).get(key_count)
    if count is None:
        count = int(wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.plan_lines` WHERE {' AND '.join(where)}",
                             params).n.iloc[0])
        with _DECIDED_LOCK:
            counts = _COUNTS.setdefault(wh, OrderedDict())
            counts[key_count] = count
            while len(counts) > 4096:
                counts.popitem(last=False)
    mine = done
    if store_id:
        mine = mine[(mine.store_id == store_id) | ((kind == "transfers") & (mine.source_id == store_id))]
    if category:
        mine = mine[mine.category == category]
    if decision == "PENDING":
        where.append("line_rank NOT IN UNNEST(@approved) AND line_rank NOT IN UNNEST(@rejected)")
        count -= int((mine.decision != "PENDING").sum())
    elif decision:
        where.append(f"line_rank IN UNNEST(@{decision.lower()})")
        count = int((mine.decision == decision).sum())
    direction = "DESC" if descending else "ASC"
    if key == "decision":
        order = (f"CASE WHEN line_rank IN UNNEST(@approved) THEN 'APPROVED' WHEN line_rank IN UNNEST(@rejected) "
                 f"THEN 'REJECTED' ELSE 'PENDING' END {direction}, line_rank")
    else:
        order = f"{LINE_KEYS[key][0]} {direction}"
    ranks = wh.query(f"SELECT line_rank FROM `{{dataset}}.plan_lines` WHERE {' AND '.join(where)} ORDER BY {order} "
                     "LIMIT @limit OFFSET @offset", params).line_rank.tolist()
    return ranks, count


def _place(position: int, skipped: list[int]) -> int:
    """The place (1-based, in sort order) of the `position`-th line not among `skipped`."""
    place = position
    for s in skipped:
        if s <= place:
            place += 1
        else:
            break
    return place


def all_lines(wh: Any, kind: str, run_id: str, *, decision: str | None = None,
              store_id: str | None = None) -> list[dict[str, Any]]:
    """Every line of a run of one decision (or all), unpaged: for the release and validations."""
    params = {"run_id": run_id, "line_type": LINE_TYPES[kind], "store_id": store_id, "decision": decision}
    inner = _lines_sql(*([_store_condition(kind)] if store_id else []))
    if decision:
        inner = f"SELECT l.* FROM ({inner}) AS l WHERE l.decision = @decision"
    return [_line_row(kind, r) for r in records(wh.query(_named(inner) + " ORDER BY line_id", params))]


def line(wh: Any, kind: str, run_id: str, line_id: str) -> dict[str, Any] | None:
    return lines_by_id(wh, kind, run_id, [line_id]).get(line_id)


def lines_by_id(wh: Any, kind: str, run_id: str, line_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The named lines of `line_ids` (those the run has), in one query: a batch of decisions costs
    one warehouse job, not one per line (in BigQuery each is a billed job of at least 10 MB)."""
    if not line_ids:
        return {}
    params = {"run_id": run_id, "line_type": LINE_TYPES[kind], "line_ids": sorted(set(line_ids))}
    rows = records(wh.query(_named(_lines_sql("l.line_id IN UNNEST(@line_ids)")), params))
    return {str(r["line_id"]): _line_row(kind, r) for r in rows}


def _decision_counts(done: pd.DataFrame, total: int) -> dict[str, int]:
    decided_counts = done.decision.value_counts().to_dict()
    counts = {"PENDING": total - int(decided_counts.get("APPROVED", 0)) - int(decided_counts.get("REJECTED", 0)),
              "APPROVED": int(decided_counts.get("APPROVED", 0)), "REJECTED": int(decided_counts.get("REJECTED", 0))}
    return counts


def decision_counts(wh: Any, kind: str, run_id: str, total: int | None = None) -> dict[str, int]:
    """Lines per decision: the decided ones from plan_decisions, the rest pending."""
    if total is None:
        total = int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.plan_lines` WHERE run_id = @run_id "
                             "AND line_type = @line_type", {"run_id": run_id, "line_type": LINE_TYPES[kind]}).n.iloc[0])
    return {k: v for k, v in _decision_counts(decided(wh, kind, run_id), total).items() if v}


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
    "route_co2_kg": "Route CO2e (kg)",
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


# Lines a comparison reads per block of stores (of both runs), and how long a page may work on one.
COMPARE_BLOCK_LINES = 250_000
COMPARE_BUDGET_S = 0.6
_COMPARE_COLUMNS = ("kind", "product_id", "source_id", "store_id")


class Comparison:
    """The lines that changed between two complete runs, worked out a block of stores at a time.

    A chain's plans have millions of lines: matching all of them takes seconds, so each page
    request works through blocks for at most `COMPARE_BUDGET_S` and shows how far it got; once
    every block is done the changed lines are kept, sorted (largest change first), for paging.
    Both runs are complete, so the result never changes.
    """

    def __init__(self, run_a: str, run_b: str) -> None:
        self.run_a, self.run_b = run_a, run_b
        self.blocks: list[tuple[str, str]] | None = None
        self.parts: list[pd.DataFrame] = []
        self.result: pd.DataFrame | None = None
        self.lock = threading.Lock()
        self._block_s: float | None = None  # how long a block has taken

    @property
    def progress(self) -> tuple[int, int]:
        return len(self.parts), len(self.blocks or ())

    def advance(self, wh: Any, budget_s: float = COMPARE_BUDGET_S) -> bool:
        """Work through blocks while the next one is expected to end within `budget_s`; True
        once complete. A request that finds another one working returns at once."""
        if self.result is not None:
            return True
        if not self.lock.acquire(blocking=False):
            return False
        try:
            started = time.perf_counter()
            if self.blocks is None:
                self.blocks = _compare_blocks(wh, self.run_a, self.run_b)
            while len(self.parts) < len(self.blocks):
                elapsed = time.perf_counter() - started
                if elapsed + (self._block_s or budget_s / 2) > budget_s and elapsed > 0.05:
                    break
                first, last = self.blocks[len(self.parts)]
                began = time.perf_counter()
                frame = query_file(wh, "wb_compare", {"run_a": self.run_a, "run_b": self.run_b,
                                                      "store_from": first, "store_to": last})
                self.parts.append(frame.astype({c: "category" for c in _COMPARE_COLUMNS}))
                took = time.perf_counter() - began
                self._block_s = max(took, 0.8 * (self._block_s or took))  # a slow block is remembered
            if len(self.parts) == len(self.blocks):
                self.result = _sorted_changes(self.parts)
                self.parts = []
            return self.result is not None
        finally:
            self.lock.release()

    def page(self, wh: Any, page: int, size: int = PAGE_SIZE) -> Page:
        assert self.result is not None
        rows = records(self.result.iloc[(page - 1) * size:page * size].astype(
            {c: "object" for c in _COMPARE_COLUMNS}))
        names = _names(wh, rows)
        for row in rows:
            row["delta"] = row["quantity_b"] - row["quantity_a"]
            row["product_name"] = names["product"].get(row["product_id"])
            row["source_name"] = names["store" if row["kind"] == "TRANSFER" else "dc"].get(row["source_id"])
            row["store_name"] = names["store"].get(row["store_id"])
        return Page(rows, len(self.result), page, size)


def _compare_blocks(wh: Any, run_a: str, run_b: str) -> list[tuple[str, str]]:
    frame = wh.query("SELECT store_id, COUNT(*) AS n FROM `{dataset}.plan_lines` WHERE run_id IN (@run_a, @run_b) "
                     "GROUP BY store_id ORDER BY store_id", {"run_a": run_a, "run_b": run_b})
    blocks: list[tuple[str, str]] = []
    first, size = None, 0
    for store_id, n in zip(frame.store_id, frame.n):
        first = first or str(store_id)
        size += int(n)
        if size >= COMPARE_BLOCK_LINES:
            blocks.append((first, str(store_id)))
            first, size = None, 0
    if first is not None:
        blocks.append((first, str(frame.store_id.iloc[-1])))
    return blocks


def _sorted_changes(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=[*_COMPARE_COLUMNS, "quantity_a", "quantity_b"])
    # Categories with sorted values: codes compare as the ids do, and millions of ids cost little.
    frame = pd.DataFrame({c: union_categoricals([p[c] for p in parts], sort_categories=True)
                          for c in _COMPARE_COLUMNS})
    for column in ("quantity_a", "quantity_b"):
        frame[column] = np.concatenate([p[column].to_numpy(dtype="int64") for p in parts])
    frame["change"] = (frame.quantity_b - frame.quantity_a).abs()
    frame = frame.sort_values(["change", *_COMPARE_COLUMNS], ascending=[False, True, True, True, True],
                              kind="stable")
    return frame.drop(columns="change").reset_index(drop=True)


def _names(wh: Any, rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    products = sorted({r["product_id"] for r in rows}) or [""]
    places = sorted({r["store_id"] for r in rows} | {r["source_id"] for r in rows}) or [""]
    out = {"product": {}, "store": {}, "dc": {}}
    for kind, sql, ids in (
            ("product", "SELECT product_id AS id, name FROM `{dataset}.products` WHERE product_id IN UNNEST(@ids)", products),
            ("store", "SELECT store_id AS id, name FROM `{dataset}.stores` WHERE store_id IN UNNEST(@ids)", places),
            ("dc", "SELECT dc_id AS id, name FROM `{dataset}.distribution_centers` WHERE dc_id IN UNNEST(@ids)",
             places)):
        frame = wh.query(sql, {"ids": ids})
        out[kind] = dict(zip(frame.id, frame.name))
    return out


def changed_lines(wh: Any, run_a: str, run_b: str, page: int, size: int = PAGE_SIZE) -> Page:
    """The whole comparison at once (tests, small plans): the lines that changed, one page."""
    comparison = Comparison(run_a, run_b)
    while not comparison.advance(wh, budget_s=float("inf")):
        pass
    return comparison.page(wh, page, size)


# --- position drill-down ---------------------------------------------------------------------

HISTORY_DAYS = 91  # the sales a drill-down shows: 13 weeks before the run date


def project(start: float, days: list[Any], demand: list[float], arrivals: Mapping[Any, float]) -> list[float]:
    """Stock at the start of each day (after that day's arrivals), expected demand taken out each
    day, never below zero (what cannot be sold is lost, not owed)."""
    level, out = float(start), []
    for day, sold in zip(days, demand):
        level += float(arrivals.get(day, 0.0))
        out.append(level)
        level = max(level - float(sold), 0.0)
    return out


def position(wh: Any, run: Mapping[str, Any], store_id: str, product_id: str) -> dict[str, Any] | None:
    """One store × product of a complete run: its policy and worklist reason, 13 weeks of sales,
    the forecast with its interval, the transfer and order lines that touch it, and its stock
    projected over the forecast with and without the plan (as decided: rejected lines left out,
    edited quantities in force)."""
    run_id = run["run_id"]
    rows = records(query_file(wh, "wb_position", {"run_id": run_id, "store_id": store_id, "product_id": product_id}))
    if not rows:
        return None
    figures = rows[0]
    if figures.get("reason_code"):
        figures["reason_text"] = reason_text(figures)
    run_date = pd.Timestamp(run["run_date"]).date()
    series = wh.query(sqlfiles.read_sql("queries/wb_position_series.sql"), {
        "run_id": run_id, "store_id": store_id, "product_id": product_id,
        "since": run_date - pd.Timedelta(days=HISTORY_DAYS).to_pytimedelta(), "until": run_date})
    series["day"] = pd.to_datetime(series["day"]).dt.date
    sales = series[series.kind == "SALE"]
    sold = dict(zip(sales.day, sales.units.astype(float)))
    history = [(day, sold.get(day, 0.0)) for day in
               (run_date - pd.Timedelta(days=n).to_pytimedelta() for n in range(HISTORY_DAYS, 0, -1))]
    forecast = series[series.kind == "FORECAST"].sort_values("day")
    days = list(forecast.day)
    touching = ["l.product_id = @product_id", "(l.store_id = @store_id OR l.source_id = @store_id)"]
    lines = {}
    for kind in ("transfers", "orders"):
        params = {"run_id": run_id, "line_type": LINE_TYPES[kind], "store_id": store_id, "product_id": product_id}
        lines[kind] = [_line_row(kind, r) for r in records(wh.query(
            _named(_lines_sql(*touching)) + " ORDER BY line_id", params))]
    parameters = run.get("parameters") or {}
    transfer_days = int(parameters.get("transfer_lead_days") or 1) if isinstance(parameters, dict) else 1
    arrivals: dict[Any, float] = {}
    leaving = 0.0
    for t in lines["transfers"]:
        if t["decision"] == "REJECTED":
            continue
        if t["to_store_id"] == store_id:
            day = run_date + pd.Timedelta(days=transfer_days).to_pytimedelta()
            arrivals[day] = arrivals.get(day, 0.0) + float(t["quantity"])
        else:
            leaving += float(t["quantity"])
    for o in lines["orders"]:
        if o["decision"] != "REJECTED" and o.get("expected_arrival") is not None:
            day = pd.Timestamp(o["expected_arrival"]).date()
            arrivals[day] = arrivals.get(day, 0.0) + float(o["quantity"])
    start = float(figures["on_hand"] or 0) + float(figures["on_order"] or 0)
    demand = [float(v) for v in forecast.units]
    return {"figures": figures, "history": history,
            "forecast": [(d, float(m), float(lo), float(hi)) for d, m, lo, hi in
                         zip(forecast.day, forecast.units, forecast.lower_bound, forecast.upper_bound)],
            "promotion_days": int(sales.on_promotion.fillna(False).astype(bool).sum()),
            "lines": lines, "days": days, "without_plan": project(start, days, demand, {}),
            "with_plan": project(start - leaving, days, demand, arrivals),
            "arrivals": sorted(arrivals.items()), "leaving": leaving, "transfer_lead_days": transfer_days}


# --- routes ----------------------------------------------------------------------------------

ROUTES_PAGE = 20  # routes a page maps and draws: a chain's hundreds of routes page by depot time
ROUTE_COLOURS = ("#0b5cad", "#a3261b", "#1c6b35", "#8a5a00", "#6b3fa0", "#00798c", "#c2185b", "#4e5d23",
                 "#b35900", "#37474f")  # also workbench.css .sw.c0 ... .sw.c9


def _routes_sql(name: str, table: str, released: bool) -> str:
    """A routes query on the planned table or its released twin (same columns): one of two fixed
    names, never a value from a request."""
    sql = sqlfiles.read_sql(f"queries/{name}.sql")
    if not released:
        return sql
    twin = sqlfiles.check_table_name(f"released_{table}")
    return sql.replace(f"`{{dataset}}.{table}`", f"`{{dataset}}.{twin}`")


def routes(wh: Any, run_id: str, page: int, size: int = ROUTES_PAGE, *, released: bool = False) -> Page:
    """One page of the run's routes (in order of departure; `released`: the released plan's), each
    with its stops in order: place names, receiving windows, arrival times and loads."""
    rows = records(wh.query(_routes_sql("wb_routes", "routes", released), {"run_id": run_id, **_offset(page, size)}))
    total = int(rows[0]["total"]) if rows else 0
    if rows:
        ids = [r["route_id"] for r in rows]
        stops = records(wh.query(_routes_sql("wb_route_stops", "route_stops", released),
                                 {"run_id": run_id, "route_ids": ids}))
        by_route: dict[str, list[dict[str, Any]]] = {}
        for stop in stops:
            by_route.setdefault(stop["route_id"], []).append(stop)
        for i, row in enumerate(rows):
            row["stops"] = by_route.get(row["route_id"], [])
            row["colour_index"] = ((page - 1) * size + i) % len(ROUTE_COLOURS)
            row["colour"] = ROUTE_COLOURS[row["colour_index"]]
    return Page(rows, total, page, size)
