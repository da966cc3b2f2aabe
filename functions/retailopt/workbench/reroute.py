"""The routes of a released plan: what the trucks carry once planners have decided.

The plan step routes what arrives on the run date: its own lines due that day and the released
lines of earlier runs due by then (carried_lines). At release only the approved lines go out,
some with edited quantities: when that changes what the loads hold (a line rejected, left
undecided or edited), the approved lines and the carried ones are packed into vehicle loads again
the way the plan step packs them (`pipeline.day_loads`) and the day's loads routed again with the
run's own settings, so the trucks carry exactly what was released. When every line is approved as
planned, the planned loads and routes are the released ones and nothing is solved.

`approved_lines` is pure (plan rows and decisions in, line rows out); `released_routes` solves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

import pandas as pd

from retailopt.config import Settings

# plan table -> (line id column, origin column, destination column, money columns)
_PLAN = {
    "TRANSFER": ("transfers", "transfer_id", "from_store_id", "to_store_id", ("value", "cost")),
    "ORDER": ("replenishment_orders", "order_id", "dc_id", "store_id", ("order_value",)),
}
LOAD_COLUMNS = ["source_run_id", "line_type", "line_id", "product_id", "source_id", "store_id", "quantity",
                "expected_arrival", "shipment_id"]


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


def loads_frame(rows: pd.DataFrame, line_type: str, run_id: str) -> pd.DataFrame:
    """The run's own plan rows (with shipment_id) as released_loads rows."""
    _, id_col, origin, destination, _ = _PLAN[line_type]
    if rows is None or rows.empty:
        return pd.DataFrame(columns=LOAD_COLUMNS)
    arrival = rows["expected_arrival"] if "expected_arrival" in rows.columns else pd.Series(pd.NaT, index=rows.index)
    return pd.DataFrame({"source_run_id": run_id, "line_type": line_type, "line_id": rows[id_col].astype(str),
                         "product_id": rows["product_id"].astype(str), "source_id": rows[origin].astype(str),
                         "store_id": rows[destination].astype(str), "quantity": rows["quantity"].astype("int64"),
                         "expected_arrival": pd.to_datetime(arrival), "shipment_id": rows["shipment_id"].astype(str)}
                        )[LOAD_COLUMNS]


def carried_frame(carried: pd.DataFrame) -> pd.DataFrame:
    """carried_lines rows (released lines of earlier runs on this run's routes) as released_loads rows."""
    if carried is None or carried.empty:
        return pd.DataFrame(columns=LOAD_COLUMNS)
    return pd.DataFrame({"source_run_id": carried["source_run_id"].astype(str),
                         "line_type": carried["line_type"].astype(str), "line_id": carried["line_id"].astype(str),
                         "product_id": carried["product_id"].astype(str), "source_id": carried["origin_id"].astype(str),
                         "store_id": carried["destination_id"].astype(str),
                         "quantity": carried["quantity"].astype("int64"),
                         "expected_arrival": pd.to_datetime(carried["expected_arrival"]),
                         "shipment_id": carried["shipment_id"].astype(str)})[LOAD_COLUMNS]


def _loads(run_id: str, transfers: pd.DataFrame, orders: pd.DataFrame, carried: pd.DataFrame) -> pd.DataFrame:
    parts = [f for f in (loads_frame(transfers, "TRANSFER", run_id), loads_frame(orders, "ORDER", run_id),
                         carried_frame(carried)) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LOAD_COLUMNS)


def released_routes(*, settings: Settings, run_id: str, run_date: date, transfers: pd.DataFrame,
                    orders: pd.DataFrame, carried: pd.DataFrame, approved_transfers: Mapping[str, int],
                    approved_orders: Mapping[str, int], planned_routes: pd.DataFrame, planned_stops: pd.DataFrame,
                    stores: pd.DataFrame, dcs: pd.DataFrame, products: pd.DataFrame,
                    vehicles: pd.DataFrame) -> ReleasedRoutes:
    """The loads and routes of the approved lines (and the carried ones): the planned ones when
    nothing changed, otherwise packed and solved again under the run's settings (time limit
    included)."""
    from retailopt import pipeline
    from retailopt.routing import build_request, response_to_tables
    from retailopt.routing.emissions import with_emissions
    from retailopt.routing.fleet import select_fleet
    from retailopt.routing.tables import locations_frame

    if planned_as_released(transfers, "TRANSFER", approved_transfers) and \
            planned_as_released(orders, "ORDER", approved_orders):
        return ReleasedRoutes(_loads(run_id, transfers, orders, carried), planned_routes, planned_stops,
                              re_solved=False)
    moves = approved_lines(transfers, "TRANSFER", approved_transfers)
    supply = approved_lines(orders, "ORDER", approved_orders)
    fleet = select_fleet(vehicles, settings)
    waiting = carried.drop(columns=["run_id", "run_date"], errors="ignore") if carried is not None else carried
    moves, supply, carried_rows, day_moves, day_supply = pipeline.day_loads(moves, supply, waiting, run_date,
                                                                            fleet, products)
    request = build_request(day_moves, day_supply, stores, dcs, fleet, products, run_date=run_date, settings=settings)
    response = pipeline.solve_day_routes(request, settings).response
    routes, stops = response_to_tables(request, response, run_date=run_date, locations=locations_frame(stores, dcs))
    routes = with_emissions(routes, fleet, settings.carbon_price_per_kg)
    return ReleasedRoutes(_loads(run_id, moves, supply, carried_rows), routes, stops, re_solved=True)


def store_released(wh: Any, run_id: str, run_date: date, routed: ReleasedRoutes) -> None:
    """Write the released loads and routes, replacing any an interrupted release left (they count
    only once the run is released)."""
    from retailopt import pipeline

    for table, frame in (("released_loads", routed.loads), ("released_routes", routed.routes),
                         ("released_route_stops", routed.stops)):
        pipeline.replace_run_rows(wh, table, run_id, frame, run_date)


def release_as_planned(wh: Any, run_id: str, run_date: date) -> ReleasedRoutes:
    """A release without review (`retailopt run --release`): the planned loads and routes, stored
    as the released ones."""
    from retailopt import pipeline

    routed = ReleasedRoutes(
        _loads(run_id, pipeline.read_run_rows(wh, "transfers", run_id),
               pipeline.read_run_rows(wh, "replenishment_orders", run_id),
               pipeline.read_run_rows(wh, "carried_lines", run_id)),
        pipeline.read_run_rows(wh, "routes", run_id), pipeline.read_run_rows(wh, "route_stops", run_id),
        re_solved=False)
    store_released(wh, run_id, run_date, routed)
    return routed
