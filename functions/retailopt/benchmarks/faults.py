"""`retailopt bench-faults`: the adversarial probe, as a command anyone can run again.

Three parts, each counting what must never happen:
- corrupted input folders (one fault each, on a small generated chain) planned end to end:
  crashes (any error other than the clear input error), runs left RUNNING, and completed runs
  whose files break rows in = accepted + quarantined;
- `retailopt run` killed with SIGKILL at seeded moments, then a `serve` start on the same folder:
  runs still RUNNING afterwards, and rows left behind by failed runs;
- hostile what-if requests to the API: 5xx answers, and invalid settings accepted (202).

Benchmark code only; the domain code it drives is the same `run_planning`, `start_local` and API.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

Fault = Callable[[Path], None]


# ---------------------------------------------------------------- corrupted files


def _csv(folder: Path, table: str) -> Path:
    path = folder / f"{table}.csv"
    if not path.exists():  # the sample writes sales as Parquet: corrupt a CSV copy instead
        parquet = folder / f"{table}.parquet"
        pd.read_parquet(parquet).to_csv(path, index=False)
        parquet.unlink()
    return path


def _edit_cell(table: str, column: str, value: str, row: int = 0) -> Fault:
    def fault(folder: Path) -> None:
        path = _csv(folder, table)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.loc[row, column] = value
        frame.to_csv(path, index=False)
    return fault


def _write_bytes(table: str, data: bytes) -> Fault:
    def fault(folder: Path) -> None:
        for old in folder.glob(f"{table}.*"):
            old.unlink()
        (folder / f"{table}.csv").write_bytes(data)
    return fault


def _reencode(table: str, encoding: str) -> Fault:
    def fault(folder: Path) -> None:
        path = _csv(folder, table)
        text = path.read_text(encoding="utf-8").replace("S", "é", 3)
        path.write_bytes(text.encode(encoding))
    return fault


def _append_line(table: str, line: str) -> Fault:
    def fault(folder: Path) -> None:
        path = _csv(folder, table)
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    return fault


def _drop_column(table: str, column: str) -> Fault:
    def fault(folder: Path) -> None:
        path = _csv(folder, table)
        pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=[column]).to_csv(path, index=False)
    return fault


def _duplicate_rows(table: str) -> Fault:
    def fault(folder: Path) -> None:
        path = _csv(folder, table)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        pd.concat([frame, frame.head(3)]).to_csv(path, index=False)
    return fault


def _stray_sales_dates(folder: Path) -> None:
    """The probe's data-loss case: a second import of two rows dated far apart."""
    path = _csv(folder, "sales")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.iloc[[0, -1]].to_csv(path, index=False)


def _both_formats(folder: Path) -> None:
    pd.read_parquet(folder / "sales.parquet").head(5).to_csv(folder / "sales.csv", index=False)


def _parquet_huge(folder: Path) -> None:
    table = pq.read_table(folder / "sales.parquet")
    units = np.asarray(table.column("units").to_numpy(zero_copy_only=False), dtype="float64")
    units[:3] = [1e20, -1e20, math.inf]
    pq.write_table(table.set_column(table.schema.get_field_index("units"), "units", pa.array(units)),
                   folder / "sales.parquet")


def _parquet_uint64(folder: Path) -> None:
    table = pq.read_table(folder / "sales.parquet")
    units = np.asarray(table.column("units").to_numpy(zero_copy_only=False), dtype="float64").astype("uint64")
    units[0] = np.iinfo("uint64").max
    pq.write_table(table.set_column(table.schema.get_field_index("units"), "units", pa.array(units)),
                   folder / "sales.parquet")


def _deep_nesting_cell(folder: Path) -> None:
    _edit_cell("stores", "name", "[" * 20_000)(folder)


