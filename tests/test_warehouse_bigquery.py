"""The BigQuery adapter against bqemulator: same DDL, same queries, parameters only."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest
from google.cloud import bigquery

from retailopt.config import ConfigError
from retailopt.warehouse.bigquery import BigQueryWarehouse, query_parameters


@pytest.fixture
def warehouse(bqemu_client):
    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    wh.ensure_schema()
    return wh


def test_schema_creates_every_table(warehouse, bqemu_client):
    from retailopt import sqlfiles

    tables = {t.table_id for t in bqemu_client.list_tables(f"{warehouse.project}.{warehouse.dataset}")}
    assert set(sqlfiles.schema_files()) <= tables
    sales = bqemu_client.get_table(f"{warehouse.project}.{warehouse.dataset}.sales")
    assert [f.name for f in sales.schema] == ["sale_date", "store_id", "product_id", "units", "price", "on_promotion"]


def test_insert_and_parameterised_query(warehouse):
    frame = pd.DataFrame({
        "sale_date": ["2025-01-01", "2025-01-02", "2025-01-02"], "store_id": ["S1", "S1", "S2"],
        "product_id": ["P1", "P1", "P1"], "units": [3, 4, 5], "price": [1.0, 1.0, 1.2],
        "on_promotion": [False, True, False],
    })
    assert warehouse.insert("sales", frame) == 3
    out = warehouse.query(
        "SELECT store_id, SUM(units) AS units FROM `{dataset}.sales` "
        "WHERE sale_date >= @since AND store_id = @store GROUP BY store_id",
        {"since": dt.date(2025, 1, 2), "store": "S1"},
    )
    assert out.to_dict("records") == [{"store_id": "S1", "units": 4}]
    # A value that looks like SQL stays a value.
    hostile = warehouse.query("SELECT COUNT(*) AS n FROM `{dataset}.sales` WHERE store_id = @store",
                              {"store": "S1' OR '1'='1"})
    assert int(hostile.n.iloc[0]) == 0


def test_delete_by_run_id(warehouse):
    rows = pd.DataFrame({"run_id": ["a", "b"], "run_date": ["2025-01-01"] * 2, "source_file": ["f.csv"] * 2,
                         "row_number": [1, 2], "column_name": ["x", "y"], "reason": ["bad", "bad"]})
    warehouse.insert("quarantine", rows)
    warehouse.execute("DELETE FROM `{dataset}.quarantine` WHERE run_id = @run_id", {"run_id": "a"})
    left = warehouse.query("SELECT run_id FROM `{dataset}.quarantine`")
    assert left.run_id.tolist() == ["b"]


def test_invalid_dataset_is_refused(bqemu_client):
    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset="x; DROP TABLE y")
    with pytest.raises(ConfigError):
        wh.query("SELECT 1 FROM `{dataset}.sales`")


def test_parameter_types():
    params = {p.name: p for p in query_parameters(
        {"d": dt.date(2025, 1, 1), "n": 3, "f": 0.5, "b": True, "s": "x", "ids": ["a", "b"]})}
    assert params["d"].type_ == "DATE" and params["n"].type_ == "INT64" and params["b"].type_ == "BOOL"
    assert isinstance(params["ids"], bigquery.ArrayQueryParameter) and params["ids"].array_type == "STRING"
