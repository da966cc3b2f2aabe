"""Deterministic sample retail chain, written as the files a user would bring.

`generate_sample_chain` writes stores, distribution centres, products, vehicles, the current
stock snapshot (CSV), two years of daily sales (Parquet) and the chain-wide promotions planned
for the four weeks after the last sale (CSV) for a chain in the Chicago area.
The pipeline then imports them through the same validation path as real data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retailopt import schema

from .catalog import CATEGORIES, CLASS_NAMES, make_catalog
from .demand import plan_promotions, simulate
from .network import make_distribution_centers, make_inventory, make_stores, make_vehicles
from .places import DC_PLACE, METRO_BBOX, PLACES
from .truth import TRUTH_FILE, truth_table, write_truth

__all__ = ["generate_sample_chain", "main", "METRO_BBOX", "PLACES", "DC_PLACE", "CATEGORIES",
           "CLASS_NAMES", "DEFAULT_END_DATE"]

DEFAULT_END_DATE = date(2026, 11, 21)
_RECENT_DAYS = 28
_PLAN_DAYS = 28  # the default forecast horizon

# Store x product x day cells simulated and written at a time: memory follows this, not the
# chain (the 25 x 300 sample chain is one block; 500 x 2,000 is a hundred).
_BLOCK_CELLS = 8_000_000
_ROW_GROUP = 1 << 20

_ARROW_TYPES = {"STRING": pa.string(), "INT64": pa.int64(), "FLOAT64": pa.float64(),
                "BOOL": pa.bool_(), "DATE": pa.date32()}


def _arrow_schema(name: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable)
                      for c in schema.table(name).columns])


def _write_csv(name: str, df: pd.DataFrame, path: Path) -> Path:
    # The DDL decides the column order; a mismatch is a bug here, caught before writing.
    columns = schema.table(name).column_names
    if sorted(columns) != sorted(df.columns):
        raise AssertionError(f"sample {name} columns {list(df.columns)} differ from the DDL {columns}")
    df[columns].to_csv(path, index=False, lineterminator="\n")
    return path


def _sales_table(units: np.ndarray, price: np.ndarray, promo: np.ndarray, days: list[date],
                 store_ids: list[str], product_ids: list[str]) -> pa.Table:
    # Only days with sales are rows: a missing day means no sales (the input contract).
    s, p, t = np.nonzero(units)
    epoch = (np.datetime64(days[0], "D") - np.datetime64("1970-01-01", "D")).astype(np.int32)
    # Days since the first column's date (consecutive for daily sales, 7 apart for weekly).
    offset = (np.asarray(days, dtype="datetime64[D]") - np.datetime64(days[0], "D")).astype(np.int32)
    columns = {
        "sale_date": pa.array(epoch + offset[t], pa.int32()).cast(pa.date32()),
        "store_id": pc.take(pa.array(store_ids, pa.string()), pa.array(s.astype(np.int32))),
        "product_id": pc.take(pa.array(product_ids, pa.string()), pa.array(p.astype(np.int32))),
        "units": pa.array(units[s, p, t].astype(np.int64)),
        "price": pa.array(price[p, t]),
        "on_promotion": pa.array(promo[p, t]),
    }
    target = _arrow_schema("sales")
    return pa.table([columns[f.name] for f in target], schema=target)


def _weekly(units: np.ndarray, price: np.ndarray, promo: np.ndarray, days: list[date]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[date]]:
    """The daily sales summed into weeks ending on the last day's weekday (a partial first week
    is dropped): units summed, price averaged, on promotion when any day of the week was; each
    week dated by its last day (pandas' W-<weekday> convention)."""
    skip = len(days) % 7
    n_weeks = len(days) // 7
    u = units[:, :, skip:].reshape(units.shape[0], units.shape[1], n_weeks, 7).sum(axis=3)
    pr = price[:, skip:].reshape(price.shape[0], n_weeks, 7).mean(axis=2)
    pm = promo[:, skip:].reshape(promo.shape[0], n_weeks, 7).any(axis=2)
    return u, pr, pm, [days[skip + 7 * k + 6] for k in range(n_weeks)]


def _write_sales(path: Path, units: np.ndarray, price: np.ndarray, promo: np.ndarray, days: list[date],
                 store_ids: list[str], product_ids: list[str], frequency: str, block: int) -> None:
    """Write the sales of `block` stores at a time, in row groups of `_ROW_GROUP` rows whatever
    the block, so the file is the one a single write of the whole chain gives."""
    target = _arrow_schema("sales")
    with pq.ParquetWriter(path, target, compression="zstd") as writer:
        pending: list[pa.Table] = []
        n_pending, written = 0, False
        for a in range(0, len(store_ids), block):
            sales = (np.asarray(units[a:a + block]), price, promo, days)
            if frequency == "weekly":
                sales = _weekly(*sales)
            pending.append(_sales_table(*sales, store_ids[a:a + block], product_ids))
            n_pending += pending[-1].num_rows
            while n_pending >= _ROW_GROUP:
                whole = pa.concat_tables(pending)
                writer.write_table(whole.slice(0, _ROW_GROUP), row_group_size=_ROW_GROUP)
                pending, n_pending, written = [whole.slice(_ROW_GROUP)], n_pending - _ROW_GROUP, True
        if n_pending or not written:
            writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP)