def fault_catalogue() -> dict[str, Fault]:
    """Every fault of the probe, by name (deterministic; each applied to a fresh copy)."""
    faults: dict[str, Fault] = {
        "sales: two stray dates (second import)": _stray_sales_dates,
        "sales: 1e19 units": _edit_cell("sales", "units", "1e19"),
        "sales: 2^63-1 units": _edit_cell("sales", "units", "9223372036854775807"),
        "sales: -1e19 units": _edit_cell("sales", "units", "-1e19"),
        "sales: 2^64 units": _edit_cell("sales", "units", "18446744073709551616"),
        "sales: NaN units": _edit_cell("sales", "units", "NaN"),
        "sales: inf price": _edit_cell("sales", "price", "inf"),
        "sales: negative units": _edit_cell("sales", "units", "-4"),
        "sales: fractional units": _edit_cell("sales", "units", "2.5"),
        "sales: date 2026-02-30": _edit_cell("sales", "sale_date", "2026-02-30"),
        "sales: date in 2999": _edit_cell("sales", "sale_date", "2999-01-01"),
        "sales: unknown store": _edit_cell("sales", "store_id", "NOPE"),
        "sales: zero-width id": _edit_cell("sales", "product_id", "P0001\u200b"),
        "sales: right-to-left id": _edit_cell("sales", "store_id", "\u202eS001"),
        "sales: boolean 'maybe'": _edit_cell("sales", "on_promotion", "maybe"),
        "sales: duplicate keys": _duplicate_rows("sales"),
        "sales: ragged row": _append_line("sales", "2025-01-01,S001,P0001,1,2.0,false,extra,fields"),
        "sales: unclosed quote": _append_line("sales", '2025-01-01,"S001,P0001,1,2.0,false'),
        "sales: NUL bytes": _append_line("sales", "2025-01-01,S\x00001,P0001,1,2.0,false"),
        "sales: latin-1 encoding": _reencode("sales", "latin-1"),
        "sales: UTF-16 encoding": _reencode("sales", "utf-16"),
        "sales: BOM": _reencode("sales", "utf-8-sig"),
        "sales: csv and parquet both present": _both_formats,
        "sales: parquet 1e20 and inf": _parquet_huge,
        "sales: parquet uint64 max": _parquet_uint64,
        "sales: missing column": _drop_column("sales", "units"),
        "sales: empty file": _write_bytes("sales", b""),
        "sales: garbage bytes": _write_bytes("sales", bytes(range(256)) * 8),
        "stores: header only": _write_bytes("stores", b"store_id,name,latitude,longitude,region,receiving_open,"
                                                      b"receiving_close,capacity_units\n"),
        "stores: receiving window ends before it opens": _edit_cell("stores", "receiving_close", "05:00"),
        "stores: latitude 95": _edit_cell("stores", "latitude", "95"),
        "stores: capacity 1e19": _edit_cell("stores", "capacity_units", "1e19"),
        "stores: 20,000 brackets in a name": _deep_nesting_cell,
        "stores: script in a name": _edit_cell("stores", "name", "<script>alert(1)</script>"),
        "stores: time 25:61": _edit_cell("stores", "receiving_open", "25:61"),
        "distribution_centers: lead time -1": _edit_cell("distribution_centers", "lead_time_days", "-1"),
        "distribution_centers: close before open": _edit_cell("distribution_centers", "close_time", "01:00"),
        "distribution_centers: garbage bytes": _write_bytes("distribution_centers", b"\xff\xfe\x00garbage\x00"),
        "products: case pack 0": _edit_cell("products", "case_pack", "0"),
        "products: price 1e400": _edit_cell("products", "price", "1e400"),
        "products: duplicate keys": _duplicate_rows("products"),
        "products: missing column": _drop_column("products", "case_pack"),
        "vehicles: all rows invalid": _write_bytes("vehicles", b"vehicle_id,depot_id,capacity_units,capacity_kg,"
                                                   b"cost_per_km,cost_per_hour,fixed_cost,shift_start,shift_end\n"
                                                   b"V1,NOWHERE,-5,,x,y,z,99:99,nope\n"),
        "vehicles: capacity 9223372036854775808": _edit_cell("vehicles", "capacity_units", "9223372036854775808"),
        "vehicles: shift ends before it starts": _edit_cell("vehicles", "shift_end", "01:00"),
        "vehicles: empty file": _write_bytes("vehicles", b""),
        "inventory: on hand 1e19": _edit_cell("inventory", "on_hand", "1e19"),
        "inventory: unknown product": _edit_cell("inventory", "product_id", "NOPE"),
        "inventory: empty file": _write_bytes("inventory", b""),
        "promotions: empty file": _write_bytes("promotions", b""),
        "promotions: garbage": _write_bytes("promotions", b"\x00\x01\x02 not a csv \xff"),
        "promotions: end before start": _edit_cell("promotions", "end_date", "2000-01-01"),
        "promotions: missing column": _drop_column("promotions", "end_date"),
    }
    return faults


# Faults whose rows are valid data: accepted without a quarantine record (a name is escaped where
# shown; a byte-order mark is not part of the first column's name).
VALID_DESPITE_LOOKS = ("sales: two stray dates (second import)", "stores: script in a name", "sales: BOM",
                       "stores: 20,000 brackets in a name")


@dataclass
class FileFaultResult:
    fault: str
    outcome: str  # COMPLETE, refused (clear input error), crash, data lost, silently accepted
    detail: str = ""
    stuck_runs: int = 0
    unbalanced_files: list[str] = field(default_factory=list)


