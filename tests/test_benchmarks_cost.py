"""The cost model behind docs/cost.md: sizes from sql/schema, the run's statements, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from retailopt.benchmarks import cost as cb
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


def test_reads_of_one_run_stay_the_same_as_the_tables_grow():
    """Every table a run reads or replaces by run_id is clustered by run_id first, so its scans do
    not grow with the runs the table holds (they did: 30 TB a run at 1,000 x 20,000 on day 365)."""
    young = cb.estimate(cb.Chain(25, 300, age_days=0))
    old = cb.estimate(cb.Chain(25, 300, age_days=365))
    assert old["bigquery_jobs"] == young["bigquery_jobs"]
    forecasts_read = [s for s in old["statements"] if s["what"].startswith("SELECT * FROM forecasts")]
    assert len(forecasts_read) == 1 and "clustered by run_id" in forecasts_read[0]["what"]
    rows = cb.per_run_rows(SAMPLE)["forecasts"]
    assert forecasts_read[0]["scanned"] == pytest.approx(rows * cb.row_bytes(SAMPLE, "forecasts"))
    everything = cb.daily_statements(cb.Chain(25, 300, age_days=365)) + cb.review_statements(SAMPLE)
    assert not [s.what for s in everything if "all partitions" in s.what]
    # What still grows: the latest inventory snapshot is found among all of them.
    assert old["bigquery_billed_bytes"] > young["bigquery_billed_bytes"]


def test_clustered_by_run_reads_the_ddl():
    assert cb.clustered_by_run("forecasts") and cb.clustered_by_run("plan_lines")
    assert not cb.clustered_by_run("sales") and not cb.clustered_by_run("committed_lines")


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


def test_approving_every_line_costs_one_lookup_query_per_request_and_kind():
    from retailopt.workbench import views
    from retailopt.workbench.decisions import MAX_BATCH

    review = cb.review_statements(SAMPLE)
    lookups = {s.what: s for s in review if "line lookup" in s.what}
    orders = lookups[f"decide: orders line lookup (wb_lines.sql), one per {MAX_BATCH} lines"]
    assert orders.count == 3  # 2,390 order lines in requests of 1,000
    assert lookups[f"decide: transfers line lookup (wb_lines.sql), one per {MAX_BATCH} lines"].count == 1
    # views.lines_by_id's query: wb_lines.sql (plan_lines, plan_decisions) with the names of
    # product, sender and store (products, stores, distribution_centers): at least 10 MB a table.
    reads = cb.sql_reads(views._named(views._lines_sql("l.line_id IN UNNEST(@line_ids)")))
    assert set(reads) == {"plan_lines", "plan_decisions", "products", "stores", "distribution_centers"}
    assert orders.tables == 5 and orders.billed >= 3 * 5 * cb.MIN_BILLED
    result = cb.estimate(SAMPLE)
    assert result["review_release"]["bigquery_jobs"] == sum(s.count for s in review)
    assert result["total_per_run"] == pytest.approx(sum(c["per_run"] for c in result["components"].values()))


def test_the_release_writes_its_loads_and_routes_and_may_solve_them_again():
    review = cb.review_statements(LARGE)
    whats = [s.what for s in review]
    for table in ("released_loads", "released_routes", "released_route_stops"):
        assert any(w.startswith(f"DELETE {table} WHERE run_id") for w in whats), table
        (insert,) = [s for s in review if s.what.startswith(f"INSERT {table}:")]
        assert insert.count >= 1
    loads = cb.per_run_rows(LARGE)["replenishment_orders"] + cb.per_run_rows(LARGE)["transfers"]
    assert [s.count for s in review if s.what.startswith("INSERT released_loads")] == [
        math.ceil(loads / _DML_BATCH_ROWS)]
    # The planned plan rows are read back for the solver by run_id: the run's blocks only.
    (orders,) = [s for s in review if s.what == "released routes: SELECT * FROM replenishment_orders WHERE run_id "
                 "(clustered by run_id)"]
    assert orders.scanned == pytest.approx(cb.run_clustered(LARGE, "replenishment_orders")
                                           * cb.row_bytes(LARGE, "replenishment_orders"))
    # When decisions changed the loads, one more request of the approved loads, priced at the
    # month's marginal tier.
    rv = cb.estimate(SAMPLE)["review_release"]
    month = 30 * cb.shipments_per_run(SAMPLE)
    extra = cb.route_opt_cost(2 * month) - cb.route_opt_cost(month)
    assert rv["reroute_shipments"] == cb.shipments_per_run(SAMPLE)
    assert rv["reroute_per_month"] == pytest.approx(extra + 30 * 10 * (0.000024 + 0.0000025))
    local = cb.estimate(cb.Chain(25, 300, age_days=30, routing_engine="local"))["review_release"]
    assert local["reroute_shipments"] == 0 and local["reroute_per_month"] < 0.01


def test_sql_reads_takes_the_columns_from_the_statement_itself():
    from retailopt import sqlfiles

    overview = cb.sql_reads(sqlfiles.read_sql("queries/wb_publish_overview.sql"))
    # The INSERT's target is written, not read; the figures come from these columns.
    assert "plan_overview" not in overview
    assert overview["plan_lines"] == ("line_type", "run_id") and overview["plan_worklist"] == ("run_id",)
    assert set(overview["inventory_policy"]) == {"expected_lost_units", "product_id", "run_id", "status_after_plan"}
    plain = cb.sql_reads(cb._detect_input(sqlfiles.read_sql("forecasting/detect_anomalies.sql")))
    xreg = cb.sql_reads(cb._detect_input(sqlfiles.read_sql("forecasting/detect_anomalies_xreg.sql")))
    assert set(plain) == {"sales"} and set(plain["sales"]) == {"store_id", "product_id", "sale_date", "units"}
    assert set(xreg["sales"]) == set(plain["sales"]) | {"price", "on_promotion"}
    assert set(xreg) == {"sales", "promotions", "products"}
    # An UPDATE ... FROM (query): the query's columns and the target's it names.
    from retailopt.workbench import store

    assert cb.sql_reads(store._RANK_UPDATE) == {"plan_worklist": (
        "category", "product_id", "reason_code", "run_id", "store_id", "value_at_risk")}


def test_the_forecast_step_reads_the_regressors_and_detects_anomalies_on_the_model():
    xreg = {s.what: s for s in cb.daily_statements(SAMPLE)}
    plain = {s.what: s for s in cb.daily_statements(cb.Chain(25, 300, age_days=30, xreg=False))}
    assert any(w.startswith("ML.DETECT_ANOMALIES x2 (detect_anomalies_xreg.sql)") for w in xreg)
    assert any(w.startswith("ML.DETECT_ANOMALIES x2 (detect_anomalies.sql)") for w in plain)
    features = [s for w, s in xreg.items() if "future regressors" in w]
    assert len(features) == 2 and all(s.scanned > 0 and s.tables == 3 for s in features)
    assert not any("future regressors" in w for w in plain)
    assert "model_versions: the chain's trainings (select_model)" in xreg
    # Anomaly rows are written with either engine (about 1 % of the 28 days).
    assert cb.per_run_rows(SAMPLE)["sales_anomalies"] == pytest.approx(7500 * 28 * 0.01)


def test_publish_writes_the_workbench_tables_a_block_of_stores_at_a_time():
    from retailopt.workbench import store

    small = [s for s in cb.daily_statements(SAMPLE) if s.step == "publish"]
    large = [s for s in cb.daily_statements(LARGE) if s.step == "publish"]
    (block,) = [s for s in large if s.what.startswith("workbench: worklist INSERT")]
    assert block.count == 20_000_000 // store.BLOCK_POSITIONS
    assert [s.count for s in small if s.what.startswith("workbench: worklist INSERT")] == [1]
    assert any("wb_publish_lines" in s.what and s.count == 2 for s in small)
    assert cb.workbench_rows(SAMPLE)["plan_worklist"] == cb.MEASURED["worklist_rows"]
    kept = cb.storage_bytes(SAMPLE)["per_table"]
    assert kept["plan_lines"] == pytest.approx(31 * cb.MEASURED["plan_line_rows"] * cb.row_bytes(SAMPLE, "plan_lines"))
    # The plan service waits for the publish step's jobs too.
    result = cb.estimate(SAMPLE)
    plan_jobs = sum(s["count"] for s in result["statements"] if s["step"] in ("plan", "publish"))
    assert result["cloud_run"]["plan"]["bigquery_jobs"] == plan_jobs


def test_training_evaluation_and_the_scheduled_check():
    assert cb.training_bytes(SAMPLE)["input_bytes"] > cb.training_bytes(
        cb.Chain(25, 300, age_days=30, xreg=False))["input_bytes"]
    ts = cb.training_statements(LARGE)
    # ML.ARIMA_EVALUATE is written by one INSERT ... SELECT, whatever the number of series.
    (diag,) = [s for s in ts["weekly"] if s.what.startswith("INSERT model_diagnostics")]
    assert diag.count == 1 and "ML.ARIMA_EVALUATE" in diag.what
    assert "FROM ML.ARIMA_EVALUATE" in __import__("retailopt.sqlfiles", fromlist=["x"]).read_sql(
        "forecasting/arima_evaluate.sql")
    (check,) = ts["daily"]
    assert check.count == 24 * 60 // 10
    result = cb.estimate(SAMPLE)
    assert result["components"]["cloud_scheduler"]["per_month"] == pytest.approx(0.30)
    assert "bqml_evaluate_and_check" in result["components"]
    local = cb.estimate(cb.Chain(25, 300, age_days=30, forecast_engine="local"))
    assert local["components"]["cloud_scheduler"]["per_month"] == pytest.approx(0.20)
    assert "bqml_evaluate_and_check" not in local["components"]


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
