"""`retailopt bench-run`: wall time per step and peak memory of a whole planning run.

The run happens in a child process so its peak memory is measured alone (the sample chain is
generated beforehand and not counted).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS, TARGET_MB = 90.0, 2048.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt bench-run", description=__doc__)
    parser.add_argument("--stores", type=int, default=25)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("bench-run.json"))
    args = parser.parse_args(argv)

    from retailopt.sample import generate_sample_chain

    work = args.work or Path(tempfile.mkdtemp(prefix="retailopt-bench-"))
    sample = work / "sample"
    generate_sample_chain(sample, n_stores=args.stores, n_products=args.products, days=args.days)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "retailopt.cli", "run", "--data", str(sample),
                           "--data-dir", str(work / "run"), "--quiet"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return proc.returncode
    summary_path = proc.stdout.split("summary: ")[-1].strip()
    summary = json.loads(Path(summary_path).read_text())
    figures = {"stores": args.stores, "products": args.products, "days": args.days,
               "wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb, 1), "steps_s": summary["timings_s"],
               "kpis": summary["kpis"], "target_wall_s": TARGET_SECONDS, "target_peak_mb": TARGET_MB,
               "meets_targets": wall <= TARGET_SECONDS and peak_mb <= TARGET_MB}
    print(f"whole run: {wall:.1f} s (target <= {TARGET_SECONDS:.0f} s), peak memory {peak_mb:.0f} MB "
          f"(target <= {TARGET_MB:.0f} MB)")
    for step, seconds in summary["timings_s"].items():
        print(f"  {step:<12} {seconds:8.2f} s")
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"figures: {args.out}")
    return 0 if figures["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
