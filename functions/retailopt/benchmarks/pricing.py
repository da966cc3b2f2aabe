"""What a plan's transfers are charged against what they really add to their day's routes
(`retailopt bench-pricing`, issue 14).

Plans a chain once (import, forecast, plan) with the transfers' lead time set to the orders' own
(`--transfer-lead-days`),
so the transfers travel on the same day as the distribution-centre orders arriving then: the case
where pricing them alone on vans of their own overcharged them. Then routes that delivery day
twice with the plan's fleet and time limit, with and without the transfers (each solve repeated,
the costs averaged: one solve is a time-limited search, so one difference is noisy), and prints:

- charged: what the plan's `transfers.cost` charges for the routes (cost less handling);
- real marginal: the day's cost (routes plus penalties of loads left behind) with the transfers
  less without them;
- proxy: what the per-unit moving cost (km x transport_cost_per_unit_km) would have charged.

The pricing is honest when charged / real marginal is within 1 +- 0.15.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import pandas as pd

TOLERANCE = 0.15


@dataclass
class PricingFigures:
    day: str
    transfer_lines: int
    transfer_units: int
    transfer_value: float
    order_lines_due: int
    charged: float
    proxy: float
    cost_with: float
    cost_without: float
    real_marginal: float
    ratio: float
    within_tolerance: bool
    plan_s: float
    pricing_s: float
    solves: int


def day_cost(transfers: pd.DataFrame, orders: pd.DataFrame, stores: pd.DataFrame, dcs: pd.DataFrame,
             fleet: pd.DataFrame, products: pd.DataFrame, *, day: date, settings) -> float:
    """The day's routes' cost plus the penalties of the loads they leave behind (solved once)."""
    from retailopt.routing.engine import solve_routes_by_problem
    from retailopt.routing.loads import assign_shipments
    from retailopt.routing.request import build_request

    moved, ordered = assign_shipments(transfers.drop(columns=["shipment_id"], errors="ignore"),
                                      orders.drop(columns=["shipment_id"], errors="ignore"), fleet, products)
    request = build_request(moved, ordered, stores, dcs, fleet, products, run_date=day, settings=settings)
    response = solve_routes_by_problem(request, settings=settings).response
    routes = sum(float(r.route_total_cost) for r in response.routes if len(r.visits))
    return routes + sum(float(s.penalty_cost) for s in response.skipped_shipments)


def measure(settings, run_id: str, *, repeats: int, plan_s: float) -> PricingFigures:
    """Charged against real marginal cost for the transfers of `run_id` (planned with `settings`)."""
    from retailopt.pipeline import read_run_rows, read_table
    from retailopt.routing.fleet import select_fleet
    from retailopt.warehouse import open_warehouse

    wh = open_warehouse(settings)
    try:
        # A line larger than a vehicle is one row per load, its units and money shared out.
        transfers = read_run_rows(wh, "transfers", run_id)
        orders = read_run_rows(wh, "replenishment_orders", run_id)
        stores, dcs, products = (read_table(wh, t) for t in ("stores", "distribution_centers", "products"))
        fleet = select_fleet(read_table(wh, "vehicles"), settings)
        timings = json.loads(wh.query("SELECT timings FROM `{dataset}.runs` WHERE run_id = @run_id",
                                      {"run_id": run_id}).timings.iloc[0] or "{}")
    finally:
        wh.close()
    if transfers.empty:
        raise SystemExit("the plan moves nothing between stores: no transfer to price")
    arrival = pd.to_datetime(transfers["expected_arrival"]).dt.date
    day = arrival.min()
    transfers = transfers[arrival == day]
    orders = orders[pd.to_datetime(orders["expected_arrival"]).dt.date == day]
    handling = settings.handling_cost_per_unit
    units = int(transfers["quantity"].sum())
    charged = float(transfers["cost"].sum()) - units * handling
    proxy = float((transfers["distance_km"] * transfers["quantity"]).sum() * settings.transport_cost_per_unit_km)
    args = (stores, dcs, fleet, products)
    with_them = [day_cost(transfers, orders, *args, day=day, settings=settings) for _ in range(repeats)]
    without = [day_cost(transfers.iloc[:0], orders, *args, day=day, settings=settings) for _ in range(repeats)]
    cost_with, cost_without = sum(with_them) / repeats, sum(without) / repeats
    real = cost_with - cost_without
    ratio = charged / real if real > 0 else float("inf")
    return PricingFigures(day=day.isoformat(), transfer_lines=len(transfers), transfer_units=units,
                          transfer_value=round(float(transfers["value"].sum()), 2), order_lines_due=len(orders),
                          charged=round(charged, 2), proxy=round(proxy, 2), cost_with=round(cost_with, 2),
                          cost_without=round(cost_without, 2), real_marginal=round(real, 2), ratio=round(ratio, 3),
                          within_tolerance=abs(ratio - 1) <= TOLERANCE, plan_s=round(plan_s, 1),
                          pricing_s=round(float(timings.get("transfer_pricing", 0.0)), 1), solves=2 * repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt bench-pricing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a chain's input folder (default: generate one)")
    parser.add_argument("--seed", type=int, default=42, help="generated chain: seed (42 is the sample)")
    parser.add_argument("--stores", type=int, default=25)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--work", type=Path, help="folder for the chain and the warehouse (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=2, help="solves of the day with and without the transfers")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per routing solve")
    parser.add_argument("--transfer-lead-days", type=int, default=2,
                        help="the distribution centres' lead time, so transfers arrive with the orders (2 in the "
                             "generated chains)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="another setting")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    from retailopt.config import load_settings
    from retailopt.pipeline import run_planning

    with tempfile.TemporaryDirectory(prefix="bench-pricing-") as scratch:
        work = args.work or Path(scratch)
        data = args.data
        if data is None:
            from retailopt.sample import generate_sample_chain

            data = work / "chain"
            generate_sample_chain(data, seed=args.seed, n_stores=args.stores, n_products=args.products,
                                  days=args.days)
        overrides = dict(item.split("=", 1) for item in args.set)
        # Transfers arrive with the orders, so both share the day's vans.
        settings = load_settings({"data_dir": str(work / "run"), "routing_time_limit_s": args.time_limit,
                                  "transfer_lead_days": args.transfer_lead_days, **overrides})
        started = time.perf_counter()
        result = run_planning(settings, data)
        plan_s = time.perf_counter() - started
        if result.status != "COMPLETE":
            print(f"the run ended {result.status}: {result.error}", file=sys.stderr)
            return 1
        figures = measure(settings, result.run_id, repeats=args.repeats, plan_s=plan_s)
    print(f"delivery day {figures.day}: {figures.transfer_lines:,} transfer lines ({figures.transfer_units:,} units, "
          f"value {figures.transfer_value:,.2f}) beside {figures.order_lines_due:,} order lines")
    print(f"  day's cost with the transfers {figures.cost_with:,.2f}, without {figures.cost_without:,.2f} "
          f"(mean of {args.repeats} solves of {args.time_limit:g} s each)")
    print(f"  charged {figures.charged:,.2f}   real marginal {figures.real_marginal:,.2f}   ratio {figures.ratio:.3f}"
          f"   ({'within' if figures.within_tolerance else 'outside'} 1 +- {TOLERANCE:.2f})")
    print(f"  per-unit proxy would have charged {figures.proxy:,.2f}; pricing took {figures.pricing_s:.1f} s of a "
          f"{figures.plan_s:.1f} s run")
    if args.out:
        args.out.write_text(json.dumps(asdict(figures), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
