"""Benchmark store-to-store rebalancing at chain scale (`retailopt bench-rebalance`).

Builds a synthetic policy of stores x products positions (default 1,000 x 20,000 = 20 million),
balanced except for a few per cent of positions in surplus or deficit, and times
`rebalance.plan_transfers` on it, with the process's peak memory. Ids are categoricals and
numbers are 32-bit, as a warehouse extract of this size would be loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from retailopt.config import Settings
from retailopt.rebalance import plan_transfers, store_free_space

TARGET_SECONDS = 60.0
TARGET_PEAK_GB = 4.0


def _peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 ** 2)


def build_chain(n_stores: int, n_products: int, imbalance: float, seed: int):
    """stores, products, policy and protection frames (policy and protection in the same order)."""
    rng = np.random.default_rng(seed)
    stores = pd.DataFrame({
        "store_id": [f"S{i:05d}" for i in range(n_stores)],
        # About 550 x 580 km around Chicago: a store has some 30 others within 60 km.
        "latitude": rng.uniform(39.5, 44.5, n_stores),
        "longitude": rng.uniform(-91.0, -84.0, n_stores),
    })
    products = pd.DataFrame({
        "product_id": [f"P{j:06d}" for j in range(n_products)],
        "price": np.round(rng.uniform(1.0, 40.0, n_products), 2),
        "unit_cost": 0.0, "case_pack": 6, "category": "c"})
    products["unit_cost"] = np.round(products["price"] * 0.6, 2)
    n = n_stores * n_products
    store_codes = np.repeat(np.arange(n_stores, dtype=np.int16), n_products)
    prod_codes = np.tile(np.arange(n_products, dtype=np.int16 if n_products < 32_000 else np.int32), n_stores)
    store_cat = pd.Categorical.from_codes(store_codes, categories=stores["store_id"])
    prod_cat = pd.Categorical.from_codes(prod_codes, categories=products["product_id"])
    del store_codes
    popularity = rng.gamma(0.6, 1.0, n_products).astype(np.float32)
    size = rng.uniform(0.5, 2.0, n_stores).astype(np.float32)
    mean = np.empty(n, dtype=np.float32)
    for s in range(n_stores):  # row blocks keep the temporaries small
        mean[s * n_products:(s + 1) * n_products] = 3.0 * popularity * size[s]
    std = np.sqrt(mean * 1.3, dtype=np.float32)
    reorder = np.ceil(mean + 1.65 * std).astype(np.float32)
    up_to = reorder + np.ceil(np.maximum(mean, 1.0) * 2.0).astype(np.float32)
    on_hand = (reorder + rng.random(n, dtype=np.float32) * (up_to - reorder)).astype(np.int32)
    pick = rng.random(n, dtype=np.float32)
    deficit = pick < imbalance / 2
    surplus = (pick >= imbalance / 2) & (pick < imbalance)
    del pick
    on_hand[deficit] = 0
    on_hand[surplus] = (up_to[surplus] + np.ceil(mean[surplus] * rng.uniform(2, 10, int(surplus.sum()))
                                                 + 2)).astype(np.int32)
    daily = mean / np.float32(10.0)
    policy = pd.DataFrame({
        "store_id": store_cat, "product_id": prod_cat, "on_hand": on_hand,
        "on_order": np.zeros(n, dtype=np.int32), "lead_time_days": np.full(n, 3, dtype=np.int16),
        "mean_daily_demand": daily,
        "reorder_point": reorder, "order_up_to": up_to,
        "max_capacity": (on_hand + up_to * 2).astype(np.int32)}, copy=False)
    # Store-wide room of 0 to 120 units over the stock expected on the day transfers arrive (one
    # day's demand sold), about what a store is offered: it binds in many receiving stores, so
    # the products are coupled in one flow.
    stock = np.add.reduceat(np.maximum(on_hand - np.floor(daily + 1e-6), 0).astype(np.int64),
                            np.arange(0, n, n_products))
    stores["capacity_units"] = stock + rng.integers(0, 120, n_stores)
    z = np.array([0.0, 0.8416, 1.2816, 1.6449, 2.3263], dtype=np.float32)
    protection = pd.DataFrame({
        "store_id": store_cat, "product_id": prod_cat, "window_days": np.full(n, 10, dtype=np.int16),
        "demand_mean": mean, "demand_std": std,
        **{c: np.maximum(mean + zz * std, 0).astype(np.float32)
           for c, zz in zip(["q50", "q80", "q90", "q95", "q99"], z)}}, copy=False)
    return stores, products, policy, protection, int(deficit.sum()), int(surplus.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt bench-rebalance", description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--imbalance", type=float, default=0.04,
                        help="share of positions in surplus or deficit (half each; default 0.04)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench_rebalance.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    stores, products, policy, protection, n_def, n_sur = build_chain(args.stores, args.products, args.imbalance,
                                                                     args.seed)
    build_s = time.perf_counter() - started
    rss_data = _peak_rss_gb()
    # Every position may send (the default keeps slow movers back, which would leave the solver
    # little to do on this synthetic chain, where most products sell under one unit a day).
    settings = Settings(transfer_sender_min_daily_demand=0.0)
    started, cpu_started = time.perf_counter(), time.process_time()
    solve: dict = {}
    transfers = plan_transfers(policy, protection, products, stores, settings=settings, run_date=date(2026, 1, 5),
                               stats=solve)
    plan_s = time.perf_counter() - started
    # CPU seconds too: on a shared machine the wall clock also counts other processes' turns.
    plan_cpu = time.process_time() - cpu_started
    load = os.getloadavg()[0]
    # The room on the day the transfers arrive: the stock projected for that day (the plan's rule).
    codes = policy["store_id"].cat.codes.to_numpy()
    room = pd.Series(store_free_space(stores, pd.Index(policy["store_id"].cat.categories), codes,
                                      policy["on_hand"].to_numpy(), policy["on_order"].to_numpy(),
                                      policy["mean_daily_demand"].to_numpy(), settings.transfer_lead_days),
                     index=policy["store_id"].cat.categories)
    received = transfers.groupby("to_store_id")["quantity"].sum() if len(transfers) else pd.Series(dtype=float)
    at_limit = int((received >= room.reindex(received.index)).sum())
    if (received > room.reindex(received.index)).any():
        raise AssertionError("a store received more than its room")
    peak = _peak_rss_gb()
    figures = {
        "positions": int(len(policy)), "stores": args.stores, "products": args.products,
        "deficit_positions": n_def, "surplus_positions": n_sur,
        "transfers": int(len(transfers)), "receiving_stores": int(len(received)),
        "stores_filled_to_capacity": at_limit, "units_moved": int(transfers["quantity"].sum()) if len(transfers) else 0,
        "net_value": float((transfers["value"] - transfers["cost"]).sum()) if len(transfers) else 0.0,
        # The flow without the minimum quantity and trip value bounds the optimum from above.
        "lp_bound_net_value": round(solve["lp_objective"], 2),
        "gap_to_lp_bound": round(1 - solve["objective"] / solve["lp_objective"], 5) if solve["lp_objective"] > 0
        else 0.0,
        "proven_optimal": solve["proven_optimal"], "exact_components": solve["exact_components"],
        "build_seconds": round(build_s, 2), "plan_seconds": round(plan_s, 2),
        "plan_cpu_seconds": round(plan_cpu, 2), "load_average_1min": round(load, 2),
        "peak_rss_gb_after_build": round(rss_data, 3), "peak_rss_gb": round(peak, 3),
        "target_seconds": TARGET_SECONDS, "target_peak_gb": TARGET_PEAK_GB,
        "meets_targets": bool(plan_s <= TARGET_SECONDS and peak <= TARGET_PEAK_GB),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
