"""`retailopt bench-run`: wall time and peak memory of each step of a whole planning run.

The run happens in a child process so its memory is measured alone (the chain is generated
beforehand and not counted). The child reports when each step starts; meanwhile this process
samples the resident memory of the child and every process it starts (the forecast's workers
too) ten times a second, so each step gets its wall time and the peak of the whole process tree
while it ran.
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
from pathlib import Path

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
    args = parser.parse_args(argv)
    from retailopt.config import load_settings
    from retailopt.pipeline import run_planning

    overrides = dict(item.split("=", 1) for item in args.set)
    overrides["data_dir"] = str(args.data_dir)
    settings = load_settings(overrides)
    with args.steps_file.open("a", encoding="utf-8") as log:
        def progress(step: str) -> None:
            log.write(json.dumps({"step": step, "t": time.time()}) + "\n")
            log.flush()

        progress("setup")
        result = run_planning(settings, args.data, progress=progress)
        log.write(json.dumps({"step": "end", "t": time.time(), "summary": str(result.summary_path)}) + "\n")
    return 0


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
    started = time.perf_counter()
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
    end = next(e for e in events if e["step"] == "end")
    starts = [(e["step"], e["t"]) for e in events if e["step"] != "end"]
    steps = per_step(starts, end["t"], sampler.samples)
    peak_mb = max([x[1] for x in sampler.samples] + [peak_single_mb])
    cpu_s = sampler.samples[-1][2] if sampler.samples else None
    load = os.getloadavg()
    summary = json.loads(Path(end["summary"]).read_text())
    kpis = summary["kpis"]
    # With --sample, --stores and --products say the folder's size (for the targets).
    target_s, target_mb = TARGETS.get((args.stores, args.products), (None, None))
    meets = target_s is None or (wall <= target_s and peak_mb <= target_mb)
    problems_path = Path(end["summary"]).parent / "routing_problems.json"
    problems = json.loads(problems_path.read_text()) if problems_path.exists() else []
    figures = {"stores": args.stores, "products": args.products, "days": args.days,
               "sample": str(args.sample) if args.sample else None, "settings": args.set,
               "wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb, 1), "cpu_s": cpu_s,
               "load_average_1_5_15": [round(x, 2) for x in load], "cores": os.cpu_count(), "steps": steps,
               "steps_s": summary["timings_s"], "routing_problems": problems, "kpis": kpis,
               "target_wall_s": target_s, "target_peak_mb": target_mb, "meets_targets": meets}
    target = f" (target <= {target_s:.0f} s, <= {target_mb:.0f} MB)" if target_s else ""
    print(f"whole run: {wall:.1f} s, peak memory {peak_mb:.0f} MB{target}; CPU {cpu_s or 0:.0f} s; "
          f"load average {load[0]:.1f} on {os.cpu_count()} cores (other work slows the wall times)")
    print(f"  {'step':<12} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
    for row in steps:
        peak = f"{row['peak_mb']:8.0f}" if row["peak_mb"] is not None else f"{'-':>8}"
        print(f"  {row['step']:<12} {row['wall_s']:8.2f} {row.get('cpu_s', 0):8.1f} {peak}")
    for step in ("policy", "rebalancing", "routing", "routing_solve"):
        if step in summary["timings_s"]:
            print(f"    {step:<14} {summary['timings_s'][step]:8.2f} s")
    for p in problems:
        print(f"    routing problem {p['name']}: {p['offered']}/{p['shipments']} loads offered, {p['vehicles']} "
              f"vehicles, limit {p['time_limit_s']:.2f} s, solved in {p['solve_s']:.2f} s, {p['routed']} routed")
    print(f"  loads: {kpis.get('shipments', 0)}, unrouted {kpis.get('shipments_unrouted', 0)} "
          f"({kpis.get('units_unrouted', 0)} units, value {kpis.get('value_unrouted', 0):,.2f}); "
          f"vehicles {kpis.get('vehicles_used', 0)}, units routed {kpis.get('units_routed', 0)}")
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"figures: {args.out}")
    return 0 if meets else 1


if __name__ == "__main__":
    sys.exit(main())
