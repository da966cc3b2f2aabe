"""The `retailopt` command."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from retailopt.config import ConfigError, load_settings

# Commands implemented by a module's own `main(argv)`.
DELEGATED = {
    "generate-sample": ("retailopt.sample", "Write the sample chain's input files"),
    "solve-routes": ("retailopt.routing.cli", "Solve an OptimizeToursRequest JSON file locally"),
    "replay": ("retailopt.replay", "Replay held-out demand to compare planning policies"),
    "serve": ("retailopt.services.serve", "Run the HTTP API and event handlers on this machine"),
    "bench-run": ("retailopt.benchmarks.run", "Benchmark the whole planning run (time, memory)"),
    "bench-forecast": ("retailopt.benchmarks.forecasting", "Benchmark the forecasting engine"),
    "bench-rebalance": ("retailopt.benchmarks.rebalance", "Benchmark rebalancing at 20 million positions"),
    "bench-pricing": ("retailopt.benchmarks.pricing", "Transfers' route charge against their real marginal cost"),
    "bench-routing": ("retailopt.benchmarks.routing", "Benchmark the routing solver on Li & Lim"),
    "bench-api": ("retailopt.benchmarks.api", "Load-test the HTTP API on loopback"),
    "bench-faults": ("retailopt.benchmarks.faults", "Corrupted files, killed runs, hostile API requests"),
    "bench-workbench": ("retailopt.benchmarks.workbench", "Time every workbench page on a 20-million-position plan"),
}
STEPS = ("import", "forecast", "plan", "publish")


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects NAME=VALUE, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


def _settings(args: argparse.Namespace):
    overrides = _overrides(args.set)
    overrides["data_dir"] = str(args.data_dir)
    return load_settings(overrides)


def _run(args: argparse.Namespace, data: Path | None, after=None) -> int:
    """The planning run; `after(settings, result)` may add lines to the summary (the demo's replay)."""
    from retailopt.ingest import InputError
    from retailopt.pipeline import run_planning

    from retailopt.loading import DateRange

    settings = _settings(args)
    raw_range = getattr(args, "replace_sales", None)
    try:
        replace_sales = DateRange.parse(raw_range) if raw_range else None
    except ValueError as exc:
        print(f"error: --replace-sales: {exc}", file=sys.stderr)
        return 2
    bar = tqdm(total=len(STEPS) if data else len(STEPS) - 1, desc="planning run", unit="step",
               disable=args.quiet, file=sys.stderr)

    begun: list[str] = []

    def progress(step: str) -> None:
        if begun:
            bar.update(1)
        begun.append(step)
        bar.set_description(f"planning run: {step}")

    started = time.perf_counter()
    try:
        result = run_planning(settings, data, progress=progress, replace_sales=replace_sales)
    except InputError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.update(bar.total - bar.n)
    bar.close()
    k = result.kpis
    print(f"\nRun {result.run_id} for {result.run_date} COMPLETE in {time.perf_counter() - started:.1f} s")
    imported = k.get("import")
    if imported:
        rows = {t: v for t, v in imported.items() if isinstance(v, dict)}
        print("  input rows: " + ", ".join(f"{t} {v['accepted']}/{v['rows_in']}" for t, v in rows.items())
              + f"; quarantined {sum(v['quarantined'] for v in rows.values())}")
    print(f"  stores at stockout risk: {k['stores_at_risk_before']} before, {k['stores_at_risk_after']} after "
          f"({k['positions_at_risk_before']} -> {k['positions_at_risk_after']} positions)")
    print(f"  transfers: {k['transfers']} moving {k['units_moved']} units (value {k['transfer_value']:,.2f}, "
          f"cost {k['transfer_cost']:,.2f}); orders: {k['orders']} for {k['units_ordered']} units")
    print(f"  routes: {k['vehicles_used']} vehicles, {k['route_km']:,.1f} km, {k.get('route_co2_kg', 0):,.1f} kg CO2e, "
          f"cost {k['route_cost']:,.2f}; "
          f"{k.get('units_routed', 0)} units on trucks, {k.get('units_unrouted', 0)} waiting for one "
          f"({k.get('shipments_unrouted', 0)} of {k.get('shipments', 0)} loads, value {k.get('value_unrouted', 0):,.2f})")
    if k.get("units_arriving_later"):
        # Lines arrive after their lead time: the routes of their delivery day carry them, once released.
        print(f"  arriving later: {k['units_arriving_later']:,} units of this plan are due after {result.run_date} "
              "and travel on the routes of their delivery day once the plan is released (docs/dispatch.md)")
    # release_mode=auto is a chain without a review step: the CLI releases as the services do.
    if getattr(args, "release", False) or settings.release_mode == "auto":
        print(f"  {_release(settings, result.run_id)}")
    for line in after(settings, result) if after else []:
        print(f"  {line}")
    print(f"  report: {result.artifacts_dir / 'report.html'}")
    print(f"summary: {result.summary_path}")
    return 0


def _release(settings, run_id: str) -> str:
    """Release the plan without review: every line as planned (no approval step on one machine)."""
    import getpass
    from datetime import datetime, timezone

    from retailopt.dispatch import ledger
    from retailopt.pipeline import get_run
    from retailopt.warehouse import open_warehouse

    import os

    from retailopt.dispatch import fleet

    wh = open_warehouse(settings)
    try:
        run = get_run(wh, run_id)
        lines = ledger.commit_as_planned(wh, run, released_by=f"cli:{getpass.getuser()}",
                                         released_at=datetime.now(timezone.utc))
        if os.environ.get("RETAILOPT_FLEET_ENGINE", "local") == "cloud":
            from google.maps import fleetengine_delivery_v1 as fe

            client, parent = fe.DeliveryServiceClient(), fleet.provider(settings.project)
        else:
            from retailopt.dispatch.local_fleet import local_client

            client, parent = local_client(wh), fleet.provider(None)
        done = fleet.dispatch_run(wh, client, run, parent=parent, visit_minutes=settings.visit_minutes)
    finally:
        wh.close()
    return (f"released: {lines} lines; dispatched {done.tasks} tasks on {done.vehicles} vehicles "
            f"({done.units} units delivered today; later lines go on the routes of their delivery days)")


def _demo(args: argparse.Namespace, sample_dir: Path) -> int:
    """Plan the sample chain while a replay of its held-out weeks runs in a second process; then
    store the replay in replay_results and write the report again so that it shows the comparison."""
    if args.replay_weeks <= 0:
        return _run(args, sample_dir)
    from retailopt.replay import ReplayError, ReplayInBackground, save_results, summary_lines

    replay = ReplayInBackground(sample_dir, _settings(args), weeks=args.replay_weeks)

    def after(settings, result) -> list[str]:
        from retailopt.report import refresh_report
        from retailopt.warehouse import open_warehouse

        try:
            results = replay.result()
        except ReplayError as exc:  # the plan stands; say why the comparison is missing
            print(f"error: the replay failed: {exc}", file=sys.stderr)
            return ["replay: failed (see the error above); the report has no comparison"]
        save_results(results, settings)
        wh = open_warehouse(settings)
        try:
            refresh_report(wh, result.run_id, result.artifacts_dir)
        finally:
            wh.close()
        return summary_lines(results) + [
            f"replay table: {settings.dataset}.replay_results (replay_id {results['replay_id'].iat[0]})"]

    try:
        return _run(args, sample_dir, after)
    finally:
        replay.cancel()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module = importlib.import_module(DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]) or 0)

    parser = argparse.ArgumentParser(prog="retailopt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="working folder: warehouse file, run artifacts (default: ./data)")
    common.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a setting, e.g. --set service_level=0.97 (repeatable)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_argument("-v", "--verbose", action="store_true")
    demo = sub.add_parser("demo", parents=[common], help="Generate the sample chain and plan it")
    demo.add_argument("--regenerate", action="store_true", help="write the sample files again")
    demo.add_argument("--replay-weeks", type=int, default=4, metavar="N",
                      help="also replay the last N weeks of the sample's sales to compare policies, beside the "
                           "planning run (default 4; 0 skips)")
    run = sub.add_parser("run", parents=[common], help="Plan a chain from a folder of CSV/Parquet files")
    run.add_argument("--data", type=Path, help="folder of input files to import first")
    run.add_argument("--replace-sales", metavar="FIRST:LAST",
                     help="the files replace every stored sale of these days (YYYY-MM-DD:YYYY-MM-DD); without "
                          "it a sales file only adds or corrects the rows it holds")
    run.add_argument("--release", action="store_true",
                     help="release the plan as planned once it is complete (no review step; also the "
                          "default with release_mode=auto): its lines are committed, routed on their delivery "
                          "day and counted on order by the next plans")
    for name, (_, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            from retailopt.sample import generate_sample_chain

            sample_dir = args.data_dir / "sample"
            # promotions.csv too: a sample written before the promotion plan existed is redone.
            if args.regenerate or not all((sample_dir / f).exists() for f in ("sales.parquet", "promotions.csv")):
                print(f"writing the sample chain to {sample_dir}", file=sys.stderr)
                generate_sample_chain(sample_dir)
            return _demo(args, sample_dir)
        return _run(args, args.data)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