def _promotions_frame(planned: list[tuple[int, int, int]], product_ids: list[str], first_day: date) -> pd.DataFrame:
    # Chain-wide circulars: an empty store_id means every store.
    return pd.DataFrame({
        "store_id": [None] * len(planned),
        "product_id": [product_ids[p] for p, _, _ in planned],
        "start_date": [(first_day + timedelta(days=a)).isoformat() for _, a, _ in planned],
        "end_date": [(first_day + timedelta(days=b)).isoformat() for _, _, b in planned],
    }, columns=["store_id", "product_id", "start_date", "end_date"])


def generate_sample_chain(out_dir: Path, *, seed: int = 42, n_stores: int = 25, n_products: int = 300,
                          days: int = 730, end_date: date = DEFAULT_END_DATE,
                          holiday_country: str = "US", frequency: str = "daily",
                          truth_days: int = 0, block_stores: int | None = None) -> dict[str, Path]:
    """Write a sample chain to out_dir and return {table name: file path}.

    The same arguments always give byte-identical files. Sales cover `days` days ending on
    `end_date` (inclusive); the stock snapshot is taken on `end_date`. ``frequency="weekly"``
    writes the same sales summed into weeks ending on `end_date`'s weekday, one row per store x
    product x week dated by its last day (the other files are unchanged).

    ``truth_days > 0`` also writes `demand_truth.parquet` (`truth.py`): the expected units of
    the last `truth_days` days and the noise around them, a diagnostic for the replay's `truth`
    forecaster only (the other files are unchanged).

    Stores are simulated and written `block_stores` at a time (by default as many as make about
    eight million store x product x day cells); the block size changes no byte of any file.
    With more than one block the units wait in a memory map on disk, so a chain of 500 stores x
    2,000 products needs a few GB of memory, not the ~28 GB of the whole chain's arrays.
    """
    if frequency not in ("daily", "weekly"):
        raise ValueError(f"frequency must be daily or weekly (got {frequency!r})")
    if n_stores < 2:
        raise ValueError(f"n_stores must be at least 2 (got {n_stores}): transfers need two stores")
    if n_products < 1:
        raise ValueError(f"n_products must be at least 1 (got {n_products})")
    if truth_days < 0 or truth_days > days:
        raise ValueError(f"truth_days must be between 0 and days={days} (got {truth_days})")
    if truth_days and frequency != "daily":
        raise ValueError("the demand truth is daily: truth_days needs frequency='daily'")
    if days < _RECENT_DAYS:
        raise ValueError(f"days must be at least {_RECENT_DAYS} (got {days})")
    if block_stores is not None and block_stores < 1:
        raise ValueError(f"block_stores must be at least 1 (got {block_stores})")
    block = block_stores or max(1, _BLOCK_CELLS // (n_products * days))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    calendar = [end_date - timedelta(days=days - 1 - i) for i in range(days)]

    # Files are written aside and moved in at the end, so a failure leaves no half-written chain.
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".sample-"))
    try:
        stores, store_size, weekly_tilt = make_stores(rng, n_stores)
        catalog = make_catalog(rng, n_products)
        units = None
        if block < n_stores:
            units = np.lib.format.open_memmap(staging / "units.npy", mode="w+", dtype=np.int32,
                                              shape=(n_stores, n_products, days))
        demand = simulate(rng, catalog, store_size, weekly_tilt, calendar, holiday_country,
                          expected_window=max(_RECENT_DAYS, truth_days), block_stores=block, units=units)
        recent = demand.units[:, :, -_RECENT_DAYS:].mean(axis=2)
        inventory = make_inventory(rng, stores, catalog.products, recent,
                                   demand.expected[:, :, -_RECENT_DAYS:].mean(axis=2), end_date)
        dcs = make_distribution_centers()
        vehicles = make_vehicles(rng, stores, dcs.iloc[0], weekly_units=7 * recent.sum(axis=1))
        # A generator of its own, so adding the plan left every other file byte-identical.
        promotions = _promotions_frame(
            plan_promotions(np.random.default_rng([seed, 1]), catalog.promotable, demand.promo,
                            end_date + timedelta(days=1), _PLAN_DAYS),
            catalog.products["product_id"].tolist(), end_date + timedelta(days=1))

        staged = {
            "stores": _write_csv("stores", stores, staging / "stores.csv"),
            "distribution_centers": _write_csv("distribution_centers", dcs, staging / "distribution_centers.csv"),
            "products": _write_csv("products", catalog.products, staging / "products.csv"),
            "vehicles": _write_csv("vehicles", vehicles, staging / "vehicles.csv"),
            "inventory": _write_csv("inventory", inventory, staging / "inventory.csv"),
            "promotions": _write_csv("promotions", promotions, staging / "promotions.csv"),
        }
        staged["sales"] = staging / "sales.parquet"
        if truth_days:
            expected = replace(demand, expected=demand.expected[:, :, -truth_days:])
            staged["demand_truth"] = write_truth(truth_table(expected, calendar, stores["store_id"].tolist(),
                                                             catalog.products["product_id"].tolist()),
                                                 staging / TRUTH_FILE)
        _write_sales(staged["sales"], demand.units, demand.price, demand.promo, calendar,
                     stores["store_id"].tolist(), catalog.products["product_id"].tolist(), frequency, block)
        del demand, units
        paths = {}
        for name, path in staged.items():
            paths[name] = out_dir / path.name
            os.replace(path, paths[name])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt generate-sample",
                                     description="Write a deterministic sample retail chain (Chicago area).")
    parser.add_argument("--out", type=Path, default=Path("sample-data"), help="output directory")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stores", type=int, default=25)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--days", type=int, default=730, help="days of sales history")
    parser.add_argument("--end-date", type=date.fromisoformat, default=DEFAULT_END_DATE,
                        help="last sales day and stock snapshot date (YYYY-MM-DD)")
    parser.add_argument("--holiday-country", default="US")
    parser.add_argument("--frequency", choices=["daily", "weekly"], default="daily",
                        help="sales rows per day, or per week ending on --end-date's weekday "
                             "(plan it with --set data_frequency=weekly, or auto)")
    parser.add_argument("--truth-days", type=int, default=0,
                        help="also write demand_truth.parquet: the expected units of the last N days and "
                             "their noise model (a diagnostic for `retailopt replay --forecaster truth`)")
    parser.add_argument("--small", action="store_true",
                        help="a tiny chain for tests and demos (4 stores, 12 products, 120 days)")
    args = parser.parse_args(argv)
    if args.small:
        args.stores, args.products, args.days = 4, 12, 120
    started = time.perf_counter()
    try:
        paths = generate_sample_chain(args.out, seed=args.seed, n_stores=args.stores, n_products=args.products,
                                      days=args.days, end_date=args.end_date,
                                      holiday_country=args.holiday_country, frequency=args.frequency,
                                      truth_days=args.truth_days)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"{'table':<22}{'rows':>12}  file")
    for name, path in paths.items():
        rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else (
            sum(1 for _ in path.open()) - 1)
        print(f"{name:<22}{rows:>12}  {path}")
    print(f"generated in {elapsed:.2f} s")
    return 0