def _import_counts_balance(kpis: dict[str, Any]) -> list[str]:
    imported = kpis.get("import") or {}
    return [table for table, counts in imported.items() if isinstance(counts, dict) and "rows_in" in counts
            and counts["rows_in"] != counts["accepted"] + counts["quarantined"]]


def run_file_faults(chain: Path, work: Path, faults: dict[str, Fault]) -> list[FileFaultResult]:
    from retailopt.config import load_settings
    from retailopt.ingest import InputError
    from retailopt.pipeline import run_planning
    from retailopt.warehouse import open_warehouse

    results = []
    for number, (name, fault) in enumerate(faults.items()):
        folder = work / f"case{number:02d}"
        shutil.copytree(chain, folder / "in")
        data_dir = folder / "data"
        settings = load_settings({"data_dir": str(data_dir), "routing_time_limit_s": 1}, environ={})
        if name.startswith("sales: two stray dates"):
            run_planning(settings, folder / "in")  # the history the second import must not delete
        fault(folder / "in")
        try:
            result = run_planning(settings, folder / "in")
            outcome = FileFaultResult(name, "COMPLETE", unbalanced_files=_import_counts_balance(result.kpis))
            wh = open_warehouse(settings)
            try:
                found = int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.quarantine` WHERE run_id = @run_id",
                                     {"run_id": result.run_id}).n.iloc[0])
            finally:
                wh.close()
            outcome.detail = f"{found} quarantine records"
            if found == 0 and name not in VALID_DESPITE_LOOKS:
                outcome.outcome = "silently accepted"
            if name.startswith("sales: two stray dates"):
                wh = open_warehouse(settings)
                try:
                    rows = int(wh.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`").n.iloc[0])
                finally:
                    wh.close()
                stored = len(pd.read_parquet(chain / "sales.parquet"))
                outcome.detail += f", sales kept: {rows} of {stored}"
                if rows != stored:
                    outcome.outcome = "data lost"
        except InputError as exc:
            outcome = FileFaultResult(name, "refused", str(exc).splitlines()[0][:160])
        except Exception as exc:  # noqa: BLE001 - counting crashes is the point
            outcome = FileFaultResult(name, "crash", "".join(traceback.format_exception_only(exc)).strip()[:300])
        wh = open_warehouse(settings)
        try:
            wh.ensure_schema()
            outcome.stuck_runs = int(wh.query(
                "SELECT COUNT(*) AS n FROM `{dataset}.runs` WHERE status = 'RUNNING'").n.iloc[0])
        finally:
            wh.close()
        results.append(outcome)
        print(f"  {outcome.outcome:9s} {name}" + (f"  ({outcome.detail})" if outcome.detail else ""), flush=True)
    return results


# ---------------------------------------------------------------- kills


@dataclass
class KillResult:
    delay_s: float
    killed_while_running: bool
    stuck_after_restart: int
    leftover_rows: int


