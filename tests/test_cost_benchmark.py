"""The cost model behind docs/cost.md: sizes from sql/schema, the run's statements, the CLI."""

from __future__ import annotations

import json

import pytest

from retailopt import cost_benchmark as cb
from retailopt import schema
from retailopt.config import Settings
from retailopt.forecasting.components import COMPONENT_HISTORY_DAYS
from retailopt.warehouse.bigquery import _DML_BATCH_ROWS

SAMPLE = cb.Chain(25, 300, age_days=30)
LARGE = cb.Chain(1000, 20000, age_days=30)


def test_sales_row_bytes_follow_the_ddl_and_bigquery_sizes():
    # sale_date DATE 8, store_id 2 + 4 ("S001"), product_id 2 + 5 ("P0001"), units INT64 8,
    # price FLOAT64 8, on_promotion BOOL 1.
    assert cb.row_bytes(SAMPLE, "sales") == pytest.approx(38)
    # 1,000 stores and 20,000 products: "S1000" and "P20000".
    assert cb.row_bytes(LARGE, "sales") == pytest.approx(40)
    assert cb.row_bytes(SAMPLE, "sales", ("store_id", "units")) == pytest.approx(14)


def test_every_column_of_every_table_has_a_size_rule():
    for name, table in schema.all_tables().items():
        assert cb.row_bytes(SAMPLE, name) > 0, name
        assert len(table.columns) > 0


def test_assumptions_match_the_code_they_describe():
    a = cb.Assumptions()
    settings = Settings()
    assert a.dml_batch_rows == _DML_BATCH_ROWS
    assert a.horizon_days == settings.horizon_days
    assert a.history_days == settings.history_days
    assert a.routing_time_limit_s == settings.routing_time_limit_s
    assert a.component_days == COMPONENT_HISTORY_DAYS
    assert a.sales_rows_per_series_day == pytest.approx(0.52, abs=0.005)


def test_every_statement_is_billed_at_least_the_minimum():
    for stmt in cb.daily_statements(SAMPLE):
        assert stmt.billed >= cb.MIN_BILLED * stmt.count
        assert stmt.billed >= stmt.scanned * stmt.count


def test_scans_by_run_id_grow_with_the_runs_the_tables_hold():
    young = cb.estimate(cb.Chain(25, 300, age_days=0))
    old = cb.estimate(cb.Chain(25, 300, age_days=365))
    assert old["bigquery_billed_bytes"] > young["bigquery_billed_bytes"]
    assert old["bigquery_jobs"] == young["bigquery_jobs"]
    forecasts_read = [s for s in old["statements"] if s["what"].startswith("SELECT * FROM forecasts")]
    assert len(forecasts_read) == 1
    rows = cb.per_run_rows(SAMPLE)["forecasts"] * 366
    assert forecasts_read[0]["scanned"] == pytest.approx(rows * cb.row_bytes(SAMPLE, "forecasts"))


def test_insert_batches_follow_the_rows_written():
    stmts = cb.daily_statements(LARGE)
    inserts = {s.what.split(":")[0]: s.count for s in stmts if s.what.startswith("INSERT forecasts")}
    assert inserts == {"INSERT forecasts": 20_000_000 * 28 // _DML_BATCH_ROWS}


def test_training_bills_the_input_query_times_the_candidate_models():
    tr = cb.training_bytes(SAMPLE)
    assert tr["billed_bytes"] == pytest.approx(tr["input_bytes"] * 12)
    big = cb.training_bytes(LARGE)
    # Bytes grow with the series; ids are one character longer in the large chain.
    assert big["input_bytes"] / tr["input_bytes"] > LARGE.series / SAMPLE.series


def test_local_engines_have_no_training_and_no_route_optimization_charge():
    result = cb.estimate(cb.Chain(25, 300, age_days=30, forecast_engine="local", routing_engine="local"))
    assert "bqml_training" not in result["components"]
    assert result["components"]["route_optimization"]["per_run"] == 0
    assert any(s["what"].startswith("sales_history") for s in result["statements"])


def test_route_optimization_volume_tiers():
    assert cb.route_opt_cost(1000) == pytest.approx(30.0)
    assert cb.route_opt_cost(200_000) == pytest.approx(100_000 * 0.03 + 100_000 * 0.014)


def test_reorder_messages_are_valid_messages_of_the_service_schema():
    sizes = cb.message_sizes(LARGE)
    assert 300 < sizes["reorder"] < 1000
    assert sizes["published"] > sizes["step"]


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "cost.json"
    assert cb.main(["--stores", "4", "--products", "12", "--age-days", "0", "--json", str(out), "--statements"]) == 0
    text = capsys.readouterr().out
    assert "| total |" in text and "| step | statement |" in text
    data = json.loads(out.read_text())
    assert data["chain"]["series"] == 48
    total = sum(c["per_run"] for c in data["components"].values())
    assert data["total_per_run"] == pytest.approx(total)


def test_cli_refuses_an_empty_chain():
    with pytest.raises(SystemExit):
        cb.main(["--stores", "0"])


def test_approving_every_line_costs_one_lookup_query_per_line():
    review = cb.review_statements(SAMPLE)
    lookups = {s.what: s for s in review if "one per line" in s.what}
    assert lookups["decide: wb_orders lookup, one per line"].count == 2390
    assert lookups["decide: wb_transfers lookup, one per line"].count == 54
    # wb_orders references six tables: at least 10 MB each.
    assert lookups["decide: wb_orders lookup, one per line"].billed >= 2390 * 6 * cb.MIN_BILLED
    result = cb.estimate(SAMPLE)
    assert result["review_release"]["bigquery_jobs"] == sum(s.count for s in review)
    assert result["total_per_run"] == pytest.approx(sum(c["per_run"] for c in result["components"].values()))


def test_scaling_rules_reproduce_the_measured_sample_run():
    rows = cb.per_run_rows(cb.Chain(25, 300, forecast_engine="local"))
    assert rows["forecasts"] == cb.MEASURED["forecast_rows"]
    assert rows["forecast_components"] == pytest.approx(cb.MEASURED["component_rows"], rel=0.002)
    assert rows["replenishment_orders"] == pytest.approx(cb.MEASURED["order_rows"])
    assert cb.shipments_per_run(SAMPLE) == cb.MEASURED["shipments"]


def test_reorder_message_body_matches_the_encoder():
    from retailopt.services import messages

    msg = messages.make_message("reorder", chain_id="default", run_id="default-20260115-0123456789",
                                run_date="2026-01-15", order={
                                    "order_id": "O20260115-000001", "dc_id": "DC01", "store_id": "S001",
                                    "product_id": "P0001", "quantity": 24, "cases": 1, "order_value": 133.44,
                                    "expected_arrival": "2026-01-17"})
    # created_at loses its 7 microsecond characters when they are all zero.
    assert cb.REORDER_JSON_BYTES - 7 <= len(messages.encode(msg)) <= cb.REORDER_JSON_BYTES
