"""The routes of a released plan: what the trucks carry once planners have decided.

The plan step routes every line it proposes. At release only the approved lines go out, some with
edited quantities: when that changes what the loads hold (a line rejected, left undecided or
edited), the approved lines are packed into vehicle loads again and routed again with the run's
own settings, so the trucks carry exactly what was released. When every line is approved as
planned, the planned loads and routes are the released ones and nothing is solved.

`approved_lines` is pure (plan rows and decisions in, line rows out); `released_routes` solves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Mapping

import pandas as pd

from retailopt.config import Settings

# plan table -> (line id column, origin column, destination column, money columns)
_PLAN = {
    "TRANSFER": ("transfers", "transfer_id", "from_store_id", "to_store_id", ("value", "cost")),
    "ORDER": ("replenishment_orders", "order_id", "dc_id", "store_id", ("order_value",)),
}
LOAD_COLUMNS = ["line_type", "line_id", "product_id", "source_id", "store_id", "quantity", "shipment_id"]


@dataclass(frozen=True)
class ReleasedRoutes:
    loads: pd.DataFrame  # LOAD_COLUMNS: one row per (line, vehicle load)
    routes: pd.DataFrame  # rows of the routes table (without run_id)
    stops: pd.DataFrame  # rows of the route_stops table (without run_id)
    re_solved: bool  # False: the planned loads and routes were released as they were


def approved_lines(rows: pd.DataFrame, line_type: str, approved: Mapping[str, int]) -> pd.DataFrame:
    """One row per approved line of a plan table (its load rows merged back into the line), at the
    approved quantity, with cases and money columns scaled to it; lines not approved are left out."""
    _, id_col, _, _, money = _PLAN[line_type]
    if rows.empty or not approved:
        return rows.iloc[0:0].drop(columns=["shipment_id"], errors="ignore")
    keep = rows[rows[id_col].astype(str).isin(approved.keys())]
    sums = {col: "sum" for col in ("quantity", *money, *(["cases"] if line_type == "ORDER" else []))
            if col in keep.columns}
    firsts = {col: "first" for col in keep.columns if col not in sums and col not in (id_col, "shipment_id")}
    if "distance_km" in firsts:
        firsts["distance_km"] = "max"
    merged = keep.groupby(id_col, sort=True, as_index=False).agg({**firsts, **sums})
    planned = merged["quantity"].astype("int64")
    wanted = merged[id_col].astype(str).map(approved).astype("int64")
    merged = merged[wanted > 0].copy()
    share = (wanted / planned)[wanted > 0]
    for col in money:
        if col in merged.columns:
            merged[col] = merged[col].astype(float) * share
    if "cases" in merged.columns:
        # Approved order quantities are whole cases (validated when decided): cases follow the units.
        per_case = (planned[wanted > 0] // merged["cases"].clip(lower=1)).clip(lower=1)
        merged["cases"] = (wanted[wanted > 0] // per_case).astype("int64")
    merged["quantity"] = wanted[wanted > 0].astype("int64")
    return merged.reset_index(drop=True)


def planned_as_released(rows: pd.DataFrame, line_type: str, approved: Mapping[str, int]) -> bool:
    """True when every line of the plan table is approved at its planned quantity."""
    _, id_col, _, _, _ = _PLAN[line_type]
    if rows.empty:
        return not approved
    planned = rows.groupby(rows[id_col].astype(str))["quantity"].sum().astype("int64").to_dict()
    return planned == {k: int(v) for k, v in approved.items()}


def loads_frame(rows: pd.DataFrame, line_type: str) -> pd.DataFrame:
    """Plan rows (with shipment_id) as released_loads rows."""
    _, id_col, origin, destination, _ = _PLAN[line_type]
    if rows.empty:
        return pd.DataFrame(columns=LOAD_COLUMNS)
    return pd.DataFrame({"line_type": line_type, "line_id": rows[id_col].astype(str),
                         "product_id": rows["product_id"].astype(str), "source_id": rows[origin].astype(str),
                         "store_id": rows[destination].astype(str), "quantity": rows["quantity"].astype("int64"),
                         "shipment_id": rows["shipment_id"].astype(str)})[LOAD_COLUMNS]


def released_routes(*, settings: Settings, run_date: date, transfers: pd.DataFrame, orders: pd.DataFrame,
                    approved_transfers: Mapping[str, int], approved_orders: Mapping[str, int],
                    planned_routes: pd.DataFrame, planned_stops: pd.DataFrame, stores: pd.DataFrame,
                    dcs: pd.DataFrame, products: pd.DataFrame, vehicles: pd.DataFrame) -> ReleasedRoutes:
    """The loads and routes of the approved lines: the planned ones when nothing changed, otherwise
    packed and solved again under the run's settings (time limit included)."""
    from retailopt.routing import build_request, response_to_tables
    from retailopt.routing.engine import solve_routes
    from retailopt.routing.fleet import select_fleet
    from retailopt.routing.loads import assign_shipments
    from retailopt.routing.tables import locations_frame

    if planned_as_released(transfers, "TRANSFER", approved_transfers) and \
            planned_as_released(orders, "ORDER", approved_orders):
        loads = pd.concat([loads_frame(transfers, "TRANSFER"), loads_frame(orders, "ORDER")], ignore_index=True)
        return ReleasedRoutes(loads, planned_routes, planned_stops, re_solved=False)
    moves = approved_lines(transfers, "TRANSFER", approved_transfers)
    supply = approved_lines(orders, "ORDER", approved_orders)
    fleet = select_fleet(vehicles, settings)
    moves, supply = assign_shipments(moves, supply, fleet, products)
    request = build_request(moves, supply, stores, dcs, fleet, products, run_date=run_date, settings=settings)
    response = solve_routes(request, settings=settings)
    routes, stops = response_to_tables(request, response, run_date=run_date, locations=locations_frame(stores, dcs))
    loads = pd.concat([loads_frame(moves, "TRANSFER"), loads_frame(supply, "ORDER")], ignore_index=True)
    return ReleasedRoutes(loads, routes, stops, re_solved=True)
