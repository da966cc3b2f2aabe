"""Generate terraform/settings.json: every RETAILOPT_* planning setting with its default value.

Terraform sets each of these on every Cloud Run service (merged with the deployment's own
choices), so the environment the services run with is complete and visible in the plan. The
defaults come from `retailopt.config.Settings`, never typed by hand:

    python infra/gen_settings_env.py           # (re)write terraform/settings.json
    python infra/gen_settings_env.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from retailopt.config import ENV_PREFIX, Settings, env_var_names

OUT = Path(__file__).resolve().parents[1] / "terraform" / "settings.json"


def _env_value(value: Any) -> str:
    # load_settings treats an empty variable as unset, i.e. the code's own default (None).
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def render() -> str:
    defaults = Settings().as_json()
    env = {ENV_PREFIX + f.name.upper(): _env_value(defaults[f.name]) for f in dataclasses.fields(Settings)}
    assert sorted(env) == env_var_names()
    return json.dumps(env, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if terraform/settings.json is stale")
    args = parser.parse_args(argv)
    wanted = render()
    current = OUT.read_text(encoding="utf-8") if OUT.is_file() else None
    if args.check:
        if current != wanted:
            print(f"stale: {OUT} (run python infra/gen_settings_env.py)", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        OUT.write_text(wanted, encoding="utf-8")
    print(f"{OUT}: {len(json.loads(wanted))} settings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
