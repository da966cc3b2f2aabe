"""The released lines and what became of them, as the next plans see them.

A release (the workbench, `POST /runs/{id}/release`, or `retailopt run --release`) appends each
released line with its quantity in force to `committed_lines`. From there:

- the routes of a line's delivery day carry it (`carried_lines`: released by an earlier run, due by
  the run date, never dispatched);
- a plan starts from the latest snapshot plus the released lines not yet in it
  (`sql/queries/stock_position.sql`): open lines on order at the receiver and reserved at the
  sender, delivered units on the receiver's shelf, failed ones back at the sender;
- a delivery closed short is a `DELIVERY_FAILED` exception of the next plan.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

import pandas as pd

from retailopt.warehouse.base import query_file

LINE_TYPES = ("TRANSFER", "ORDER")
DELIVERY_FAILED = "DELIVERY_FAILED"


def committed_rows(run_id: str, run_date: date, orders: Iterable[dict[str, Any]],
                   transfers: Iterable[dict[str, Any]], *, released_by: str,
                   released_at: datetime) -> pd.DataFrame:
    """`committed_lines` rows for the released lines (workbench line dicts: `line_id`, `quantity`
    in force, `expected_arrival`, and `dc_id`/`store_id` or `from_store_id`/`to_store_id`)."""
    if released_at.tzinfo is None:
        raise ValueError("released_at must be timezone-aware")
    rows = []
    for kind, lines, origin, destination in (("ORDER", orders, "dc_id", "store_id"),
                                             ("TRANSFER", transfers, "from_store_id", "to_store_id")):
        for line in lines:
            quantity = int(line["quantity"])
            if quantity <= 0:
                continue
            arrival = line.get("expected_arrival")
            if arrival is None or pd.isna(arrival):
                raise ValueError(f"{kind.lower()} line {line['line_id']}: expected_arrival is empty")
            rows.append({"run_id": run_id, "run_date": run_date, "line_type": kind, "line_id": str(line["line_id"]),
                         "product_id": str(line["product_id"]), "origin_id": str(line[origin]),
                         "destination_id": str(line[destination]), "quantity": quantity,
                         "value": float(line.get("value") or 0.0),
                         "expected_arrival": pd.Timestamp(arrival).date(), "released_at": released_at,
                         "released_by": released_by})
    return pd.DataFrame(rows, columns=["run_id", "run_date", "line_type", "line_id", "product_id", "origin_id",
                                       "destination_id", "quantity", "value", "expected_arrival", "released_at",
                                       "released_by"])


def commit(wh: Any, rows: pd.DataFrame) -> int:
    """Append released lines; a run's lines are committed once (a second call adds nothing)."""
    if rows.empty:
        return 0
    run_ids = sorted(set(rows.run_id))
    if len(run_ids) != 1:
        raise ValueError(f"committed lines of one run at a time, got {run_ids}")
    with wh.transaction():
        done = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.committed_lines` WHERE run_id = @run_id",
                        {"run_id": run_ids[0]})
        if int(done.n.iloc[0]):
            return 0
        return wh.insert("committed_lines", rows)


def carried_lines(wh: Any, run_date: date) -> pd.DataFrame:
    """Released lines of earlier runs that the routes of `run_date` carry (`carried_lines.sql`)."""
    frame = query_file(wh, "carried_lines", {"run_date": run_date})
    frame["expected_arrival"] = pd.to_datetime(frame["expected_arrival"])
    return frame


def stock_position(wh: Any, run_date: date) -> pd.DataFrame:
    """The latest snapshot of each position with retailopt's released lines since then applied
    (`stock_position.sql`): `latest_inventory` columns plus `on_hand_change`, `on_order_change`."""
    return query_file(wh, "stock_position", {"run_date": run_date})


def failed_delivery_exceptions(wh: Any, run_date: date) -> pd.DataFrame:
    """One DELIVERY_FAILED exception (plan_exceptions columns without run_id) per line whose
    delivery closed short since the last plan."""
    from retailopt.policy import ACTIONS, EXCEPTION_COLUMNS

    failed = query_file(wh, "failed_deliveries", {"run_date": run_date})
    rows = []
    for r in failed.itertuples():
        back = int(r.quantity) - int(r.units_delivered)
        source = "the distribution centre" if r.line_type == "ORDER" else f"store {r.origin_id}"
        note = f" ({r.note})" if isinstance(r.note, str) and r.note else ""
        rows.append((pd.Timestamp(run_date), str(r.store_id), str(r.product_id), DELIVERY_FAILED,
                     f"{r.line_type.lower()} {r.line_id}: {int(r.units_delivered)} of {int(r.quantity)} units "
                     f"delivered on {pd.Timestamp(r.route_day):%Y-%m-%d} (task {r.task_id}, {r.outcome}){note}; "
                     f"{back} went back to {source}", ACTIONS[DELIVERY_FAILED]))
    return pd.DataFrame(rows, columns=EXCEPTION_COLUMNS)


def commit_as_planned(wh: Any, run: dict[str, Any], *, released_by: str, released_at: datetime) -> int:
    """Commit every line of a complete run with its planned quantity (a release without review:
    `retailopt run --release`); returns the lines committed (0 when the run was committed before)."""
    if run.get("status") != "COMPLETE":
        raise ValueError(f"run {run['run_id']} is {run.get('status')}: only a complete plan can be released")
    lines = query_file(wh, "planned_lines", {"run_id": run["run_id"]})
    if released_at.tzinfo is None:
        raise ValueError("released_at must be timezone-aware")
    rows = lines.assign(run_id=run["run_id"], run_date=pd.Timestamp(run["run_date"]).date(),
                        released_at=released_at, released_by=released_by)
    rows = rows[rows.quantity > 0]
    committed = commit(wh, rows[["run_id", "run_date", "line_type", "line_id", "product_id", "origin_id",
                                 "destination_id", "quantity", "value", "expected_arrival", "released_at",
                                 "released_by"]])
    if committed:  # what the trucks carry: the planned loads and routes (dispatch reads these)
        from retailopt.workbench.reroute import release_as_planned

        release_as_planned(wh, run["run_id"], pd.Timestamp(run["run_date"]).date())
    return committed
