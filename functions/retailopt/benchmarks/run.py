"""`retailopt bench-run`: wall time and peak memory of each step of a whole planning run.

The run happens in a child process so its memory is measured alone (the chain is generated
beforehand and not counted). The child reports when each step starts; meanwhile this process
samples the resident memory of the child and every process it starts (the forecast's workers
too) ten times a second, so each step gets its wall time and the peak of the whole process tree
while it ran.

A chain's first plan routes nothing: its lines arrive after their lead time, and the routes of
their delivery day carry them once released. So by default the child then releases the first plan
as planned and plans that delivery day too (no import), and its routing is reported beside the
first run's figures: the loads routed and those left with their value. The targets apply to the
first run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retailopt.config import Settings

# The figures issue 17 asks of one machine (2 cores, 24 GB): chain size -> (seconds, MB).
TARGETS = {(25, 300): (26.0, 1024.0), (100, 1000): (180.0, 4096.0), (500, 2000): (1800.0, 16384.0)}
SAMPLE_S = 0.1


def _tree(root: int) -> tuple[float, float]:
    """Resident memory (MB) and CPU seconds used so far of `root` and its descendants (Linux /proc;
    the CPU of children already gone is in their parent's cutime/cstime)."""
    total, cpu, todo, seen = 0, 0.0, [root], set()
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += sum(int(x) for x in fields[11:15]) / tick  # utime, stime, cutime, cstime
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total / 2**20, cpu


def _tree_rss_mb(root: int) -> float:
    return _tree(root)[0]


class _Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            mb, cpu = _tree(self.pid)
            self.samples.append((time.time(), mb, cpu))
            self.stop.wait(SAMPLE_S)


def per_step(starts: list[tuple[str, float]], end: float, samples: list[tuple]) -> list[dict]:
    """Each step's wall time, the peak memory sampled while it ran and, when samples carry the
    tree's CPU seconds, the CPU it used (a figure a busy machine does not inflate). Pure."""
    out = []
    for k, (step, begin) in enumerate(starts):
        finish = starts[k + 1][1] if k + 1 < len(starts) else end
        inside = [x for x in samples if begin <= x[0] <= finish]
        row = {"step": step, "wall_s": round(finish - begin, 2),
               "peak_mb": round(max(x[1] for x in inside), 1) if inside else None}
        if samples and len(samples[0]) > 2:
            before = [x[2] for x in samples if x[0] <= begin]
            upto = [x[2] for x in samples if x[0] <= finish]
            row["cpu_s"] = round((upto[-1] if upto else 0.0) - (before[-1] if before else 0.0), 1)
        out.append(row)
    return out


def _child(argv: list[str]) -> int:
    """Run the planning in this process, writing each step's start time to the steps file."""
    parser = argparse.ArgumentParser(prog="retailopt bench-run --child")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--steps-file", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--delivery-day", action="store_true")
    args = parser.parse_args(argv)
    from retailopt.config import load_settings
    from retailopt.pipeline import run_planning

    overrides = dict(item.split("=", 1) for item in args.set)
    overrides["data_dir"] = str(args.data_dir)
    settings = load_settings(overrides)
    with args.steps_file.open("a", encoding="utf-8") as log:
        def event(step: str, **more: object) -> None:
            log.write(json.dumps({"step": step, "t": time.time(), **more}) + "\n")
            log.flush()

        event("setup")
        result = run_planning(settings, args.data, progress=event)
        event("end", summary=str(result.summary_path))
        if args.delivery_day:
            event("release")
            day = _release_first_plan(settings, result.run_id, result.run_date)
            event(f"{DAY_PREFIX}setup")
            later = run_planning(load_settings({**overrides, "run_date": day.isoformat()}),
                                 progress=lambda step: event(DAY_PREFIX + step))
            event("delivery_end", summary=str(later.summary_path), run_date=day.isoformat())
    return 0


# The delivery day's steps are reported under this prefix.
DAY_PREFIX = "delivery "


def _release_first_plan(settings: "Settings", run_id: str, run_date: date) -> date:
    """Release the first plan as planned and return the day its distribution-centre orders arrive
    (the run date plus the longest lead time): the day whose routes carry them."""
    from datetime import datetime, timedelta, timezone

    from retailopt.dispatch.ledger import commit_as_planned
    from retailopt.pipeline import get_run, read_table
    from retailopt.warehouse import open_warehouse

    wh = open_warehouse(settings)
    try:
        commit_as_planned(wh, get_run(wh, run_id), released_by="bench-run",
                          released_at=datetime.now(timezone.utc))
        lead = read_table(wh, "distribution_centers")["lead_time_days"].max()
    finally:
        wh.close()
    return run_date + timedelta(days=int(lead) if lead == lead else 1)


def _run_figures(steps: list[dict], summary_path: str, wall: float, peak_mb: float, cpu_s: float | None
                 ) -> dict:
    """A planning run's figures: time, memory, CPU, steps, routing problems and KPIs."""
    summary = json.loads(Path(summary_path).read_text())
    problems_path = Path(summary_path).parent / "routing_problems.json"
    problems = json.loads(problems_path.read_text()) if problems_path.exists() else []
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb, 1), "cpu_s": cpu_s, "steps": steps,
            "steps_s": summary["timings_s"], "routing_problems": problems, "kpis": summary["kpis"]}


