"""Planner decisions on a complete plan, and its release.

Every decision is a new row of `plan_decisions` (insert only): a line's state is its latest row,
and nothing is ever overwritten. Quantities are validated before anything is written: never
negative, a transfer never above what its sender has beyond its order-up-to level (less what the
run's other lines take from it), a distribution-centre order in whole cases.

The release publishes each approved line once, as the `reorder` and `transfer` messages of the
`reorders` topic (the in-process bus locally, Pub/Sub in the cloud): the dedupe ledger's claim on
`release:<run id>` lets one release through, however many are sent at once, and the RELEASE row
then closes the run to further decisions. Before that it writes the released plan's loads and
routes (`reroute`): solved again for the approved lines when decisions changed what the trucks
carry, the planned ones otherwise; they count only once the RELEASE row exists.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from retailopt import pipeline
from retailopt.config import Settings, load_settings
from retailopt.dispatch import ledger
from retailopt.errors import StatusError
from retailopt.services import messages
from retailopt.services.dedupe import KeyKind
from retailopt.services.handlers import WHAT_IF_FIELDS
from retailopt.services.logs import log
from retailopt.warehouse.base import query_file
from retailopt.workbench import reroute, store, views

LINE_KINDS = {"TRANSFER": "transfers", "ORDER": "orders"}
ACTIONS = ("APPROVE", "REJECT", "EDIT")
MAX_REASON = 500
MAX_BATCH = 1000


class DecisionError(StatusError):
    """A decision that cannot be made: `status` 400 (invalid), 403, 404 or 409 (state)."""


@dataclass(frozen=True)
class Request:
    line_type: str
    line_id: str
    action: str
    quantity: Any = None
    reason: str | None = None


def _decision_id() -> str:
    # Time-ordered, so two decisions on a line within one clock tick still sort in order.
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


def check_open(wh: Any, run: dict[str, Any]) -> None:
    if run.get("status") != "COMPLETE":
        raise DecisionError(409, f"run {run['run_id']} is {run.get('status')}: only a complete plan can be decided on")
    if views.released(wh, run["run_id"]) is not None:
        raise DecisionError(409, f"run {run['run_id']} is released: its lines can no longer change")
    try:
        store.ensure(wh, run)  # the lines are read from the run's workbench tables
    except store.NotPublished as exc:
        raise DecisionError(409, str(exc)) from exc


def _quantity(raw: Any) -> int:
    if isinstance(raw, bool):
        raise DecisionError(400, "quantity must be a whole number")
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw.lstrip("-").isdigit() or len(raw) > 12:
            raise DecisionError(400, f"quantity {raw[:20]!r} is not a whole number")
        raw = int(raw)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int):
        raise DecisionError(400, "quantity must be a whole number")
    if raw < 0:
        raise DecisionError(400, f"quantity {raw} is negative")
    return raw


def _sender_surplus(wh: Any, run_id: str, line: dict[str, Any]) -> int:
    above = query_file(wh, "wb_sender_surplus", {"run_id": run_id, "store_id": line["from_store_id"],
                                                 "product_id": line["product_id"]}).above_order_up_to.iloc[0]
    above = 0 if above is None or pd.isna(above) else int(above)
    others = views.all_lines(wh, "transfers", run_id, store_id=line["from_store_id"])
    taken = sum(int(o["quantity"] or 0) for o in others
                if o["from_store_id"] == line["from_store_id"] and o["product_id"] == line["product_id"]
                and o["line_id"] != line["line_id"] and o["decision"] != "REJECTED")
    return max(above - taken, 0)


def _validate_edit(wh: Any, run_id: str, line_type: str, line: dict[str, Any], quantity: int) -> None:
    if line_type == "TRANSFER":
        surplus = _sender_surplus(wh, run_id, line)
        if quantity > surplus:
            raise DecisionError(400, f"transfer {line['line_id']}: {quantity} units is more than the sender "
                                     f"{line.get('from_store_name') or line['from_store_id']} can spare ({surplus} "
                                     "units above its order-up-to level, less its other transfers of the product)")
    else:
        pack = int(line.get("case_pack") or 1)
        if quantity % pack:
            raise DecisionError(400, f"order {line['line_id']}: {quantity} units is not a whole number of cases "
                                     f"of {pack} units")


def decide(wh: Any, run: dict[str, Any], identity: str, requests: list[Request]) -> list[dict[str, Any]]:
    """Validate every request, then append one row each; nothing is written if one is invalid."""
    if not requests:
        raise DecisionError(400, "no decision given")
    if len(requests) > MAX_BATCH:
        raise DecisionError(400, f"at most {MAX_BATCH} decisions at once")
    check_open(wh, run)
    run_id = run["run_id"]
    for req in requests:
        if req.line_type not in LINE_KINDS:
            raise DecisionError(400, f"line_type {req.line_type!r}: expected TRANSFER or ORDER")
        if req.action not in ACTIONS:
            raise DecisionError(400, f"action {req.action!r}: expected APPROVE, REJECT or EDIT")
    found = {line_type: views.lines_by_id(wh, kind, run_id, [r.line_id for r in requests if r.line_type == line_type])
             for line_type, kind in LINE_KINDS.items()}
    rows: list[dict[str, Any]] = []
    for req in requests:
        line = found[req.line_type].get(req.line_id)
        if line is None:
            raise DecisionError(404, f"run {run_id} has no {req.line_type.lower()} line {req.line_id}")
        reason = (req.reason or "").strip() or None
        if reason is not None and len(reason) > MAX_REASON:
            raise DecisionError(400, f"reason longer than {MAX_REASON} characters")
        old = int(line["quantity"])
        new = old
        if req.action == "REJECT" and reason is None:
            raise DecisionError(400, f"{req.line_type.lower()} {req.line_id}: give a reason to reject it")
        if req.action == "EDIT":
            new = _quantity(req.quantity)
            _validate_edit(wh, run_id, req.line_type, line, new)
        rows.append({"decision_id": _decision_id(), "run_id": run_id, "run_date": run["run_date"],
                     "line_type": req.line_type, "line_id": req.line_id, "action": req.action,
                     "old_quantity": old, "new_quantity": new, "reason": reason, "decided_by": identity,
                     "decided_at": datetime.now(timezone.utc)})
    wh.insert("plan_decisions", pd.DataFrame(rows))
    log(logging.INFO, "plan decisions recorded", step="workbench", run_id=run_id, caller=identity,
        count=len(rows), actions=sorted({r["action"] for r in rows}))
    return rows


def release(runtime: Any, run: dict[str, Any], identity: str, *, as_planned: bool = False) -> dict[str, Any]:
    """Publish the approved lines once and record the release; 409 if the run is released.

    `as_planned` (setting release_mode = auto, no review step): every line of the plan with its
    planned quantity, the way `retailopt run --release` commits it; refused once a planner decided
    on a line, since then the plan is under review."""
    wh = runtime.warehouse
    check_open(wh, run)
    run_id = run["run_id"]
    chain_id = str((run.get("parameters") or {}).get("chain_id") or runtime.settings.chain_id)
    claim = runtime.ledger.claim(f"release:{run_id}", KeyKind.BUSINESS_KEY, "release", chain_id=chain_id,
                                 run_id=run_id)
    if not claim.won:
        state = "released" if claim.status in ("DONE", "REJECTED") else "being released"
        raise DecisionError(409, f"run {run_id} is {state}")
    try:
        if views.released(wh, run_id) is not None:  # released before the ledger knew (cannot normally happen)
            runtime.ledger.finish(claim, "DONE", outcome="already released", run_id=run_id)
            raise DecisionError(409, f"run {run_id} is released")
        run_date = pd.Timestamp(run["run_date"]).date()
        if as_planned and any(views.decision_counts(wh, kind, run_id).get(d) for kind in LINE_KINDS.values()
                              for d in ("APPROVED", "REJECTED")):
            raise DecisionError(409, f"run {run_id} is under review: a planner has decided on its lines")
        decision = None if as_planned else "APPROVED"
        orders = [o for o in views.all_lines(wh, "orders", run_id, decision=decision) if int(o["quantity"]) > 0]
        transfers = [t for t in views.all_lines(wh, "transfers", run_id, decision=decision)
                     if int(t["quantity"]) > 0]
        batch = [messages.make_message("reorder", chain_id=chain_id, run_id=run_id, run_date=run_date,
                                       order=_order_body(o)) for o in orders]
        batch += [messages.make_message("transfer", chain_id=chain_id, run_id=run_id, run_date=run_date,
                                        transfer=_transfer_body(t)) for t in transfers]
        routed = _write_released_routes(wh, _run_settings(runtime.settings, run), run, orders, transfers)
        figures = _route_figures(routed)
        if batch:
            runtime.publisher.publish_many("reorders", batch)
        # The dispatch service turns the routes into Fleet Engine vehicles and tasks (after the
        # commit below: a dispatch reads the committed lines; a redelivery creates nothing twice).
        dispatch_message = messages.make_message("dispatch", chain_id=chain_id, run_id=run_id, run_date=run_date)
        units = sum(int(o["quantity"]) for o in orders) + sum(int(t["quantity"]) for t in transfers)
        how = ("routes solved again for the approved lines" if routed.re_solved else
               "as planned, no review step" if as_planned else "routes as planned")
        off = figures["unrouted_loads"]
        released_at = datetime.now(timezone.utc)
        # The released lines: the routes of their delivery day carry them, and the next plans count
        # them on order and in transit until their delivery closes (retailopt.dispatch.ledger).
        ledger.commit(wh, ledger.committed_rows(run_id, run_date, orders, transfers, released_by=identity,
                                                released_at=released_at))
        row = {"decision_id": _decision_id(), "run_id": run_id, "run_date": run["run_date"], "line_type": "RUN",
               "line_id": run_id, "action": "RELEASE", "old_quantity": None, "new_quantity": units,
               "reason": (f"{len(orders)} order lines and {len(transfers)} transfer lines released; {how}: "
                          f"{figures['vehicles']} vehicle{'' if figures['vehicles'] == 1 else 's'}, {figures['km']:,.1f} km"
                          + (f", {off} load{'s' if off != 1 else ''} on no route" if off else "")),
               "decided_by": identity, "decided_at": released_at}
        wh.insert("plan_decisions", pd.DataFrame([row]))
        runtime.publisher.publish("dispatch", dispatch_message)
    except DecisionError:
        raise
    except BaseException as exc:
        runtime.ledger.finish(claim, "RETRY", outcome=f"{type(exc).__name__}: {exc}", run_id=run_id)
        raise
    runtime.ledger.finish(claim, "DONE", outcome="released", run_id=run_id)
    log(logging.INFO, "plan released", step="workbench", run_id=run_id, caller=identity, orders=len(orders),
        transfers=len(transfers), units=units, **{f"routes_{k}": v for k, v in figures.items()})
    return {"run_id": run_id, "released": True, "orders": len(orders), "transfers": len(transfers), "units": units,
            "routes": figures, "released_by": identity, "released_at": row["decided_at"].isoformat(),
            "dispatch": "published"}


def _run_settings(base: Settings, run: dict[str, Any]) -> Settings:
    """The settings the run was planned with: the deployment's, with the run's what-if values."""
    parameters = run.get("parameters") or {}
    overrides = {k: v for k, v in parameters.items() if k in WHAT_IF_FIELDS and k != "run_date" and v is not None}
    return load_settings(overrides, base=base, environ={})


def _write_released_routes(wh: Any, settings: Settings, run: dict[str, Any], orders: list[dict[str, Any]],
                           transfers: list[dict[str, Any]]) -> reroute.ReleasedRoutes:
    """Work out and store the released plan's loads and routes (replacing any an interrupted
    release left; they count only once the RELEASE row exists)."""
    run_id, run_date = run["run_id"], pd.Timestamp(run["run_date"]).date()
    routed = reroute.released_routes(
        settings=settings, run_id=run_id, run_date=run_date,
        transfers=pipeline.read_run_rows(wh, "transfers", run_id),
        orders=pipeline.read_run_rows(wh, "replenishment_orders", run_id),
        carried=pipeline.read_run_rows(wh, "carried_lines", run_id),
        approved_transfers={str(t["line_id"]): int(t["quantity"]) for t in transfers},
        approved_orders={str(o["line_id"]): int(o["quantity"]) for o in orders},
        planned_routes=pipeline.read_run_rows(wh, "routes", run_id),
        planned_stops=pipeline.read_run_rows(wh, "route_stops", run_id),
        stores=pipeline.read_table(wh, "stores"), dcs=pipeline.read_table(wh, "distribution_centers"),
        products=pipeline.read_table(wh, "products"), vehicles=pipeline.read_table(wh, "vehicles"))
    reroute.store_released(wh, run_id, run_date, routed)
    return routed


def _route_figures(routed: reroute.ReleasedRoutes) -> dict[str, Any]:
    routes = routed.routes
    carried = set(routed.stops["shipment_id"].astype(str)) if len(routed.stops) else set()
    return {"re_solved": routed.re_solved, "vehicles": int(len(routes)),
            "km": round(float(routes["distance_km"].sum()), 1) if len(routes) else 0.0,
            "cost": round(float(routes["cost"].sum()), 2) if len(routes) else 0.0,
            "loads": int(routed.loads["shipment_id"].nunique()) if len(routed.loads) else 0,
            "unrouted_loads": int((~routed.loads["shipment_id"].astype(str).drop_duplicates().isin(carried)).sum())
            if len(routed.loads) else 0}


def dispatch(runtime: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Dispatch a released run's routes to Fleet Engine (retailopt.dispatch.fleet). A failure does
    not undo the release: it is logged and answered, and POST /runs/{id}/dispatch tries again
    (creating nothing twice)."""
    from dataclasses import asdict

    from retailopt.dispatch import fleet

    try:
        done = fleet.dispatch_run(runtime.warehouse, runtime.fleet(), run, parent=runtime.fleet_parent(),
                                  visit_minutes=runtime.settings.visit_minutes)
    except fleet.DispatchError as exc:
        return {"error": exc.message}
    except Exception as exc:  # Fleet Engine unreachable or refusing: the release stands
        log(logging.ERROR, "dispatch failed", step="dispatch", run_id=run["run_id"], error=f"{type(exc).__name__}: {exc}")
        return {"error": f"dispatch failed ({type(exc).__name__}): retry with POST /runs/{run['run_id']}/dispatch"}
    log(logging.INFO, "plan dispatched", step="dispatch", run_id=run["run_id"], tasks=done.tasks, created=done.created)
    return asdict(done)


def _order_body(o: dict[str, Any]) -> dict[str, Any]:
    pack = max(int(o.get("case_pack") or 1), 1)
    arrival = o.get("expected_arrival")
    return {"order_id": o["line_id"], "dc_id": o["dc_id"], "store_id": o["store_id"], "product_id": o["product_id"],
            "quantity": int(o["quantity"]), "cases": int(o["quantity"]) // pack,
            "order_value": round(float(o.get("order_value") or 0.0), 2),
            "expected_arrival": pd.Timestamp(arrival).date().isoformat() if arrival is not None else None}


def _transfer_body(t: dict[str, Any]) -> dict[str, Any]:
    return {"transfer_id": t["line_id"], "product_id": t["product_id"], "from_store_id": t["from_store_id"],
            "to_store_id": t["to_store_id"], "quantity": int(t["quantity"])}
