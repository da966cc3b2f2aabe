"""The released lines and what became of them, as the next plans see them.

A release (the workbench, `POST /runs/{id}/release`, or `retailopt run --release`) appends each
released line with its quantity in force to `committed_lines`. From there:

- the routes of a line's delivery day carry it (`carried_lines`: released by an earlier run, due by
  the run date, never dispatched);
- a plan starts from the latest snapshot plus the released lines not yet in it
  (`sql/queries/stock_position.sql`): open lines on order at the receiver and reserved at the
  sender, delivered units on the receiver's shelf, failed ones back at the sender;
- a delivery closed short is a `DELIVERY_FAILED` exception of the next plan;
- a transfer no truck took by `transfer_max_wait_days` after its delivery day is cancelled: its
  sender keeps the units, its receiver no longer counts them on order (so the plan orders for it
  from the distribution centre), and the next plan lists it as a `TRANSFER_CANCELLED` exception.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Iterable

import pandas as pd

from retailopt.warehouse.base import query_file

LINE_TYPES = ("TRANSFER", "ORDER")
DELIVERY_FAILED = "DELIVERY_FAILED"
TRANSFER_CANCELLED = "TRANSFER_CANCELLED"


def cancel_before(run_date: date, max_wait_days: int) -> date:
    """A released transfer due before this day and not dispatched in full is cancelled by the
    plans of `run_date`: it has waited `max_wait_days` days past its delivery day for a truck."""
    if max_wait_days < 0:
        raise ValueError(f"max_wait_days must be >= 0, got {max_wait_days}")
    return run_date - timedelta(days=int(max_wait_days))


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


def carried_lines(wh: Any, run_date: date, *, max_wait_days: int,
                  released_before: date | None = None) -> pd.DataFrame:
    """Released lines of earlier runs that the routes of `run_date` carry (`carried_lines.sql`);
    transfers that waited more than `max_wait_days` past their day are cancelled, not carried.
    Only runs dated before `released_before` (default `run_date`) count: a plan looking ahead to
    a later day passes its own date, so its date's released plan is never counted twice."""
    frame = query_file(wh, "carried_lines", {"run_date": run_date,
                                             "cancel_before": cancel_before(run_date, max_wait_days),
                                             "released_before": released_before or run_date})
    frame["expected_arrival"] = pd.to_datetime(frame["expected_arrival"])
    return frame


def stock_position(wh: Any, run_date: date, *, max_wait_days: int) -> pd.DataFrame:
    """The latest snapshot of each position with retailopt's released lines since then applied
    (`stock_position.sql`): `latest_inventory` columns plus `on_hand_change`, `on_order_change`.
    Transfers cancelled for want of a truck (`max_wait_days`) leave their units at the sender."""
    return query_file(wh, "stock_position", {"run_date": run_date,
                                              "cancel_before": cancel_before(run_date, max_wait_days)})


def cancelled_transfer_exceptions(wh: Any, run_date: date, *, max_wait_days: int) -> pd.DataFrame:
    """One TRANSFER_CANCELLED exception (plan_exceptions columns without run_id) at the receiving
    position of each released transfer cancelled since the last plan: no truck took it within
    `max_wait_days` days of its delivery day."""
    from retailopt.policy import ACTIONS, EXCEPTION_COLUMNS

    lines = query_file(wh, "cancelled_transfers", {"run_date": run_date,
                                                   "cancel_before": cancel_before(run_date, max_wait_days)})
    rows = []
    for r in lines.itertuples():
        cancelled_on = pd.Timestamp(r.expected_arrival).date() + timedelta(days=int(max_wait_days) + 1)
        previous = None if pd.isna(r.previous_plan) else pd.Timestamp(r.previous_plan).date()
        if previous is not None and cancelled_on <= previous:
            continue  # an earlier plan cancelled and reported it
        rows.append((pd.Timestamp(run_date), str(r.store_id), str(r.product_id), TRANSFER_CANCELLED,
                     f"transfer {r.line_id} (run {r.source_run_id}) from store {r.origin_id}: "
                     f"{int(r.cancelled_units)} of {int(r.quantity)} units found no truck by "
                     f"{pd.Timestamp(r.expected_arrival):%Y-%m-%d} + {int(max_wait_days)} day(s) and are cancelled; "
                     f"they stay at store {r.origin_id}", ACTIONS[TRANSFER_CANCELLED]))
    return pd.DataFrame(rows, columns=EXCEPTION_COLUMNS)


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
