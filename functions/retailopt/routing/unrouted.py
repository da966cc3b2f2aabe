"""Loads no route carries, as planning exceptions with their value.

When the fleet cannot carry every load, the most valuable go first (`parts.py`, and the penalty
of each shipment in the search); the others must not vanish. Each line of a skipped load becomes a
`plan_exceptions` row (reason code UNROUTED_LOAD) of the receiving store's position, naming the
load, its units and value and why it has no vehicle, so the planner's worklist shows it: the
run's own lines, its own transfers due that day that the plan drops (their receivers' orders
are planned again without them), and the released lines of earlier runs the day's routes were
to carry.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from google.maps import routeoptimization_v1 as ro

EXCEPTION_COLUMNS = ["store_id", "product_id", "reason_code", "reason", "action"]

_WHY = {
    "DEMAND_EXCEEDS_VEHICLE_CAPACITY": "larger than any vehicle",
    "CANNOT_BE_PERFORMED_WITHIN_VEHICLE_TIME_WINDOWS": "no vehicle's shift meets the receiving hours",
    "CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DURATION_LIMIT": "too far for the longest route",
    "CANNOT_BE_PERFORMED_WITHIN_VEHICLE_DISTANCE_LIMIT": "too far for the distance limit",
    "SHIPMENT_IGNORED": "ignored",
}


def skipped_loads(response: ro.OptimizeToursResponse) -> dict[str, str]:
    """Shipment label -> why it was skipped (the solver's reason, else the fleet was full)."""
    out: dict[str, str] = {}
    for sk in response.skipped_shipments:
        codes = [ro.SkippedShipment.Reason.Code(r.code).name for r in sk.reasons]
        why = "; ".join(dict.fromkeys(_WHY.get(c, c.lower().replace("_", " ")) for c in codes if c != "CODE_UNSPECIFIED"))
        out[sk.label] = why or "the fleet's shifts are full: more valuable loads went first"
    return out


def unrouted_exceptions(transfers: pd.DataFrame, orders: pd.DataFrame, response: ro.OptimizeToursResponse
                        ) -> pd.DataFrame:
    """plan_exceptions rows (without run_id, run_date) for every line of a load no route carries."""
    skipped = skipped_loads(response)
    if not skipped:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    parts = []
    for frame, value_col, dest_col, kind in ((transfers, "value", "to_store_id", "transfer"),
                                             (orders, "order_value", "store_id", "order")):
        if frame is None or len(frame) == 0 or "shipment_id" not in frame.columns:
            continue
        lines = frame[frame.shipment_id.astype(str).isin(skipped.keys())]
        if lines.empty:
            continue
        load = lines.groupby("shipment_id").agg(units=("quantity", "sum"), value=(value_col, "sum"))
        sid = lines.shipment_id.astype(str)
        units = sid.map(load.units)
        value = sid.map(load.value)
        reason = ("load " + sid + " (" + units.astype(int).astype(str) + " units, value "
                  + value.round(2).map("{:.2f}".format) + ") is on no route: " + sid.map(skipped)
                  + f"; this {kind} line: " + lines.quantity.astype(int).astype(str) + " units, value "
                  + lines[value_col].astype(float).round(2).map("{:.2f}".format))
        parts.append(pd.DataFrame({
            "store_id": lines[dest_col].astype(str).to_numpy(),
            "product_id": lines.product_id.astype(str).to_numpy(),
            "reason_code": "UNROUTED_LOAD",
            "reason": reason.to_numpy(),
            "action": f"the {kind} stays in the plan without a truck: add vehicles or shifts, or send it "
                      "with the next plan",
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXCEPTION_COLUMNS)


def unrouted_value(transfers: pd.DataFrame, orders: pd.DataFrame, response: ro.OptimizeToursResponse) -> float:
    """The value of the lines on loads no route carries (transfer value plus order value)."""
    skipped = set(skipped_loads(response))
    total = 0.0
    for frame, col in ((transfers, "value"), (orders, "order_value")):
        if frame is not None and len(frame) and "shipment_id" in frame.columns:
            total += float(frame.loc[frame.shipment_id.astype(str).isin(skipped), col].sum())
    return total



def skipped_own_transfers(transfers: pd.DataFrame, response: ro.OptimizeToursResponse, run_date: date) -> pd.Series:
    """Rows of the run's own transfers due on `run_date` whose load no route carries (a boolean
    mask on `transfers`). Carried lines are not in `transfers`; later lines are not routed today."""
    if transfers is None or len(transfers) == 0 or "shipment_id" not in transfers.columns:
        return pd.Series(False, index=getattr(transfers, "index", pd.RangeIndex(0)))
    skipped = set(skipped_loads(response))
    due = pd.to_datetime(transfers["expected_arrival"]).fillna(pd.Timestamp(run_date)) <= pd.Timestamp(run_date)
    return due & transfers["shipment_id"].astype(str).isin(skipped)


def dropped_transfer_exceptions(dropped: pd.DataFrame, response: ro.OptimizeToursResponse) -> pd.DataFrame:
    """UNROUTED_LOAD rows for the run's own transfer lines dropped because no route carried their
    load: the plan no longer holds them, and their receivers' orders were planned without them."""
    rows = unrouted_exceptions(dropped, None, response)
    if len(rows):
        rows["action"] = ("the transfer is dropped from the plan: the receiver's distribution-centre order is "
                          "planned without it")
    return rows


def carried_unrouted_exceptions(carried: pd.DataFrame, response: ro.OptimizeToursResponse) -> pd.DataFrame:
    """UNROUTED_LOAD rows for the released lines of earlier runs (`carried_lines`) on a load no
    route of the day carries: they stay released, on order at the receiver, and the next plan's
    routes carry them again."""
    if carried is None or len(carried) == 0 or "shipment_id" not in carried.columns:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    kinds = carried["line_type"].astype(str)
    transfers = carried[kinds == "TRANSFER"].rename(columns={
        "line_id": "transfer_id", "origin_id": "from_store_id", "destination_id": "to_store_id"})
    orders = carried[kinds == "ORDER"].rename(columns={
        "line_id": "order_id", "origin_id": "dc_id", "destination_id": "store_id", "value": "order_value"})
    rows = unrouted_exceptions(transfers, orders, response)
    if len(rows):
        rows["action"] = ("released before and still to deliver: on order at the store until it arrives, and "
                          "carried by the next plan's routes; add vehicles or shifts if it keeps waiting (a "
                          "transfer is cancelled transfer_max_wait_days after its delivery day)")
    return rows
