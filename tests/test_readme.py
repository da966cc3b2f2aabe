"""The README documents what a user needs: every input column, the commands, the linked docs."""

from __future__ import annotations

import re
from pathlib import Path

from retailopt import schema
from retailopt.cli import DELEGATED
from retailopt.contracts import INPUT_TABLES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_input_column_is_documented():
    for table in INPUT_TABLES:
        row = next(line for line in README.splitlines() if line.startswith(f"| `{table}` |"))
        for column in schema.table(table).column_names:
            assert re.search(rf"\b{column}\b", row), f"README: {table}.{column} missing"


def test_quick_start_has_two_commands_and_ci_runs_the_test_one():
    quick = README.split("## Quick start")[1].split("## ")[0]
    commands = re.findall(r"```bash\n(.+?)\n```", quick)
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_commands_and_linked_docs_exist():
    for name in DELEGATED:
        assert name in README, name
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / link).exists(), link
