"""What building a route request and packing vehicle loads share: reading transfer and order rows.

`request.py` (the `OptimizeToursRequest`) and `loads.py` (consignments packed into vehicle loads)
both read the same rows, name consignments the same way and raise the same error; those pieces
live here so the two modules depend on this one and not on each other.
"""

from __future__ import annotations

import math

import pandas as pd


class RequestBuildError(ValueError):
    """Input rows cannot become a request; the message names the table, row and field."""


def rows(frame: pd.DataFrame | None, table: str, required: list[str]) -> list[dict]:
    """The frame's rows as dicts with `_row` (1-based); a missing column or empty value is refused."""
    if frame is None or len(frame) == 0:
        return []
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RequestBuildError(f"{table}: missing column(s) {', '.join(missing)}")
    records = frame.to_dict("records")
    for i, rec in enumerate(records, start=1):
        for col in required:
            if is_missing(rec[col]):
                raise RequestBuildError(f"{table} row {i}: {col} is empty")
        rec["_row"] = i
    return records


def is_missing(value: object) -> bool:
    """None, NaN or NaT."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def unit_measures(products: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Product id -> unit weight (kg) and unit volume (l), for the products that state one above 0."""
    weights: dict[str, float] = {}
    volumes: dict[str, float] = {}
    if products is None or len(products) == 0:
        return weights, volumes
    for rec in products.to_dict("records"):
        pid = str(rec["product_id"])
        for name, target in (("unit_weight_kg", weights), ("unit_volume_l", volumes)):
            value = rec.get(name)
            if not is_missing(value) and float(value) > 0:
                target[pid] = float(value)
    return weights, volumes


def consignment_id(table: str, origin: object, destination: object) -> str:
    """The consignment a transfer or order line belongs to: all lines between the same two places.

    Its loads are the shipments `<consignment>-1`, `-2`, ... (`loads.assign_shipments`)."""
    prefix = "T" if table == "transfers" else "O"
    return f"{prefix}-{origin}-{destination}"
