"""GoogleSQL text from `sql/`: loading, rendering validated names, and translation to DuckDB.

`sql/` holds the one definition of the schema and the queries. BigQuery runs it as written; the
embedded warehouse runs the same text translated by sqlglot.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import sqlglot
from sqlglot import exp

from retailopt.config import ConfigError

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def sql_dir() -> Path:
    """The repository's `sql/` folder (or RETAILOPT_SQL_DIR in a container image)."""
    override = os.environ.get("RETAILOPT_SQL_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "sql"


@functools.cache
def read_sql(relative: str) -> str:
    path = sql_dir() / relative
    if path.suffix != ".sql" or not path.is_file():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text(encoding="utf-8")


def schema_files() -> dict[str, Path]:
    """Table name -> DDL file, for every table in `sql/schema/`."""
    return {p.stem: p for p in sorted((sql_dir() / "schema").glob("*.sql"))}


def view_files() -> list[Path]:
    return sorted((sql_dir() / "views").glob("*.sql"))


def render(text: str, dataset: str, project: str | None = None) -> str:
    """Put the dataset (and project) into `{dataset}` placeholders; only validated names go in."""
    if not _IDENT_RE.match(dataset):
        raise ConfigError(f"invalid dataset name {dataset!r}")
    if project is not None and not _PROJECT_RE.match(project):
        raise ConfigError(f"invalid project id {project!r}")
    qualified = f"{project}.{dataset}" if project else dataset
    return text.replace("{dataset}", qualified)


def check_table_name(table: str) -> str:
    if table not in schema_files():
        raise ConfigError(f"unknown table {table!r}: not defined in sql/schema/")
    return table


@functools.lru_cache(maxsize=512)
def to_duckdb(text: str) -> list[str]:
    """Translate GoogleSQL statements to DuckDB SQL (BigQuery-only storage options dropped)."""
    out = []
    for tree in sqlglot.parse(text, read="bigquery"):
        if tree is None:
            continue
        if isinstance(tree, exp.Create):
            # PARTITION BY, CLUSTER BY and OPTIONS only tune BigQuery storage.
            tree.set("properties", None)
            for constraint in list(tree.find_all(exp.ColumnConstraint)):
                if isinstance(constraint.kind, exp.Properties):
                    constraint.pop()
        out.append(tree.sql(dialect="duckdb"))
    return out
