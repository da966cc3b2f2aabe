"""Generate the BigQuery tables and views Terraform provisions from the SQL in sql/.

sql/ is the single source of every column and view, so Terraform never repeats it by hand:

    python infra/gen_bq_schemas.py           # (re)write terraform/schemas/, tables.json, views/
    python infra/gen_bq_schemas.py --check   # exit 1 if the committed files are stale

`terraform/schemas/<table>.json` is a plain BigQuery JSON schema (also usable with `bq mk`);
`terraform/tables.json` holds each table's description, partitioning and clustering;
`terraform/views/<view>.sql` is the query of each CREATE VIEW in sql/views/, with a `{dataset}`
placeholder that Terraform fills with `project.dataset`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = ROOT / "sql" / "schema"
VIEW_DIR = ROOT / "sql" / "views"
# Stands for the `{dataset}` placeholder while sqlglot parses and prints the SQL.
_DATASET_SENTINEL = "__retailopt_dataset__"
TF_DIR = ROOT / "terraform"

# The BigQuery API answers with the legacy type names; using them avoids a perpetual plan diff.
_LEGACY_TYPES = {
    "INT64": "INTEGER",
    "FLOAT64": "FLOAT",
    "BOOL": "BOOLEAN",
    "STRUCT": "RECORD",
}
_SCALAR_TYPES = {
    "BIGNUMERIC", "BOOLEAN", "BYTES", "DATE", "DATETIME", "FLOAT", "GEOGRAPHY", "INTEGER",
    "INTERVAL", "JSON", "NUMERIC", "RANGE", "STRING", "TIME", "TIMESTAMP",
}
_PARTITION_UNITS = {"DAY", "HOUR", "MONTH", "YEAR"}


class SchemaError(ValueError):
    """The DDL cannot be turned into a BigQuery table definition; the message names the file."""


def _options(props: exp.Expression | None) -> dict[str, Any]:
    """OPTIONS(...) of a table or column as a plain dict of literals."""
    out: dict[str, Any] = {}
    if props is None:
        return out
    for prop in props.expressions if isinstance(props, exp.Properties) else [props]:
        if type(prop) is exp.Property and isinstance(prop.args.get("value"), exp.Literal):
            literal = prop.args["value"]
            value: Any = literal.this if literal.is_string else float(literal.this)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            out[prop.name.lower()] = value
    return out


def _field(name: str, dtype: exp.DataType, required: bool, description: str | None,
           where: str) -> dict[str, Any]:
    mode = "REQUIRED" if required else "NULLABLE"
    if dtype.this == exp.DataType.Type.ARRAY:
        # BigQuery has no NOT NULL arrays: an empty array stands for "none".
        inner = dtype.expressions[0]
        if not isinstance(inner, exp.DataType):
            raise SchemaError(f"{where}: column {name}: unsupported array element {inner.sql('bigquery')}")
        field = _field(name, inner, False, description, where)
        field["mode"] = "REPEATED"
        return field
    field: dict[str, Any] = {"name": name, "type": "", "mode": mode}
    if dtype.this == exp.DataType.Type.STRUCT:
        field["type"] = "RECORD"
        field["fields"] = [_struct_member(member, where) for member in dtype.expressions]
    else:
        # Parameterised types keep their base name (NUMERIC(10, 2) -> NUMERIC).
        base = dtype.copy()
        base.set("expressions", [])
        type_name = base.sql(dialect="bigquery").upper()
        type_name = _LEGACY_TYPES.get(type_name, type_name)
        if type_name not in _SCALAR_TYPES:
            raise SchemaError(f"{where}: column {name}: unsupported type {dtype.sql('bigquery')}")
        field["type"] = type_name
    if description:
        field["description"] = description
    return field


def _struct_member(member: exp.Expression, where: str) -> dict[str, Any]:
    if not isinstance(member, exp.ColumnDef) or not isinstance(member.args.get("kind"), exp.DataType):
        raise SchemaError(f"{where}: unsupported STRUCT member {member.sql('bigquery')}")
    return _column(member, where)


def _column(col: exp.ColumnDef, where: str) -> dict[str, Any]:
    required = False
    description = None
    for constraint in col.args.get("constraints") or []:
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null"):
            required = True
        elif isinstance(kind, exp.Properties):
            description = _options(kind).get("description")
    dtype = col.args.get("kind")
    if not isinstance(dtype, exp.DataType):
        raise SchemaError(f"{where}: column {col.name} has no type")
    return _field(col.name, dtype, required, description, where)


def _partitioning(expr: exp.Expression, columns: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    """PARTITION BY col | DATE(col) | {DATE,DATETIME,TIMESTAMP}_TRUNC(col, UNIT)."""
    unit = "DAY"
    if isinstance(expr, (exp.Column, exp.Identifier)):
        column = expr.name
    elif isinstance(expr, (exp.Date, exp.TsOrDsToDate)) or (
            isinstance(expr, exp.Anonymous) and expr.name.upper() == "DATE"):
        column = expr.this.name if expr.this is not None else expr.expressions[0].name
    elif isinstance(expr, (exp.DateTrunc, exp.TimestampTrunc, exp.DatetimeTrunc)):
        column = expr.this.name
        unit = str(expr.args["unit"].name).upper()
    else:
        raise SchemaError(f"{where}: unsupported PARTITION BY {expr.sql('bigquery')}")
    if column not in columns:
        raise SchemaError(f"{where}: PARTITION BY names unknown column {column}")
    if unit not in _PARTITION_UNITS:
        raise SchemaError(f"{where}: unsupported partition unit {unit}")
    if columns[column]["type"] not in ("DATE", "DATETIME", "TIMESTAMP"):
        # Integer-range partitioning needs RANGE_BUCKET bounds that the DDL here never uses.
        raise SchemaError(f"{where}: PARTITION BY column {column} is not a date or timestamp")
    return {"field": column, "type": unit}


def table_definition(sql_text: str, where: str) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Parse one CREATE TABLE statement: (table name, BigQuery schema, table metadata)."""
    # The dataset is a render-time placeholder; any identifier will do for parsing.
    sql_text = sql_text.replace("{dataset}", "dataset")
    try:
        statements = [s for s in sqlglot.parse(sql_text, read="bigquery") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise SchemaError(f"{where}: cannot parse: {exc}") from exc
    creates = [s for s in statements if isinstance(s, exp.Create) and s.kind == "TABLE"]
    if len(creates) != 1:
        raise SchemaError(f"{where}: expected exactly one CREATE TABLE, found {len(creates)}")
    create = creates[0]
    schema = create.this
    if not isinstance(schema, exp.Schema):
        raise SchemaError(f"{where}: CREATE TABLE without a column list")
    table = schema.this.name
    fields = [_column(col, where) for col in schema.expressions if isinstance(col, exp.ColumnDef)]
    by_name = {f["name"]: f for f in fields}
    meta: dict[str, Any] = {"clustering": [], "description": None, "partitioning": None}
    for prop in (create.args.get("properties") or exp.Properties(expressions=[])).expressions:
        if isinstance(prop, exp.PartitionedByProperty):
            meta["partitioning"] = _partitioning(prop.this, by_name, where)
        elif isinstance(prop, exp.ClusterProperty):
            meta["clustering"] = [c.name for c in prop.expressions]
            unknown = [c for c in meta["clustering"] if c not in by_name]
            if unknown:
                raise SchemaError(f"{where}: CLUSTER BY names unknown columns {unknown}")
        else:
            options = _options(prop)
            if "description" in options:
                meta["description"] = options["description"]
            if "partition_expiration_days" in options and meta["partitioning"] is not None:
                meta["partitioning"]["expiration_days"] = options["partition_expiration_days"]
            if "require_partition_filter" in options:
                meta["require_partition_filter"] = options["require_partition_filter"]
    return table, fields, meta


def view_definitions(sql_text: str, where: str) -> dict[str, tuple[str | None, str]]:
    """Each CREATE VIEW of a file: name -> (description, query with a `{dataset}` placeholder)."""
    # A file's leading comment describes its views (BigQuery shows it as their description).
    lines = [line.strip() for line in sql_text.splitlines() if line.strip()]
    description = lines[0][2:].strip() if lines and lines[0].startswith("--") else None
    try:
        statements = [s for s in sqlglot.parse(sql_text.replace("{dataset}", _DATASET_SENTINEL),
                                                read="bigquery") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise SchemaError(f"{where}: cannot parse: {exc}") from exc
    views: dict[str, tuple[str | None, str]] = {}
    for statement in statements:
        if not (isinstance(statement, exp.Create) and statement.kind == "VIEW"):
            raise SchemaError(f"{where}: only CREATE VIEW statements belong in sql/views/")
        name = statement.this.name
        if name in views:
            raise SchemaError(f"{where}: view {name} is defined twice")
        query = statement.expression.sql(dialect="bigquery", pretty=True)
        views[name] = (description, query.replace(_DATASET_SENTINEL, "{dataset}"))
    return views


def render(sql_dir: Path = SQL_DIR, view_dir: Path = VIEW_DIR) -> dict[str, str]:
    """Every generated file (path relative to terraform/ -> text), from the SQL files."""
    files: dict[str, str] = {}
    tables: dict[str, Any] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        table, fields, meta = table_definition(path.read_text(encoding="utf-8"), str(path))
        if table != path.stem:
            raise SchemaError(f"{path}: defines table {table}; the file must be named {table}.sql")
        files[f"schemas/{table}.json"] = json.dumps(fields, indent=2) + "\n"
        tables[table] = meta
    files["tables.json"] = json.dumps(tables, indent=2, sort_keys=True) + "\n"
    for path in sorted(view_dir.glob("*.sql")):
        for view, (description, query) in view_definitions(path.read_text(encoding="utf-8"), str(path)).items():
            if view in tables or f"views/{view}.sql" in files:
                raise SchemaError(f"{path}: view {view} clashes with another table or view")
            # Line 2 is the description Terraform gives the view.
            files[f"views/{view}.sql"] = (f"-- Generated from sql/views/{path.name}; do not edit.\n"
                                          f"-- {description or 'View ' + view}\n{query}\n")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated files are stale")
    parser.add_argument("--sql-dir", type=Path, default=SQL_DIR)
    parser.add_argument("--view-dir", type=Path, default=VIEW_DIR)
    parser.add_argument("--out-dir", type=Path, default=TF_DIR)
    args = parser.parse_args(argv)
    try:
        wanted = render(args.sql_dir, args.view_dir)
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    present = {f"schemas/{p.name}" for p in (args.out_dir / "schemas").glob("*.json")}
    present |= {f"views/{p.name}" for p in (args.out_dir / "views").glob("*.sql")}
    stale = sorted(name for name, text in wanted.items()
                   if not (args.out_dir / name).is_file()
                   or (args.out_dir / name).read_text(encoding="utf-8") != text)
    extra = sorted(present - set(wanted))
    if args.check:
        for name in stale:
            print(f"stale: terraform/{name} (run python infra/gen_bq_schemas.py)", file=sys.stderr)
        for name in extra:
            print(f"orphan: terraform/{name} has no source in sql/", file=sys.stderr)
        return 1 if stale or extra else 0
    for folder in ("schemas", "views"):
        (args.out_dir / folder).mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out_dir / name).write_text(wanted[name], encoding="utf-8")
    for name in extra:
        (args.out_dir / name).unlink()
    tables = sum(name.startswith("schemas/") for name in wanted)
    views = sum(name.startswith("views/") for name in wanted)
    print(f"{tables} tables, {views} views; wrote {len(stale)} file(s), removed {len(extra)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
