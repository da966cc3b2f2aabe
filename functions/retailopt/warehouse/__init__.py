"""Warehouse adapters: the embedded DuckDB default and BigQuery, behind one interface.

Both run the GoogleSQL text from `sql/`; values always travel as query parameters and table
names only come from the DDL folder and validated settings.
"""

from __future__ import annotations

from retailopt.config import Settings
from retailopt.warehouse.base import Warehouse


def open_warehouse(settings: Settings) -> Warehouse:
    if settings.warehouse == "bigquery":
        from google.cloud import bigquery

        from retailopt.warehouse.bigquery import BigQueryWarehouse

        client = bigquery.Client(project=settings.project, location=settings.location)
        return BigQueryWarehouse(client, project=settings.project or client.project, dataset=settings.dataset,
                                 location=settings.location)
    from retailopt.warehouse.duck import DuckDBWarehouse

    return DuckDBWarehouse(settings.data_dir / "warehouse.duckdb", dataset=settings.dataset)


__all__ = ["Warehouse", "open_warehouse"]
