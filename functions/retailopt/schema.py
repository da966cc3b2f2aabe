"""Table definitions parsed from the DDL in `sql/schema/` (the single source of the schema)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from retailopt import sqlfiles


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # BigQuery type name: STRING, INT64, FLOAT64, BOOL, DATE, TIME, TIMESTAMP, ...
    nullable: bool
    description: str | None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    partition_by: str | None
    cluster_by: tuple[str, ...]
    description: str | None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _description(properties: exp.Expression | None) -> str | None:
    if properties is None:
        return None
    for prop in properties.find_all(exp.Property):
        if prop.name.lower() == "description":
            return prop.args["value"].name
    return None


@functools.cache
def table(name: str) -> Table:
    path = sqlfiles.schema_files().get(name)
    if path is None:
        raise KeyError(f"no table {name!r} in sql/schema/")
    tree = sqlglot.parse_one(sqlfiles.render(path.read_text(encoding="utf-8"), "d"), read="bigquery")
    assert isinstance(tree, exp.Create), path
    columns = []
    for col in tree.this.expressions:
        kinds = [c.kind for c in col.constraints]
        columns.append(Column(
            name=col.name,
            type=col.args["kind"].sql("bigquery").upper(),
            nullable=not any(isinstance(k, exp.NotNullColumnConstraint) for k in kinds),
            description=next((_description(k) for k in kinds if isinstance(k, exp.Properties)), None),
        ))
    props = tree.args.get("properties")
    partition = props.find(exp.PartitionedByProperty) if props else None
    cluster = props.find(exp.ClusterProperty) if props else None
    return Table(
        name=name,
        columns=tuple(columns),
        partition_by=partition.this.name if partition else None,
        cluster_by=tuple(c.name for c in cluster.expressions) if cluster else (),
        description=_description(props),
    )


def all_tables() -> dict[str, Table]:
    return {name: table(name) for name in sqlfiles.schema_files()}
