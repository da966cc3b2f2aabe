"""Split each consignment into vehicle loads: the shipments a route request carries.

A consignment (all transfer lines between two stores, or all order lines from a distribution centre
to a store) often holds more than any truck: a store's weekly order can be several truckloads. Each
consignment is packed into loads that fit one vehicle, so that every load can be routed (a vehicle
may come back for the next one within its shift) instead of the whole consignment being skipped.

Packing is first-fit decreasing on the larger of the two shares of the vehicle a line takes (units,
and kg when unit weights are known). A line goes whole into the first open load with room, or else
opens a new load; only a line larger than a whole vehicle is split by quantity, into full-vehicle
parts (whole cases for an order line) plus a remainder packed like any other line. A split line
becomes one row per load with the same `transfer_id` / `order_id`, so quantities, cases and values
still add up exactly per line and per shipment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from retailopt.routing.lines import RequestBuildError, consignment_id, is_missing, rows, unit_measures

# Kg limits are compared with a little room: the request rounds a load's weight up to whole kg.
_KG_SLACK = 1e-6


@dataclass(frozen=True)
class _Line:
    row: int  # position in the input frame
    quantity: int
    step: int  # smallest quantity that can travel apart: a case for an order line, a unit for a transfer
    unit_kg: float  # 0 when the product has no unit weight


@dataclass
class _Load:
    units: int = 0
    kg: float = 0.0
    parts: list[tuple[int, int]] = field(default_factory=list)  # (input row, quantity)


@dataclass(frozen=True)
class Capacity:
    """What one load may hold: a vehicle's unit and weight limits (inf when not known)."""

    units: int
    kg: float

    def holds(self, load: _Load, units: int, kg: float) -> bool:
        return load.units + units <= self.units and load.kg + kg <= self.kg + _KG_SLACK


def fleet_capacities(vehicles: pd.DataFrame | None) -> list[Capacity]:
    """Each vehicle's load limits, as the request states them (whole units, whole kg rounded down)."""
    out: list[Capacity] = []
    for row in rows(vehicles, "vehicles", ["vehicle_id", "capacity_units"]):
        units = int(row["capacity_units"])
        kg = row.get("capacity_kg")
        if units > 0:
            out.append(Capacity(units=units, kg=math.inf if is_missing(kg) else math.floor(float(kg))))
    return out


def best_capacity(capacities: list[Capacity], units: int, kg: float) -> Capacity | None:
    """The vehicle that needs the fewest loads for `units` and `kg` (the larger one on ties)."""
    if not capacities:
        return None

    def loads(cap: Capacity) -> int:
        by_kg = 0 if kg <= 0 or math.isinf(cap.kg) else math.ceil(kg / cap.kg) if cap.kg > 0 else math.inf
        return max(math.ceil(units / cap.units), by_kg)

    return min(capacities, key=lambda cap: (loads(cap), -cap.units, -cap.kg))


def pack_lines(lines: list[_Line], capacity: Capacity | None) -> list[_Load]:
    """First-fit decreasing; a line larger than a vehicle is split into full-vehicle parts."""
    if capacity is None:  # no fleet: nothing to fit, the consignment stays one shipment
        return [_Load(units=sum(x.quantity for x in lines), parts=[(x.row, x.quantity) for x in lines])]

    def share(line: _Line) -> float:
        kg = line.quantity * line.unit_kg
        by_kg = 0.0 if kg <= 0 else kg / capacity.kg if capacity.kg > 0 else math.inf
        return max(line.quantity / capacity.units, by_kg)

    loads: list[_Load] = []
    for line in sorted(lines, key=lambda x: (-share(x), x.row)):
        left = line.quantity
        while left > 0:
            kg = left * line.unit_kg
            target = next((load for load in loads if capacity.holds(load, left, kg)), None)
            if target is None and capacity.holds(_Load(), left, kg):
                target = _Load()
                loads.append(target)
            if target is not None:
                take = left
            else:
                # Larger than a whole vehicle: a full load of whole steps. A single step that fits no
                # vehicle still travels alone; the solver skips it with its capacity reason.
                steps = _steps_that_fit(line, capacity)
                take = min(left, max(1, steps) * line.step)
                target = _Load()
                loads.append(target)
            target.units += take
            target.kg += take * line.unit_kg
            target.parts.append((line.row, take))
            left -= take
    return loads


def _steps_that_fit(line: _Line, capacity: Capacity) -> int:
    by_units = capacity.units // line.step
    if line.unit_kg <= 0 or math.isinf(capacity.kg):
        return int(by_units)
    return int(min(by_units, math.floor((capacity.kg + _KG_SLACK) / (line.step * line.unit_kg))))