def _print_run(title: str, run: dict) -> None:
    print(f"  {'step':<20} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
    for row in run["steps"]:
        peak = f"{row['peak_mb']:8.0f}" if row["peak_mb"] is not None else f"{'-':>8}"
        print(f"  {row['step']:<20} {row['wall_s']:8.2f} {row.get('cpu_s', 0):8.1f} {peak}")
    for step in ("policy", "rebalancing", "routing", "routing_solve"):
        if step in run["steps_s"]:
            print(f"    {step:<14} {run['steps_s'][step]:8.2f} s")
    for p in run["routing_problems"]:
        print(f"    routing problem {p['name']}: {p['offered']}/{p['shipments']} loads offered, {p['vehicles']} "
              f"vehicles, limit {p['time_limit_s']:.2f} s, solved in {p['solve_s']:.2f} s, {p['routed']} routed")
    kpis = run["kpis"]
    print(f"  {title} loads: {kpis.get('shipments', 0)}, unrouted {kpis.get('shipments_unrouted', 0)} "
          f"({kpis.get('units_unrouted', 0)} units, value {kpis.get('value_unrouted', 0):,.2f}); "
          f"vehicles {kpis.get('vehicles_used', 0)}, units routed {kpis.get('units_routed', 0)}"
          + (f"; {kpis['units_arriving_later']:,} units arrive later" if kpis.get("units_arriving_later") else ""))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="retailopt bench-run", description=__doc__)
    parser.add_argument("--stores", type=int, default=25)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--sample", type=Path, default=None,
                        help="plan this folder of input files instead of generating a chain (--stores and "
                             "--products then say its size, for the targets)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a setting for the run")
    parser.add_argument("--out", type=Path, default=Path("bench-run.json"))
    parser.add_argument("--no-delivery-day", dest="delivery_day", action="store_false",
                        help="only the first run (by default the first plan is then released and the day its "
                             "centre orders arrive is planned too, so routing is measured on a day with loads)")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="retailopt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sample = args.sample
    if sample is None:
        from retailopt.sample import generate_sample_chain

        sample = work / "sample"
        started = time.perf_counter()
        generate_sample_chain(sample, n_stores=args.stores, n_products=args.products, days=args.days)
        print(f"chain of {args.stores} stores x {args.products} products x {args.days} days generated in "
              f"{time.perf_counter() - started:.1f} s (not counted)")
    steps_file = work / "bench-steps.jsonl"
    steps_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "retailopt.benchmarks.run", "--child", "--data", str(sample),
               "--data-dir", str(work / "run"), "--steps-file", str(steps_file)]
    for item in args.set:
        command += ["--set", item]
    if args.delivery_day:
        command.append("--delivery-day")
    started, started_at = time.perf_counter(), time.time()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = _Sampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    sampler.stop.set()
    sampler.join()
    wall = time.perf_counter() - started
    peak_single_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if proc.returncode != 0:
        print(out, err, file=sys.stderr)
        return proc.returncode
    events = [json.loads(line) for line in steps_file.read_text(encoding="utf-8").splitlines()]
    load = os.getloadavg()
    samples = sampler.samples
    # The first run: from the child's start to the end of its publish step (the targets apply to it).
    end = next(e for e in events if e["step"] == "end")
    starts = [(e["step"], e["t"]) for e in events if e["t"] <= end["t"] and e["step"] != "end"]
    first = [x for x in samples if x[0] <= end["t"]]
    peak_mb = max([x[1] for x in first] + ([peak_single_mb] if not args.delivery_day else [0.0]))
    first_wall = end["t"] - started_at
    run = _run_figures(per_step(starts, end["t"], samples), end["summary"], first_wall, peak_mb,
                       first[-1][2] if first else None)
    # With --sample, --stores and --products say the folder's size (for the targets).
    target_s, target_mb = TARGETS.get((args.stores, args.products), (None, None))
    meets = target_s is None or (first_wall <= target_s and peak_mb <= target_mb)
    figures = {"stores": args.stores, "products": args.products, "days": args.days,
               "sample": str(args.sample) if args.sample else None, "settings": args.set,
               **run, "load_average_1_5_15": [round(x, 2) for x in load], "cores": os.cpu_count(),
               "target_wall_s": target_s, "target_peak_mb": target_mb, "meets_targets": meets}
    target = f" (target <= {target_s:.0f} s, <= {target_mb:.0f} MB)" if target_s else ""
    print(f"first run (import and plan): {first_wall:.1f} s, peak memory {peak_mb:.0f} MB{target}; "
          f"CPU {run['cpu_s'] or 0:.0f} s; load average {load[0]:.1f} on {os.cpu_count()} cores "
          "(other work slows the wall times)")
    _print_run("first run", run)
    delivered = next((e for e in events if e["step"] == "delivery_end"), None)
    if delivered is not None:
        release = next(e for e in events if e["step"] == "release")
        later = [x for x in samples if release["t"] <= x[0] <= delivered["t"]]
        day_starts = [(e["step"], e["t"]) for e in events if release["t"] <= e["t"] < delivered["t"]]
        day = _run_figures(per_step(day_starts, delivered["t"], samples), delivered["summary"],
                           delivered["t"] - release["t"], max((x[1] for x in later), default=0.0),
                           round(later[-1][2] - first[-1][2], 1) if later and first else None)
        figures["delivery_day"] = {"run_date": delivered["run_date"], **day}
        print(f"delivery day {delivered['run_date']} (the first plan released; its centre orders arrive): "
              f"{day['wall_s']:.1f} s, peak memory {day['peak_rss_mb']:.0f} MB, CPU {day['cpu_s'] or 0:.0f} s")
        _print_run("delivery day", day)
    figures["whole_wall_s"] = round(wall, 2)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"figures: {args.out}")
    return 0 if meets else 1


if __name__ == "__main__":
    sys.exit(main())
