"""Input data contracts: the DDL's columns and types plus the business rules each file must meet.

Types and nullability come from `sql/schema/`; this module adds only what DDL cannot say
(ranges, uniqueness, references between files, no future dates, windows that do not end before
they open, characters allowed in ids and text).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from retailopt import schema

INPUT_TABLES = ("stores", "distribution_centers", "products", "vehicles", "inventory", "sales", "promotions")
# Files a folder may leave out without a quarantine row (an absent file means an empty table).
OPTIONAL_TABLES = ("promotions",)
# Columns a file may leave out (added empty): columns added after files in use were written.
OPTIONAL_COLUMNS = {"vehicles": ("co2_kg_per_km",)}
# Files that must hold at least one valid row for a plan to be possible (routing needs a vehicle).
REQUIRED_NONEMPTY = ("stores", "distribution_centers", "products", "vehicles", "inventory", "sales")


@dataclass(frozen=True)
class Contract:
    table: str
    key: tuple[str, ...]
    checks: dict[str, list[pa.Check]] = field(default_factory=dict)
    # column -> table whose ids it must reference
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)
    not_after_run_date: tuple[str, ...] = ()
    # (earlier, later) column pairs: the later date must not be before the earlier one.
    date_order: tuple[tuple[str, str], ...] = ()
    # The same for TIME columns (HH:MM:SS text once typed): a window must not end before it opens.
    time_order: tuple[tuple[str, str], ...] = ()

    @property
    def id_columns(self) -> tuple[str, ...]:
        """Key and reference columns that hold ids (text), checked by ID_CHARACTERS."""
        types = {c.name: c.type for c in schema.table(self.table).columns}
        return tuple(c for c in dict.fromkeys((*self.key, *self.references)) if types[c] == "STRING")


# Most units one quantity may hold. Far above any real store, order or truck, and low enough that
# sums over millions of rows stay exact in int64 and over thousands in float64 (2**53 ~ 9e15).
MAX_UNITS = 10**12


def _non_negative(*cols: str) -> dict[str, list[pa.Check]]:
    return {c: [pa.Check.ge(0, error="must be >= 0")] for c in cols}


def _units(*cols: str, low: pa.Check | None = None) -> dict[str, list[pa.Check]]:
    """Unit counts: at least 0 (or `low`), at most MAX_UNITS."""
    low = low or pa.Check.ge(0, error="must be >= 0")
    return {c: [low, pa.Check.le(MAX_UNITS, error=f"must be <= {MAX_UNITS}")] for c in cols}


def _never(pattern: str, error: str) -> pa.Check:
    """No value may contain a match of `pattern`, an RE2 pattern: Python's re has no Unicode classes
    (and pandas compiles a pattern with re even for Arrow strings), so pyarrow runs it directly."""
    def check(values: pd.Series) -> pd.Series:
        found = pc.match_substring_regex(pyarrow.array(values.astype("string[pyarrow]")), pattern).fill_null(False)
        return pd.Series(~found.to_numpy(zero_copy_only=False), index=values.index)

    return pa.Check(check, error=error)


# One rule for every id: letters, marks, digits, punctuation, symbols and the plain space (so
# "Café-12" is an id). Anything else (zero-width and bidirectional marks, U+FEFF, other control or
# format characters, non-breaking and other unusual spaces) makes two ids that look alike differ.
ID_PATTERN = r"[^\p{L}\p{M}\p{N}\p{P}\p{S} ]"  # a character an id may not hold (RE2)
ID_CHARACTERS = _never(ID_PATTERN, "id contains invisible or control characters")
# Names and other text may hold any character but the control ones (tab and line breaks are fine).
TEXT_CHARACTERS = _never(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", "contains control characters")

_COORDS = {
    "latitude": [pa.Check.in_range(-90, 90, error="latitude must be within -90..90")],
    "longitude": [pa.Check.in_range(-180, 180, error="longitude must be within -180..180")],
}

CONTRACTS: dict[str, Contract] = {
    "stores": Contract("stores", ("store_id",), {**_COORDS, **_units("capacity_units")},
                       time_order=(("receiving_open", "receiving_close"),)),
    "distribution_centers": Contract("distribution_centers", ("dc_id",),
                                     {**_COORDS, **_non_negative("lead_time_days")},
                                     time_order=(("open_time", "close_time"),)),
    "products": Contract("products", ("product_id",), {
        **_non_negative("unit_cost", "price", "unit_weight_kg", "unit_volume_l"),
        **_units("case_pack", low=pa.Check.ge(1, error="must be >= 1")),
    }),
    "vehicles": Contract("vehicles", ("vehicle_id",), {
        **_non_negative("capacity_kg", "cost_per_km", "cost_per_hour", "fixed_cost", "co2_kg_per_km"),
        **_units("capacity_units", low=pa.Check.gt(0, error="must be > 0")),
    }, references={"depot_id": ("distribution_centers", "stores")}, time_order=(("shift_start", "shift_end"),)),
    "inventory": Contract("inventory", ("store_id", "product_id"),
                          _units("on_hand", "on_order", "max_capacity"),
                          references={"store_id": ("stores",), "product_id": ("products",)},
                          not_after_run_date=("snapshot_date",)),
    "sales": Contract("sales", ("sale_date", "store_id", "product_id"), {**_units("units"), **_non_negative("price")},
                      references={"store_id": ("stores",), "product_id": ("products",)},
                      not_after_run_date=("sale_date",)),
    # A NULL store_id is a chain-wide promotion; past promotions are history, so no date limit.
    "promotions": Contract("promotions", ("store_id", "product_id", "start_date"),
                           references={"store_id": ("stores",), "product_id": ("products",)},
                           date_order=(("start_date", "end_date"),)),
}


def pandera_schema(table: str) -> pa.DataFrameSchema:
    """Value rules for a file whose columns are already typed (see ingest.coerce)."""
    contract = CONTRACTS[table]
    columns = {}
    for col in schema.table(table).columns:
        checks = list(contract.checks.get(col.name, []))
        if col.type == "STRING":
            checks.append(ID_CHARACTERS if col.name in contract.id_columns else TEXT_CHARACTERS)
        columns[col.name] = pa.Column(nullable=col.nullable, checks=checks, required=True, coerce=False)
    return pa.DataFrameSchema(columns, strict=False, name=table)