def run_kills(chain: Path, work: Path, kills: int, seed: int) -> list[KillResult]:
    from retailopt import pipeline
    from retailopt.config import load_settings
    from retailopt.services.local import start_local

    rng = random.Random(seed)
    results = []
    for number in range(kills):
        data_dir = work / f"kill{number}"
        delay = round(rng.uniform(1.0, 12.0), 2)
        process = subprocess.Popen(
            [sys.executable, "-m", "retailopt.cli", "run", "--data", str(chain), "--data-dir", str(data_dir),
             "--quiet", "--set", "routing_time_limit_s=5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            process.wait(timeout=delay)
            finished_first = True
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            finished_first = False
        settings = load_settings({"data_dir": str(data_dir)}, environ={})
        local = start_local(settings)  # what `retailopt serve` does at start
        try:
            wh = local.runtime.warehouse
            runs = wh.query("SELECT run_id, status FROM `{dataset}.runs`")
            stuck = int((runs.status == "RUNNING").sum())
            leftover = sum(len(pipeline.read_run_rows(wh, table, run_id))
                           for run_id in runs.run_id[runs.status == "FAILED"] for table in pipeline.RESULT_TABLES)
        finally:
            local.close()
        results.append(KillResult(delay, not finished_first, stuck, leftover))
        print(f"  kill after {delay:5.2f} s: {'killed mid-run' if not finished_first else 'run had finished'}, "
              f"{stuck} stuck, {leftover} partial rows left", flush=True)
    return results


# ---------------------------------------------------------------- API bodies


def hostile_bodies() -> list[tuple[str, bytes]]:
    """POST /runs bodies that must be refused with a 4xx."""
    too_deep = b"[" * 100_000 + b"]" * 100_000
    overrides = {
        "history_days": 1e7, "review_period_days": 1e9, "routing_time_limit_s": "Infinity",
        "handling_cost_per_unit": -1e308, "speed_kmh": "inf", "holding_cost_rate": -0.5,
        "horizon_days": 0, "service_level": 1.5, "fleet_max_vehicles": 0, "seed": -1,
        "min_transfer_units": 2.5, "max_transfer_km": "NaN",
    }
    bodies = [(f"overrides.{name}={value}", json.dumps({"run_date": "2026-01-15", "overrides": {name: value}}).encode())
              for name, value in overrides.items()]
    bodies += [
        ("NaN literal", b'{"run_date": "2026-01-15", "overrides": {"speed_kmh": NaN}}'),
        ("Infinity literal", b'{"run_date": "2026-01-15", "overrides": {"speed_kmh": Infinity}}'),
        ("1e400", b'{"run_date": "2026-01-15", "overrides": {"speed_kmh": 1e400}}'),
        ("100 KB of brackets", too_deep[:50_000] + too_deep[-50_000:]),
        ("deep object", b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
        ("not JSON", b"{run_date: tomorrow"),
        ("invalid UTF-8", b'{"run_date": "\xff\xfe"}'),
        ("array", b"[1, 2, 3]"),
        ("bad date", b'{"run_date": "2026-02-30"}'),
        ("unknown override", b'{"run_date": "2026-01-15", "overrides": {"warehouse": "bigquery"}}'),
    ]
    return bodies


def run_api_checks(work: Path) -> list[tuple[str, int]]:
    from retailopt.config import load_settings
    from retailopt.services.local import start_local

    local = start_local(load_settings({"data_dir": str(work / "api")}, environ={}))
    try:
        client = local.api_client()
        answers = []
        for name, body in hostile_bodies():
            status = client.post("/runs", content=body, headers={"Content-Type": "application/json"}).status_code
            answers.append((name, status))
        for path in ("/runs/unknown-run", "/runs/" + "x" * 128, "/runs/%00", "/plans/latest", "/runs/a/b/c"):
            answers.append((f"GET {path}", client.get(path).status_code))
        local.wait_idle(60)
    finally:
        local.close()
    return answers


# ---------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retailopt bench-faults", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=9, help="runs to SIGKILL (default 9)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill moments")
    parser.add_argument("--skip-files", action="store_true", help="leave out the corrupted files")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    from retailopt.sample import generate_sample_chain

    args = build_parser().parse_args(argv)
    # The import logs every quarantined row as a warning; the figures are the output here.
    logging.getLogger("retailopt").setLevel(logging.ERROR)
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="retailopt-faults-") as tmp:
        work = Path(tmp)
        chain = work / "chain"
        generate_sample_chain(chain, n_stores=4, n_products=8, days=90)
        if not args.skip_files:
            faults = fault_catalogue()
            print(f"corrupted input folders: {len(faults)}", flush=True)
            files = run_file_faults(chain, work, faults)
            figures["files"] = {
                "tried": len(files),
                "complete": sum(r.outcome == "COMPLETE" for r in files),
                "refused_clearly": sum(r.outcome == "refused" for r in files),
                "crashes": [r.fault + ": " + r.detail for r in files if r.outcome == "crash"],
                "silently_accepted": [r.fault for r in files if r.outcome == "silently accepted"],
                "data_lost": [r.fault + ": " + r.detail for r in files if r.outcome == "data lost"],
                "stuck_runs": sum(r.stuck_runs for r in files),
                "unbalanced": [f"{r.fault}: {', '.join(r.unbalanced_files)}" for r in files if r.unbalanced_files],
            }
        if args.kills:
            print(f"kills: {args.kills}", flush=True)
            kills = run_kills(chain, work, args.kills, args.seed)
            figures["kills"] = {"tried": len(kills), "killed_mid_run": sum(k.killed_while_running for k in kills),
                                "stuck_after_restart": sum(k.stuck_after_restart for k in kills),
                                "leftover_partial_rows": sum(k.leftover_rows for k in kills)}
        print("hostile API requests", flush=True)
        answers = run_api_checks(work)
        figures["api"] = {"tried": len(answers), "server_errors": [f"{n}: {s}" for n, s in answers if s >= 500],
                          "accepted_invalid": [n for n, s in answers if 200 <= s < 300 and not n.startswith("GET")]}
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    bad = (figures.get("files", {}).get("crashes") or figures.get("files", {}).get("data_lost")
           or figures.get("files", {}).get("silently_accepted")
           or figures.get("files", {}).get("stuck_runs") or figures.get("kills", {}).get("stuck_after_restart")
           or figures["api"]["server_errors"] or figures["api"]["accepted_invalid"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
