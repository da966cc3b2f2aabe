"""The workbench's tables of a run, written once when the run is published.

A plan of 1,000 stores × 20,000 products has 20 million positions and millions of order lines:
no page can afford to derive its rows from them per request. So when a run is published (the
report's `write_artifacts`, in the publish step before the run is marked COMPLETE) its
workbench rows are written, keyed by run id like every result of a run (and removed with it if
the run fails, `pipeline.RESULT_TABLES`):

- `plan_worklist`: the exception worklist (`sql/queries/wb_worklist.sql`), ranked by value at
  risk overall and within each store, category and reason, so that a page of it (filtered by
  one of them or not) is a range of ranks rather than a sort.
- `plan_lines`: the transfer and DC order lines, one row per line, with category, case pack and
  cost as the plan used them; decisions stay in `plan_decisions`.
- `plan_overview`: one row of figures per run, written last: its presence says the other two
  are complete.

A complete run published before these tables existed gets them when a page first needs them
(`ensure`), where the caller may write the warehouse.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd

from retailopt import schema, sqlfiles
from retailopt.services.logs import log

# In the order they are written; plan_overview last.
TABLES = ("plan_worklist", "plan_lines", "plan_overview")
# Positions the worklist query works through at a time: a block of stores of about this many
# positions keeps the embedded warehouse within its memory limit on a chain of any size.
BLOCK_POSITIONS = 1_000_000
_RANK_ORDER = "value_at_risk DESC, store_id, product_id"


class NotPublished(LookupError):
    """The run's workbench tables are missing and this caller cannot write them."""


def _worklist_insert() -> str:
    """Rows of a block of stores, ranked within their store; the other ranks come after."""
    columns = [c for c in schema.table("plan_worklist").column_names
               if c not in ("run_id", "run_date", "position_rank", "store_rank", "category_rank", "reason_rank")]
    names = ", ".join(["run_id", "run_date", "position_rank", "store_rank", "category_rank", "reason_rank",
                       *columns])
    selected = ", ".join(["@run_id", "@run_date", "0", f"ROW_NUMBER() OVER (PARTITION BY store_id ORDER BY "
                                                       f"{_RANK_ORDER})", "0", "0", *columns])
    return (f"INSERT INTO `{{dataset}}.plan_worklist` ({names})\n"
            f"SELECT {selected}\nFROM ({sqlfiles.read_sql('queries/wb_worklist.sql')}) AS w")


# The run's ranks overall, by category and by reason, from its rows' few key columns.
_RANK_UPDATE = f"""
UPDATE `{{dataset}}.plan_worklist` AS w
SET position_rank = r.position_rank, category_rank = r.category_rank, reason_rank = r.reason_rank
FROM (
  SELECT store_id, product_id,
    ROW_NUMBER() OVER (ORDER BY {_RANK_ORDER}) AS position_rank,
    ROW_NUMBER() OVER (PARTITION BY category ORDER BY {_RANK_ORDER}) AS category_rank,
    ROW_NUMBER() OVER (PARTITION BY reason_code ORDER BY {_RANK_ORDER}) AS reason_rank
  FROM `{{dataset}}.plan_worklist`
  WHERE run_id = @run_id
) AS r
WHERE w.run_id = @run_id AND w.store_id = r.store_id AND w.product_id = r.product_id
"""


def _store_blocks(wh: Any, run_id: str) -> list[tuple[str, str]]:
    """(first, last) store ids of blocks of about BLOCK_POSITIONS positions of the run."""
    frame = wh.query("SELECT store_id, COUNT(*) AS n FROM `{dataset}.inventory_policy` WHERE run_id = @run_id "
                     "GROUP BY store_id ORDER BY store_id", {"run_id": run_id})
    blocks: list[tuple[str, str]] = []
    first, size = None, 0
    for store_id, n in zip(frame.store_id, frame.n):
        first = first or str(store_id)
        size += int(n)
        if size >= BLOCK_POSITIONS:
            blocks.append((first, str(store_id)))
            first, size = None, 0
    if first is not None:
        blocks.append((first, str(frame.store_id.iloc[-1])))
    return blocks


def published(wh: Any, run_id: str) -> dict[str, Any] | None:
    """The run's plan_overview row, or None if its workbench tables are not written."""
    frame = wh.query("SELECT * FROM `{dataset}.plan_overview` WHERE run_id = @run_id LIMIT 1", {"run_id": run_id})
    if frame.empty:
        return None
    return {k: (None if _missing(v) else v) for k, v in frame.iloc[0].to_dict().items()}


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def publish(wh: Any, run_id: str, run_date: date | None = None, *, replace: bool = True) -> dict[str, Any]:
    """Write the run's workbench rows (again, with `replace`; otherwise only if missing)."""
    if not replace:
        found = published(wh, run_id)
        if found is not None:
            return found
    if run_date is None:
        frame = wh.query("SELECT run_date FROM `{dataset}.runs` WHERE run_id = @run_id", {"run_id": run_id})
        if frame.empty:
            raise LookupError(f"unknown run {run_id!r}")
        run_date = pd.Timestamp(frame.run_date.iloc[0]).date()
    params = {"run_id": run_id, "run_date": run_date}
    started = time.perf_counter()
    for table in reversed(TABLES):  # the marker first: a reader never sees it over partial rows
        wh.execute(f"DELETE FROM `{{dataset}}.{table}` WHERE run_id = @run_id", params)
    for first, last in _store_blocks(wh, run_id):
        wh.execute(_worklist_insert(), {**params, "store_from": first, "store_to": last})
    wh.execute(_RANK_UPDATE, params)
    for line_type in ("TRANSFER", "ORDER"):
        wh.execute(sqlfiles.read_sql("queries/wb_publish_lines.sql"), {**params, "line_type": line_type})
    wh.execute(sqlfiles.read_sql("queries/wb_publish_overview.sql"),
               {**params, "published_at": datetime.now(timezone.utc)})
    row = published(wh, run_id) or {}
    log(logging.INFO, "workbench tables written", step="publish", run_id=run_id,
        seconds=round(time.perf_counter() - started, 2), worklist=row.get("worklist_positions"),
        transfer_lines=row.get("transfer_lines"), order_lines=row.get("order_lines"))
    return row


def ensure(wh: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The run's plan_overview row; a complete run published before the workbench tables
    existed has them written now (NotPublished where this caller may not write)."""
    found = published(wh, run["run_id"])
    if found is not None:
        return found
    try:
        return publish(wh, run["run_id"], pd.Timestamp(run["run_date"]).date(), replace=False)
    except Exception as exc:  # e.g. the cloud's api reads the dataset but does not write it
        log(logging.WARNING, "workbench tables missing and not written", step="workbench", run_id=run["run_id"],
            error=f"{type(exc).__name__}: {exc}")
        raise NotPublished(f"run {run['run_id']} has no workbench tables (it was published by an earlier "
                           "version) and they could not be written here") from exc