_TABLES = {
    "transfers": ("transfer_id", "from_store_id", "to_store_id", ["value", "cost"]),
    "replenishment_orders": ("order_id", "dc_id", "store_id", ["order_value"]),
}


def assign_shipments(transfers: pd.DataFrame, orders: pd.DataFrame, vehicles: pd.DataFrame | None,
                     products: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transfers and orders with `shipment_id`: the load (`<consignment>-<k>`, k from 1) carrying each row.

    Loads are sized for `vehicles` (the fleet the run routes with). A line split across loads becomes
    one row per load; its quantity, cases and money columns are shared out so they add up exactly.
    """
    # The fleet's distinct limits: a chain's thousands of vehicles are a few types.
    capacities = list(dict.fromkeys(fleet_capacities(vehicles)))
    weights, _ = unit_measures(products)
    return (_assign("transfers", transfers, capacities, weights),
            _assign("replenishment_orders", orders, capacities, weights))


def _assign(table: str, frame: pd.DataFrame, capacities: list[Capacity],
            weights: dict[str, float]) -> pd.DataFrame:
    id_col, origin_col, dest_col, money = _TABLES[table]
    if frame is None or len(frame) == 0:
        out = frame.copy() if frame is not None else pd.DataFrame()
        out["shipment_id"] = pd.Series(dtype=object)
        return out
    records = rows(frame, table, [id_col, "product_id", origin_col, dest_col, "quantity"])
    consignments: dict[str, list[_Line]] = {}
    for i, rec in enumerate(records):
        quantity = int(rec["quantity"])
        if quantity <= 0:
            raise RequestBuildError(f"{table} row {rec['_row']}: quantity must be > 0, got {quantity}")
        step = 1
        if table == "replenishment_orders" and "cases" in rec and not is_missing(rec["cases"]):
            cases = int(rec["cases"])
            step = quantity // cases if cases > 0 and quantity % cases == 0 else 1
        label = consignment_id(table, rec[origin_col], rec[dest_col])
        consignments.setdefault(label, []).append(
            _Line(row=i, quantity=quantity, step=step, unit_kg=weights.get(str(rec["product_id"]), 0.0)))

    parts: dict[int, list[tuple[str, int]]] = {}
    for label, lines in consignments.items():
        units = sum(x.quantity for x in lines)
        kg = sum(x.quantity * x.unit_kg for x in lines)
        for k, load in enumerate(pack_lines(lines, best_capacity(capacities, units, kg)), start=1):
            for row, quantity in load.parts:
                parts.setdefault(row, []).append((f"{label}-{k}", quantity))

    if all(len(p) == 1 for p in parts.values()):  # the usual case: no line needed splitting
        return frame.assign(shipment_id=[parts[i][0][0] for i in range(len(frame))])
    return _split_rows(frame, parts, money, has_cases=table == "replenishment_orders")


def _split_rows(frame: pd.DataFrame, parts: dict[int, list[tuple[str, int]]], money: list[str],
                has_cases: bool) -> pd.DataFrame:
    """One row per (line, load); cases and money columns shared out so each line's parts add up."""
    positions = [i for i in range(len(frame)) for _ in parts[i]]
    out = frame.iloc[positions].reset_index(drop=True)
    out["shipment_id"] = [label for i in range(len(frame)) for label, _ in parts[i]]
    quantities = [[q for _, q in parts[i]] for i in range(len(frame))]
    out["quantity"] = pd.Series([q for qs in quantities for q in qs], dtype=frame["quantity"].dtype)
    if has_cases and "cases" in out.columns:
        cases = []
        for i, qs in enumerate(quantities):
            whole, total = int(frame["cases"].iloc[i]), sum(qs)
            if whole > 0 and total % whole == 0:
                cases.extend(q // (total // whole) for q in qs)  # parts are whole cases
            else:
                cases.extend(_share_out(whole, qs, integral=True))
        out["cases"] = pd.Series(cases, dtype=frame["cases"].dtype)
    for col in money:
        if col in out.columns:
            out[col] = [v for i, qs in enumerate(quantities)
                        for v in _share_out(float(frame[col].iloc[i]), qs, integral=False)]
    return out


def _share_out(whole: float, quantities: list[int], *, integral: bool) -> list:
    """`whole` shared in proportion to `quantities`; the last part takes what is left (exact sum)."""
    total = sum(quantities)
    shares = [(math.floor(whole * q / total) if integral else whole * q / total) for q in quantities[:-1]]
    return shares + [whole - sum(shares)]
