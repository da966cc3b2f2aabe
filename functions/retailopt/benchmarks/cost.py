"""`python -m retailopt.benchmarks.cost`: the Google Cloud bill of one daily planning run.

Benchmark code: nothing in the planning run imports it. For a chain of `--stores` x `--products`
it models the rows every table holds after `--age-days` daily runs, the bytes BigQuery bills
for each statement the cloud services issue in one run (columns and types from `sql/schema/`
through `retailopt.schema`, sizes by BigQuery's logical-byte rules; for the statements kept in
`sql/`, the columns each reads are taken from the SQL itself with sqlglot, `sql_reads`), the
weekly ARIMA_PLUS / ARIMA_PLUS_XREG training with its evaluation and the scheduled training
check, the workbench tables written at publish, the release (its loads and routes, and the Route
Optimization request when decisions changed the loads), Cloud Run time, Pub/Sub, Cloud Storage,
Route Optimization shipments and log volume, and prices them. `docs/cost.md` is made from its output and says where every input comes from:
prices in `PRICES` (with their source pages), figures measured on the sample chain in `MEASURED`,
everything else in `Assumptions`.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from retailopt import schema, sqlfiles

MIB = 2 ** 20
GIB = 2 ** 30
TIB = 2 ** 40
# On-demand queries are billed at least 10 MB per table referenced and per query.
MIN_BILLED = 10 * MIB

ROUTE_OPT_URL = "https://developers.google.com/maps/documentation/route-optimization/usage-and-billing"
# USD list prices (on-demand, Tier 1 regions / US multi-region) and the pages they come from.
PRICES: dict[str, tuple[float, str]] = {
    "bq_query_per_tib": (6.25, "https://cloud.google.com/bigquery/pricing"),
    "bq_create_model_per_tib": (312.50, "https://cloud.google.com/bigquery/pricing#bqml"),
    "bq_active_storage_per_gib_month": (0.02, "https://cloud.google.com/bigquery/pricing"),
    "bq_longterm_storage_per_gib_month": (0.01, "https://cloud.google.com/bigquery/pricing"),
    "run_vcpu_second": (0.000024, "https://cloud.google.com/run/pricing"),
    "run_gib_second": (0.0000025, "https://cloud.google.com/run/pricing"),
    "run_per_million_requests": (0.40, "https://cloud.google.com/run/pricing"),
    "pubsub_per_tib": (40.0, "https://cloud.google.com/pubsub/pricing"),
    "gcs_standard_per_gb_month": (0.020, "https://cloud.google.com/storage/pricing-examples"),
    "gcs_nearline_per_gb_month": (0.010, "https://cloud.google.com/storage/pricing"),
    "gcs_class_a_per_1000": (0.005, "https://cloud.google.com/storage/pricing-examples"),
    "gcs_class_b_per_1000": (0.0004, "https://cloud.google.com/storage/pricing-examples"),
    "logging_per_gib": (0.50, "https://cloud.google.com/stackdriver/pricing"),
    "scheduler_per_job_month": (0.10, "https://cloud.google.com/scheduler/pricing"),
    # Fleet Routing SKU (a request with 2 or more vehicles), per shipment, by monthly volume.
    "route_opt_fleet_0_100k": (0.03, ROUTE_OPT_URL),
    "route_opt_fleet_100k_500k": (0.014, ROUTE_OPT_URL),
}

# Measured on the sample chain (25 stores x 300 products x 730 days): `retailopt bench-run` on this
# 2-core machine, and the run's DuckDB warehouse and artifacts (docs/cost.md, "Measured").
MEASURED = {
    "series": 7500,
    "sales_rows": 2_846_204,
    "history_days": 730,
    "step_s": {"import": 14.143, "forecast": 12.349, "plan": 11.078, "policy": 0.244,
               "rebalancing": 0.405, "routing": 9.726},
    "wall_s": 43.9,
    "setup_s": 1.098,
    "forecast_rows": 210_000,
    "component_rows": 419_677,
    "plan_exception_rows": 399,
    "order_rows": 2390,
    "transfer_rows": 54,
    "routes": 9,
    "route_stops": 130,
    "shipments": 80,
    "vehicles": 12,
    "dcs": 1,
    "promotions": 58,
    "artifact_bytes": {"plan.json": 779_599, "report.html": 440_014, "routes.geojson": 51_111,
                       "routes_request.json": 112_920, "routes_response.json": 151_929, "summary.json": 1_209},
    "drop_bytes": {"inventory.csv": 227_024, "sales.parquet": 4_138_461, "products.csv": 20_692,
                   "stores.csv": 1_912, "vehicles.csv": 780, "distribution_centers.csv": 142,
                   "promotions.csv": 1_722},
    # The sample run's workbench tables (`retailopt demo --replay-weeks 0`, code of 8f3693e, whose
    # plan had 2,209 order and 55 transfer lines and 1,867 anomaly days, 0.89 % of 28 x 7,500):
    "worklist_rows": 1744,
    "plan_line_rows": 2264,
    "engine_series_per_s_at_scale": 675.0,  # docs/forecasting.md: --suite scale, 30,490 series
    # bigquery_ml.read_forecast_rows + protection_from_daily on 7,500 synthetic series x 28 days
    # (docs/cost.md): 0.17 s + 18.38 s; 1,000 series took 1.28 s, 2,000 took 2.87 s (worse than linear).
    "bqml_forecast_cpu_s": 0.17 + 18.38,
}

# Average length (UTF-8 bytes) of string columns, measured in the sample run's warehouse unless
# noted; store and product ids are recomputed for the chain size. Columns not listed: DEFAULT_LEN.
STRING_LEN: dict[str, float] = {
    "run_id": 27,  # cloud run ids: <chain>-<YYYYMMDD>-<10 hex> with chain "default" (messages.run_id_for)
    "dc_id": 4, "depot_id": 4, "vehicle_id": 3, "location_id": 4, "region": 5,
    "time_series_type": 7.5, "status": 8, "status_after_plan": 4.65, "exception": 56.65,
    "reason_code": 21, "reason": 33.65, "action": 58, "order_id": 16, "transfer_id": 16,
    "shipment_id": 13, "route_id": 14, "visit_type": 7, "name": 20, "category": 8.23,
    "fallback_reason": 11.25, "parameters": 1154, "timings": 127, "kpis": 581, "lease_owner": 30,
    "event_key": 80, "key_kind": 12, "step": 8, "chain_id": 7, "claim_token": 32, "outcome": 20,
    "subscription_name": 55, "message_id": 17, "attributes": 100,
    "decision_id": 16, "line_type": 5, "line_id": 16, "decided_by": 30,
}
DEFAULT_LEN = 16.0
# Body of a reorder message (messages.encode of a sample order): the `data` column of reorder_messages.
REORDER_JSON_BYTES = 340
# Share of non-NULL values where it is below 1 (sample run); NULL counts 0 bytes.
NON_NULL: dict[tuple[str, str], float] = {
    ("forecasts", "fallback_reason"): 0.01, ("inventory_policy", "exception"): 0.0532,
    ("inventory_policy", "days_of_cover"): 0.9923, ("promotions", "store_id"): 0.0,
    ("runs", "error"): 0.0, ("quarantine", "row_number"): 1.0,
    **{("forecast_components", c): 0.5 for c in ("actual", "adjusted", "forecast_value", "spikes_and_dips",
                                                 "residual")},
}
FIXED_BYTES = {"INT64": 8, "FLOAT64": 8, "BOOL": 1, "DATE": 8, "DATETIME": 8, "TIME": 8, "TIMESTAMP": 8,
               "NUMERIC": 16, "BIGNUMERIC": 32}
RESULT_TABLES = ("forecasts", "forecast_components", "demand_windows", "sales_anomalies", "inventory_policy",
                 "plan_exceptions", "transfers", "replenishment_orders", "routes", "route_stops")


def _defined(tables: tuple[str, ...]) -> tuple[str, ...]:
    """The tables `sql/schema/` defines (sales_anomalies arrived with the anomaly work)."""
    known = set(schema.all_tables())
    return tuple(t for t in tables if t in known)


@dataclass(frozen=True)
class Assumptions:
    history_days: int = 730             # Settings.history_days
    horizon_days: int = 28              # Settings.horizon_days
    component_days: int = 28            # forecasting.components.COMPONENT_HISTORY_DAYS
    sales_rows_per_series_day: float = MEASURED["sales_rows"] / (MEASURED["series"] * MEASURED["history_days"])
    dml_batch_rows: int = 2000          # warehouse.bigquery._DML_BATCH_ROWS
    # auto.ARIMA with TIME_SERIES_ID_COL and the default AUTO_ARIMA_MAX_ORDER = 2: 12 candidates
    candidate_models: int = 12
    statement_latency_s: float = 1.0    # wall time of one BigQuery job round trip (not measured here)
    cold_start_s: float = 10.0          # per service instance started for the run (min instances 0)
    routing_time_limit_s: float = 10.0  # Settings.routing_time_limit_s
    runs_per_month: int = 30
    active_days: int = 90               # partitions unchanged this long are billed as long-term storage
    raw_retention_days: int = 180       # terraform var retention_days.raw
    artifacts_retention_days: int = 365  # terraform var retention_days.artifacts (Nearline after 30)
    log_entries_per_run: int = 20       # step lines, request logs, cold-start lines (see docs/cost.md)
    log_entry_bytes: int = 1500
    audit_entry_bytes: int = 3000       # BigQuery data-access audit entry per job (lower bound)
    training_check_minutes: int = 10    # terraform/scheduler.tf: the training check's schedule
    training_check_s: float = 2.0       # billed time of one check (a request, one BigQuery job)


@dataclass(frozen=True)
class Chain:
    stores: int
    products: int
    age_days: int = 365                 # daily runs whose results the tables already hold
    forecast_engine: str = "bigquery_ml"  # or "local"
    routing_engine: str = "api"         # or "local"
    assumptions: Assumptions = field(default_factory=Assumptions)
    # The chain keeps a promotion plan (the sample does): its weekly model is ARIMA_PLUS_XREG
    # (bigquery_ml.plan_training), whose forecast, explanation and detection read the regressors.
    xreg: bool = True

    @property
    def series(self) -> int:
        return self.stores * self.products

    @property
    def scale(self) -> float:
        return self.series / MEASURED["series"]

    def string_len(self, column: str) -> float:
        if column in ("store_id", "from_store_id", "to_store_id"):
            return 1 + max(3, len(str(self.stores)))      # sample: S{i:03d}
        if column == "product_id":
            return 1 + max(4, len(str(self.products)))    # sample: P{i:04d}
        if column in ("model", "model_name"):
            # bigquery_ml.model_name: arimax_<chain>_YYYYMMDD (ARIMA_PLUS_XREG) or arima_<chain>_YYYYMMDD
            if self.forecast_engine == "bigquery_ml" or column == "model_name":
                return len(f"{'arimax' if self.xreg else 'arima'}_default_20260115")
            return 12.04
        if column == "chain_id":
            return len("default")
        return STRING_LEN.get(column, DEFAULT_LEN)


def column_bytes(chain: Chain, table: str, column: str) -> float:
    """Average logical bytes of one value of `table.column` (BigQuery data-type sizes)."""
    col = schema.table(table).column(column)
    share = NON_NULL.get((table, column), 1.0)
    if col.type == "STRING":
        return share * (2 + chain.string_len(column))
    if col.type not in FIXED_BYTES:
        raise ValueError(f"{table}.{column}: no size rule for type {col.type}")
    return share * FIXED_BYTES[col.type]


def row_bytes(chain: Chain, table: str, columns: tuple[str, ...] | None = None) -> float:
    names = columns if columns is not None else tuple(schema.table(table).column_names)
    return sum(column_bytes(chain, table, c) for c in names)


def per_run_rows(chain: Chain) -> dict[str, float]:
    """Rows one run writes per result table, scaled from the sample run by series or stores."""
    a, n, s = chain.assumptions, chain.series, chain.stores
    per_store = s / 25
    return {
        "forecasts": n * a.horizon_days,
        "forecast_components": n * (a.component_days + a.horizon_days),
        "demand_windows": n,
        # Days of the last 28 outside a 99% interval: about 1% by construction (not measured), with
        # either engine (the bigquery_ml branch reads them from ML.DETECT_ANOMALIES).
        "sales_anomalies": n * 0.01 * 28,
        "inventory_policy": n,
        "plan_exceptions": n * MEASURED["plan_exception_rows"] / MEASURED["series"],
        "replenishment_orders": n * MEASURED["order_rows"] / MEASURED["series"],
        "transfers": n * MEASURED["transfer_rows"] / MEASURED["series"],
        "routes": MEASURED["routes"] * per_store,
        "route_stops": MEASURED["route_stops"] * per_store,
        "quarantine": 0,
    }


def workbench_rows(chain: Chain) -> dict[str, float]:
    """Rows one run's publish writes into the workbench tables, scaled by series from the sample run."""
    scale = chain.series / MEASURED["series"]
    return {"plan_worklist": MEASURED["worklist_rows"] * scale, "plan_lines": MEASURED["plan_line_rows"] * scale,
            "plan_overview": 1.0}


def table_rows(chain: Chain, table: str) -> float:
    """Rows `table` holds on the run's day: `age_days` earlier runs and this one's, the history
    of sales, a snapshot a day, the dimension files, the weekly models' diagnostics."""
    a, n, days = chain.assumptions, chain.series, chain.age_days + 1
    runs = {**per_run_rows(chain), **workbench_rows(chain)}
    if table in runs:
        return runs[table] * days
    if table in ("released_loads", "released_routes", "released_route_stops"):
        planned = {"released_loads": runs["replenishment_orders"] + runs["transfers"],
                   "released_routes": runs["routes"], "released_route_stops": runs["route_stops"]}[table]
        return planned * days
    dims = dimension_rows(chain)
    if table in dims:
        return dims[table]
    if table == "sales":
        return a.sales_rows_per_series_day * n * (a.history_days + chain.age_days)
    if table == "inventory":
        return n * days
    if table == "runs":
        return days
    if table == "plan_decisions":  # every line approved once, and a RELEASE row per run
        return (runs["replenishment_orders"] + runs["transfers"] + 1) * days
    if table == "model_diagnostics":
        return n * (1 + chain.age_days // 7)
    if table == "model_versions":
        return 1 + chain.age_days // 7
    raise KeyError(f"no row count rule for table {table}")


def sql_reads(sql: str) -> dict[str, tuple[str, ...]]:
    """The columns a statement reads per table, from its SQL (sqlglot, BigQuery dialect, columns
    qualified with the tables of `sql/schema/`). The target of an INSERT is not read."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import traverse_scope

    known = {"d": {t: {c.name: c.type for c in schema.table(t).columns} for t in schema.all_tables()}}
    tree = sqlglot.parse_one(sql.replace("{dataset}", "d"), read="bigquery")
    if isinstance(tree, exp.Update):
        # UPDATE ... FROM (query) WHERE: the query's reads, and the target's columns it names
        # (sqlglot builds no scope for an UPDATE).
        out: dict[str, set[str]] = {}
        source = tree.args.get("from_") or tree.args.get("from")
        if source is not None:
            for sub in source.find_all(exp.Subquery):
                for t, cols in sql_reads(sub.this.sql(dialect="bigquery")).items():
                    out.setdefault(t, set()).update(cols)
                break
        alias = tree.this.alias_or_name
        named = {c.name for c in tree.find_all(exp.Column) if c.table == alias}
        out.setdefault(tree.this.name, set()).update(named)
        return {t: tuple(sorted(c for c in cols if c in schema.table(t).column_names)) for t, cols in out.items()}
    target = None
    if isinstance(tree, (exp.Insert, exp.Update, exp.Delete)):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    tree = qualify(tree, schema=known, dialect="bigquery", validate_qualify_columns=False, identify=False)
    out: dict[str, set[str]] = {}
    for scope in traverse_scope(tree):
        for alias, (_, source) in scope.selected_sources.items():
            if isinstance(source, exp.Table) and source is not target:
                out.setdefault(source.name, set()).update(c.name for c in scope.columns if c.table == alias)
    return {t: tuple(sorted(c for c in cols if c in schema.table(t).column_names) or [schema.table(t).column_names[0]])
            for t, cols in out.items()}


def sql_statement(chain: Chain, step: str, what: str, sql: str, rows: dict[str, float] | None = None,
                  count: int = 1, avoidable: str | None = None) -> "Statement":
    """A statement kept in `sql/` (or built from it): the columns it reads per table (`sql_reads`),
    over `rows[table]` rows where a filter prunes, else every row the table holds (a filter on
    run_id prunes nothing unless the table is clustered by it: see `run_clustered`)."""
    reads = sql_reads(sql)
    rows = rows or {}
    scanned = sum((rows[t] if t in rows else table_rows(chain, t)) * row_bytes(chain, t, cols)
                  for t, cols in reads.items())
    return Statement(step, what, scanned, max(1, len(reads)), count, avoidable)


def run_clustered(chain: Chain, table: str) -> float:
    """Rows read of a table clustered by run_id first, for a run_id filter: the run's own rows
    (block pruning taken as exact, an assumption)."""
    return table_rows(chain, table) / (chain.age_days + 1)


@functools.cache
def clustered_by_run(table: str) -> bool:
    """Whether the table's DDL (sql/schema/) clusters it by run_id first: a run_id filter then
    reads the run's blocks only, whatever the partitioning."""
    match = re.search(r"^CLUSTER BY\s+(\w+)", sqlfiles.read_sql(f"schema/{table}.sql"), re.MULTILINE)
    return bool(match) and match.group(1) == "run_id"


def run_read(chain: Chain, step: str, what: str, table: str, cols: tuple[str, ...] | None = None) -> "Statement":
    """A read of one run's rows of `table` by run_id: its blocks when the table is clustered by
    run_id, else every earlier run's rows too."""
    if clustered_by_run(table):
        return Statement(step, f"{what} (clustered by run_id)", run_clustered(chain, table) * row_bytes(chain, table, cols))
    return Statement(step, f"{what} (all partitions)", table_rows(chain, table) * row_bytes(chain, table, cols),
                     avoidable="reads every earlier run's rows to find this run's")


def run_rows(chain: Chain, sql: str) -> dict[str, float]:
    """`sql_statement` rows for a statement of one run: its tables clustered by run_id read the
    run's rows (the statement filters them by run_id), the others every row."""
    return {t: run_clustered(chain, t) for t in sql_reads(sql) if clustered_by_run(t)}


def dimension_rows(chain: Chain) -> dict[str, float]:
    per_store = chain.stores / 25
    return {"stores": chain.stores, "products": chain.products,
            "distribution_centers": max(1, round(MEASURED["dcs"] * per_store)),
            "vehicles": max(2, round(MEASURED["vehicles"] * per_store)),
            "promotions": chain.products * MEASURED["promotions"] / 300}


def shipments_per_run(chain: Chain) -> float:
    """Vehicle loads in the Route Optimization request: the sample's loads per store."""
    return MEASURED["shipments"] * chain.stores / 25


@dataclass
class Statement:
    step: str
    what: str
    scanned: float              # bytes the statement reads, before the 10 MB minimums
    tables: int = 1             # tables referenced (10 MB minimum each)
    count: int = 1
    avoidable: str | None = None  # why these bytes are not needed by the run, if they are not

    @property
    def billed(self) -> float:
        per = max(MIN_BILLED, max(self.scanned, MIN_BILLED * self.tables))
        return per * self.count


def _batches(chain: Chain, rows: float) -> int:
    return int(math.ceil(rows / chain.assumptions.dml_batch_rows)) if rows > 0 else 0


def daily_statements(chain: Chain) -> list[Statement]:
    """Every BigQuery job of one drop-triggered run (import, forecast, plan), in order.

    The run's tables hold `age_days` earlier runs; sales hold history_days + age_days days and
    inventory one full snapshot per day. Scans by `run_id` read every partition: no table is
    partitioned or clustered by run id.
    """
    a, n = chain.assumptions, chain.series
    age = chain.age_days
    sales_day = a.sales_rows_per_series_day * n
    runs = per_run_rows(chain)
    dims = dimension_rows(chain)
    inv_rows = n * (age + 1)
    out: list[Statement] = []

    def table_scan(t: str, rows: float, cols: tuple[str, ...] | None = None) -> float:
        return rows * row_bytes(chain, t, cols)

    def control(step: str, what: str, count: int = 1) -> None:
        out.append(Statement(step, what, 0.0, 1, count))

    def ledger(step: str) -> None:
        control(step, "dedupe ledger: 2 claims (MERGE + SELECT each) and 2 finishes on processed_events", 6)

    def replace_rows(step: str, table: str, new_rows: float) -> None:
        before = runs[table] * age
        if clustered_by_run(table):  # a first attempt's DELETE finds no block of the run
            out.append(Statement(step, f"DELETE {table} WHERE run_id (clustered by run_id)", 0.0))
        else:
            out.append(Statement(step, f"DELETE {table} WHERE run_id (all partitions)",
                                 table_scan(table, before, ("run_id",)),
                                 avoidable="scan of run_id over every partition (no run_id pruning)"))
        k = _batches(chain, new_rows)
        if k:
            out.append(Statement(step, f"INSERT {table}: {k:,} batches of {a.dml_batch_rows:,} rows", 0.0, 1, k,
                                 avoidable="10 MB minimum per 2,000-row INSERT batch"))

    def read_run(step: str, table: str, cols: tuple[str, ...] | None = None, use: str = "") -> None:
        prefix = f"{use}: " if use else ""
        if clustered_by_run(table):
            out.append(Statement(step, f"{prefix}SELECT * FROM {table} WHERE run_id (clustered by run_id)",
                                 table_scan(table, runs[table], cols)))
        else:
            out.append(Statement(step, f"{prefix}SELECT * FROM {table} WHERE run_id (all partitions)",
                                 table_scan(table, runs[table] * (age + 1), cols),
                                 avoidable="reads every earlier run's rows to find this run's"))

    # --- import: storage event -> start handler -> import_step ---------------------------------
    ledger("import")
    control("import", "recover_runs, get_run, insert_run, renew_lease, get_run (runs)", 5)
    for t, rows in dims.items():
        control("import", f"{t}: COUNT(*) and DELETE WHERE TRUE", 2)
        k = _batches(chain, rows)
        if k:
            out.append(Statement("import", f"INSERT {t}: {k:,} batches", 0.0, 1, k))
    out.append(Statement("import", "inventory: COUNT(*) of the snapshot day", table_scan("inventory", 0)))
    k = _batches(chain, n)
    out.append(Statement("import", f"INSERT inventory snapshot: {k:,} batches", 0.0, 1, k,
                         avoidable="10 MB minimum per 2,000-row INSERT batch"))
    out.append(Statement("import", "sales: COUNT(*) of the drop's days", table_scan("sales", 0)))
    k = _batches(chain, sales_day)
    out.append(Statement("import", f"INSERT one day of sales: {k:,} batches", 0.0, 1, k,
                         avoidable="10 MB minimum per 2,000-row INSERT batch"))
    control("import", "quarantine DELETE by run_id (no rows to insert)")

    # --- forecast ----------------------------------------------------------------------------
    ledger("forecast")
    control("forecast", "get_run x2, renew_lease, status check (runs)", 4)
    out.append(Statement("forecast", "latest_inventory: every snapshot ever loaded, all columns",
                         table_scan("inventory", inv_rows),
                         avoidable="reads all past snapshots to keep the latest"))
    out.append(Statement("forecast", "stores, distribution_centers", 0.0, 1, 2))
    if chain.forecast_engine == "bigquery_ml":
        out.append(sql_statement(chain, "forecast", "model_versions: the chain's trainings (select_model)",
                                 sqlfiles.read_sql("queries/model_versions.sql")))
        if chain.xreg:
            # The model's own reads are not documented (10 MB minimum assumed, as for ARIMA_PLUS);
            # its table argument, the future regressors, reads history_days partitions of sales.
            features = sqlfiles.read_sql("forecasting/future_features.sql")
            history = {"sales": sales_day * a.history_days}
            for fn in ("ML.FORECAST", "ML.EXPLAIN_FORECAST"):
                out.append(sql_statement(chain, "forecast", f"{fn} with the future regressors "
                                         "(future_features.sql) as its table argument", features, history))
            out.append(sql_statement(chain, "forecast", "promoted_days: the regressors' promoted series-days",
                                     sqlfiles.read_sql("forecasting/promoted_days.sql").replace("{features}", features),
                                     history))
        else:
            out.append(Statement("forecast", "ML.FORECAST (model read; bytes not documented: 10 MB minimum assumed)", 0.0))
            out.append(Statement("forecast", "ML.EXPLAIN_FORECAST (idem)", 0.0))
        out.append(detect_statement(chain))
    else:
        hist = sales_day * a.history_days
        out.append(Statement("forecast", f"sales_history: {a.history_days} partitions, 6 columns",
                             table_scan("sales", hist)))
        out.append(Statement("forecast", "planned_promotions", table_scan("promotions", dims["promotions"])))
    for t in _defined(("forecasts", "demand_windows", "forecast_components", "sales_anomalies")):
        replace_rows("forecast", t, runs[t])

    # --- plan and publish ----------------------------------------------------------------------
    ledger("plan")
    control("plan", "get_run x4, renew_lease x2, finish_run, status checks (runs)", 9)
    out.append(Statement("plan", "stores, distribution_centers, products, vehicles", 0.0, 1, 4))
    out.append(Statement("plan", "latest_inventory again", table_scan("inventory", inv_rows),
                         avoidable="reads all past snapshots to keep the latest"))
    read_run("plan", "forecasts")
    read_run("plan", "demand_windows")
    for t in ("inventory_policy", "plan_exceptions", "transfers", "replenishment_orders", "routes", "route_stops"):
        replace_rows("plan", t, runs[t])
    for use in ("compute_kpis", "report"):
        for t in ("inventory_policy", "transfers", "replenishment_orders", "routes", "route_stops"):
            read_run("plan", t, use=use)
        control("plan", f"{use}: quarantine WHERE run_id")
    control("plan", "report: stores, distribution_centers, replay_results", 3)
    # Six forecast charts: forecasts and 91 days of sales of one store x product each. forecasts is
    # clustered by run_id then store_id, sales by store_id first, so a store_id = @x filter is
    # taken to read 1/stores of the run's forecasts and of the sales days.
    chart_cols = ("run_id", "store_id", "product_id", "forecast_date", "forecast_mean", "lower_bound", "upper_bound")
    chart_f = table_scan("forecasts", runs["forecasts"] * (1 if clustered_by_run("forecasts") else age + 1),
                         chart_cols) / chain.stores
    chart_s = table_scan("sales", sales_day * 91, ("store_id", "product_id", "sale_date", "units")) / chain.stores
    out.append(Statement("plan", "report: 6 forecast charts (forecasts by run, store, product)", chart_f, 1, 6))
    out.append(Statement("plan", "report: 6 charts' sales history (91 days, one store)", chart_s, 1, 6))
    out.extend(publish_statements(chain))
    return out


def _detect_input(sql: str) -> str:
    """The new-data query of a detect statement's second ML.DETECT_ANOMALIES call."""
    def closing(text: str, at: int) -> int:
        depth = 0
        for i in range(at, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                return i
        raise ValueError("unbalanced parentheses")

    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    call = [i for i in range(len(sql)) if sql.startswith("ML.DETECT_ANOMALIES(", i)][-1]
    struct = sql.index("STRUCT(", call) + len("STRUCT")
    start = sql.index("(", closing(sql, struct) + 1)
    return sql[start + 1:closing(sql, start)]


def detect_statement(chain: Chain) -> Statement:
    """ML.DETECT_ANOMALIES on the run's model (sql/forecasting/detect_anomalies[_xreg].sql): the
    model's own reads are not documented (10 MB minimum), its new data joins sales on sale_date
    without a constant filter (every partition read), and the promotion flags of the 28 days."""
    a = chain.assumptions
    sales_day = a.sales_rows_per_series_day * chain.series
    path = "forecasting/detect_anomalies_xreg.sql" if chain.xreg else "forecasting/detect_anomalies.sql"
    new_data = sql_statement(chain, "forecast", "", _detect_input(sqlfiles.read_sql(path)))
    promoted = sales_day * 28 * row_bytes(chain, "sales", ("store_id", "product_id", "sale_date", "on_promotion"))
    return Statement("forecast", f"ML.DETECT_ANOMALIES x2 ({path.split('/')[1]}): new data and the days' "
                     "promotion flags", new_data.scanned + promoted, new_data.tables + 1,
                     avoidable="the new data's join on sale_date reads every partition of sales")


def publish_statements(chain: Chain) -> list[Statement]:
    """The publish step's reorder read and its workbench tables (workbench/store.publish): the
    worklist a block of stores at a time, its ranks, the lines and the figures."""
    from retailopt.workbench import store

    n = chain.series
    out: list[Statement] = []
    cols = ("run_id", "order_id", "dc_id", "store_id", "product_id", "quantity", "cases", "order_value",
            "expected_arrival")
    out.append(run_read(chain, "plan", "reorder messages: replenishment_orders WHERE run_id", "replenishment_orders",
                        cols))
    # The three tables are clustered by run_id: a first attempt's DELETE reads the run's (no) blocks.
    out.append(Statement("publish", "workbench: DELETE plan_overview, plan_lines, plan_worklist WHERE run_id "
                         "(clustered by run_id)", 0.0, 1, 3))
    out.append(run_read(chain, "publish", "workbench: store blocks (inventory_policy WHERE run_id GROUP BY store_id)",
                        "inventory_policy", ("run_id", "store_id")))
    blocks = max(1, math.ceil(n / store.BLOCK_POSITIONS))
    worklist = store._worklist_insert()
    unpruned = sorted(t for t in sql_reads(worklist) if t not in ("runs", "inventory") and not clustered_by_run(t))
    out.append(sql_statement(chain, "publish", f"workbench: worklist INSERT (wb_worklist.sql), {blocks:,} "
                             "block(s) of stores", worklist,
                             {**run_rows(chain, worklist), "runs": 1.0, "inventory": n * (chain.age_days + 1)},
                             count=blocks,
                             avoidable="each block reads every inventory snapshot up to the run date"
                                       + (f" and every earlier run's rows of {', '.join(unpruned)}" if unpruned else "")))
    out.append(sql_statement(chain, "publish", "workbench: worklist ranks UPDATE", store._RANK_UPDATE,
                             {"plan_worklist": 2 * run_clustered(chain, "plan_worklist")}))
    lines_sql = sqlfiles.read_sql("queries/wb_publish_lines.sql")
    out.append(sql_statement(chain, "publish", "workbench: lines INSERT (wb_publish_lines.sql), TRANSFER and ORDER",
                             lines_sql, run_rows(chain, lines_sql), count=2))
    overview_sql = sqlfiles.read_sql("queries/wb_publish_overview.sql")
    out.append(sql_statement(chain, "publish", "workbench: figures INSERT (wb_publish_overview.sql)",
                             overview_sql, run_rows(chain, overview_sql)))
    out.append(Statement("publish", "workbench: plan_overview row read back (clustered by run_id)", 0.0))
    return out


def _lines_statement(chain: Chain, what: str, count: int, *, one_line: bool) -> Statement:
    """views.lines_by_id / views.all_lines: wb_lines.sql (plan_lines and plan_decisions, both clustered by
    run_id: the run's rows) with the names of product, sender and store."""
    from retailopt.workbench import views

    inner = views._lines_sql("l.line_id IN UNNEST(@line_ids)") if one_line else views._lines_sql()
    return sql_statement(chain, "review" if one_line else "release", what, views._named(inner),
                         {"plan_lines": run_clustered(chain, "plan_lines"),
                          "plan_decisions": run_clustered(chain, "plan_decisions")}, count=count)


def review_statements(chain: Chain) -> list[Statement]:
    """BigQuery jobs of a planner approving every line in the workbench, then releasing the run.

    `decisions.decide` takes at most MAX_BATCH lines a request: `check_open`, one
    `views.lines_by_id` lookup per request and kind (wb_lines.sql on plan_lines, clustered by
    run_id), one plan_decisions INSERT.
    `release` reads the approved lines of both kinds, reads the run's plan rows and dimension
    tables for the released loads and routes (`decisions._write_released_routes`), replaces
    released_loads, released_routes and released_route_stops, and inserts the RELEASE row.
    """
    from retailopt.workbench.decisions import MAX_BATCH

    runs = per_run_rows(chain)
    out = []
    for kind, lines in (("orders", runs["replenishment_orders"]), ("transfers", runs["transfers"])):
        requests = int(math.ceil(lines / MAX_BATCH))
        out.append(_lines_statement(chain, f"decide: {kind} line lookup (wb_lines.sql), one per {MAX_BATCH} lines",
                                    requests, one_line=True))
        out.append(Statement("review", f"decide: check_open (released(), plan_decisions) and plan_decisions "
                             f"INSERT, per {MAX_BATCH} {kind}", 0.0, 1, 3 * requests))
    out.append(Statement("release", "ledger claim, check_open, released()", 0.0, 1, 5))
    for kind in ("orders", "transfers"):
        out.append(_lines_statement(chain, f"all approved {kind} (wb_lines.sql with names)", 1, one_line=False))
    for t in ("transfers", "replenishment_orders", "routes", "route_stops"):
        out.append(run_read(chain, "release", f"released routes: SELECT * FROM {t} WHERE run_id", t))
    out.append(Statement("release", "released routes: stores, distribution_centers, products, vehicles", 0.0, 1, 4))
    released = {"released_loads": runs["replenishment_orders"] + runs["transfers"],
                "released_routes": runs["routes"], "released_route_stops": runs["route_stops"]}
    for t, rows in released.items():
        if clustered_by_run(t):  # a first release's DELETE reads no block
            out.append(Statement("release", f"DELETE {t} WHERE run_id (clustered by run_id)", 0.0))
        else:
            out.append(Statement("release", f"DELETE {t} WHERE run_id (all partitions)",
                                 rows * chain.age_days * row_bytes(chain, t, ("run_id",)),
                                 avoidable="scan of run_id over every partition (no run_id pruning)"))
        k = _batches(chain, rows)
        out.append(Statement("release", f"INSERT {t}: {k:,} batches of {chain.assumptions.dml_batch_rows:,} rows",
                             0.0, 1, k))
    out.append(Statement("release", "RELEASE row INSERT and ledger finish", 0.0, 1, 2))
    return out


def reroute_shipments(chain: Chain) -> float:
    """Shipments of the Route Optimization request a release sends when decisions changed what the
    trucks carry (workbench/reroute.py): the approved lines packed again, taken as the planned
    loads (all lines approved at changed quantities)."""
    return shipments_per_run(chain)


def training_bytes(chain: Chain) -> dict[str, float]:
    """Bytes the weekly CREATE MODEL's input query reads (sql/forecasting/create_model.sql, or
    create_model_xreg.sql with the regressors): its series CTE reads history_days partitions, its
    LEFT JOIN of sales has no date filter and reads every partition (counted separately, as two
    scans of the table)."""
    a = chain.assumptions
    day = a.sales_rows_per_series_day * chain.series
    series = day * a.history_days * row_bytes(chain, "sales", ("store_id", "product_id", "sale_date"))
    joined_cols = ("store_id", "product_id", "sale_date", "units") + (("price", "on_promotion") if chain.xreg else ())
    joined = day * (a.history_days + chain.age_days) * row_bytes(chain, "sales", joined_cols)
    extra = 0.0
    if chain.xreg:  # promotions (twice: store-level and chain-wide days) and products' price
        dims = dimension_rows(chain)
        extra = (2 * dims["promotions"] * row_bytes(chain, "promotions")
                 + dims["products"] * row_bytes(chain, "products", ("product_id", "price")))
    input_bytes = series + joined + extra
    return {"input_bytes": input_bytes, "billed_bytes": input_bytes * a.candidate_models}


def training_statements(chain: Chain) -> dict[str, list[Statement]]:
    """The BigQuery jobs around the weekly training ("weekly": submit and, when the check sees it
    DONE, ML.ARIMA_EVALUATE into model_diagnostics) and the training check every
    `training_check_minutes` ("daily": the running trainings, none most of the time)."""
    a = chain.assumptions
    dims = dimension_rows(chain)
    sales_day = a.sales_rows_per_series_day * chain.series
    weekly = [
        sql_statement(chain, "retrain", "last_sale_before", sqlfiles.read_sql("queries/last_sale_before.sql"),
                      {"sales": sales_day * (a.history_days + chain.age_days)}),
        sql_statement(chain, "retrain", "promotion_use: promotion plan and promoted history days",
                      sqlfiles.read_sql("forecasting/promotion_use.sql"),
                      {"sales": sales_day * a.history_days, "promotions": dims["promotions"]}),
        sql_statement(chain, "retrain", "model_versions: the chain's trainings",
                      sqlfiles.read_sql("queries/model_versions.sql")),
        Statement("retrain", "model_versions INSERT (RUNNING)", 0.0),
        # record_diagnostics: the model's partition (trained_on) only, then one INSERT ... SELECT
        # from ML.ARIMA_EVALUATE inside BigQuery (its model read: 10 MB minimum assumed) and a count.
        Statement("training", "DELETE model_diagnostics WHERE trained_on AND model_name (its partition)", 0.0),
        Statement("training", "INSERT model_diagnostics SELECT ... FROM ML.ARIMA_EVALUATE (record_diagnostics.sql)",
                  0.0),
        Statement("training", "COUNT(*) of the rows written (its partition)", 0.0),
        Statement("training", "finish_training UPDATE (DONE)", 0.0),
    ]
    checks = int(24 * 60 / a.training_check_minutes)
    daily = [sql_statement(chain, "training", f"training check: running_trainings, {checks} a day",
                           sqlfiles.read_sql("queries/running_trainings.sql"), count=checks)]
    return {"weekly": weekly, "daily": daily}


def storage_bytes(chain: Chain) -> dict[str, float]:
    """Logical bytes each table holds after `age_days` runs, split into active and long-term."""
    a, n = chain.assumptions, chain.series
    days = chain.age_days + 1
    active_days = min(days, a.active_days)
    runs = per_run_rows(chain)
    sales_day = a.sales_rows_per_series_day * n * row_bytes(chain, "sales")
    active = longterm = 0.0
    per_table: dict[str, float] = {}
    daily = {t: runs[t] * row_bytes(chain, t) for t in _defined(RESULT_TABLES)}
    daily.update({t: rows * row_bytes(chain, t) for t, rows in workbench_rows(chain).items()})
    daily["inventory"] = n * row_bytes(chain, "inventory")
    # reorder_messages: one row per released line, `data` holding the message JSON.
    message_row = row_bytes(chain, "reorder_messages") - column_bytes(chain, "reorder_messages", "data")
    daily["reorder_messages"] = (runs["replenishment_orders"] + runs["transfers"]) * (
        message_row + 2 + REORDER_JSON_BYTES)
    for t, per_day in daily.items():
        per_table[t] = per_day * days
        active += per_day * active_days
        longterm += per_day * (days - active_days)
    total_sales_days = a.history_days + chain.age_days
    per_table["sales"] = sales_day * total_sales_days
    active += sales_day * min(total_sales_days, a.active_days)
    longterm += sales_day * max(0, total_sales_days - a.active_days)
    return {"active": active, "longterm": longterm, "per_table": per_table}


def forecast_output_bytes(chain: Chain) -> float:
    """Upper bound for ML.FORECAST + ML.EXPLAIN_FORECAST if billed by the rows they return."""
    a, n = chain.assumptions, chain.series
    ids = 2 + chain.string_len("store_id") + 2 + chain.string_len("product_id")
    forecast = n * a.horizon_days * (ids + 8 * 6)
    explain = n * (a.history_days + a.horizon_days) * (ids + 8 * 14 + 2 + 7.5)
    return forecast + explain


def message_sizes(chain: Chain) -> dict[str, int]:
    """Encoded body + attributes + 20 B timestamp + message id of the run's Pub/Sub messages."""
    from retailopt.services import messages

    run_id = "default-20260115-0123456789"
    common = {"chain_id": "default", "run_id": run_id, "run_date": "2026-01-15"}

    def size(msg: dict[str, Any]) -> int:
        attrs = messages.attributes(msg)
        return len(messages.encode(msg)) + sum(len(k) + len(v) for k, v in attrs.items()) + 20 + 16

    order = {"order_id": "O20260115-000001", "dc_id": "DC01", "store_id": "S" + "0" * (chain.string_len("store_id") - 1),
             "product_id": "P" + "0" * int(chain.string_len("product_id") - 1), "quantity": 24, "cases": 1,
             "order_value": 133.44, "expected_arrival": "2026-01-17"}
    summary = {"kpis": {f"kpi_{i:02d}": 123456.78 for i in range(23)}, "orders": 2390,
               "artifacts": [f"runs/{run_id}/{name}" for name in MEASURED["artifact_bytes"]],
               "artifacts_location": f"gs://project-retailopt-artifacts/runs/{run_id}/"}
    transfer = {"transfer_id": "T20260115-000001", "product_id": order["product_id"],
                "from_store_id": order["store_id"], "to_store_id": order["store_id"], "quantity": 6}
    return {"step": size(messages.make_message("plan", **common)),
            "published": size(messages.make_message("published", summary=summary, **common)),
            "reorder": size(messages.make_message("reorder", order=order, **common)),
            "transfer": size(messages.make_message("transfer", transfer=transfer, **common))}


def cloud_run(chain: Chain, statements: list[Statement]) -> dict[str, dict[str, float]]:
    """Billed instance seconds per service: measured CPU work (scaled) + BigQuery waits + start."""
    a = chain.assumptions
    jobs = {s: sum(x.count for x in statements if x.step == s) for s in ("import", "forecast", "plan", "publish")}
    jobs["plan"] += jobs.pop("publish")  # the publish step runs in the plan service
    step = MEASURED["step_s"]
    import_rows_measured = MEASURED["sales_rows"] + MEASURED["series"]
    daily_import_rows = chain.series * (1 + a.sales_rows_per_series_day)
    import_cpu = step["import"] * daily_import_rows / import_rows_measured
    if chain.forecast_engine == "bigquery_ml":
        # Linear in series: a lower bound, protection_from_daily grows faster (MEASURED).
        forecast_cpu = MEASURED["bqml_forecast_cpu_s"] * chain.scale
    elif chain.scale > 1:
        forecast_cpu = chain.series / MEASURED["engine_series_per_s_at_scale"]
    else:
        forecast_cpu = step["forecast"] * chain.scale
    # Publish (artifacts, report) and process start: the bench-run wall time the steps leave over.
    publish_cpu = MEASURED["wall_s"] - MEASURED["setup_s"] - step["import"] - step["forecast"] - step["plan"]
    # Routing waits for the solver's time limit (the local solver uses it all, the API is given it).
    plan_cpu = (step["plan"] - step["routing"] + publish_cpu) * chain.scale + a.routing_time_limit_s
    services = {"import": (1, 2, import_cpu), "forecast": (2, 4, forecast_cpu), "plan": (2, 4, plan_cpu)}
    out = {}
    for name, (vcpu, gib, cpu_s) in services.items():
        wall = a.cold_start_s + cpu_s + jobs[name] * a.statement_latency_s
        out[name] = {"vcpu": vcpu, "gib": gib, "cpu_work_s": cpu_s, "bigquery_jobs": jobs[name],
                     "wall_s": wall, "vcpu_s": vcpu * wall, "gib_s": gib * wall}
    return out


def route_opt_cost(shipments_month: float) -> float:
    low = min(shipments_month, 100_000)
    rest = max(0.0, shipments_month - 100_000)
    # Above 500,000 a month the price is by contract ("contact sales"): the 100k-500k rate is used.
    return low * PRICES["route_opt_fleet_0_100k"][0] + rest * PRICES["route_opt_fleet_100k_500k"][0]


def estimate(chain: Chain) -> dict[str, Any]:
    a = chain.assumptions
    p = {k: v for k, (v, _) in PRICES.items()}
    month = a.runs_per_month
    stmts = daily_statements(chain)
    billed = sum(s.billed for s in stmts)
    avoidable = sum(s.billed for s in stmts if s.avoidable)
    jobs = sum(s.count for s in stmts)
    runs = per_run_rows(chain)
    rows: dict[str, dict[str, Any]] = {}

    rows["bigquery_queries"] = {"per_run": billed / TIB * p["bq_query_per_tib"],
                                "detail": f"{billed / GIB:,.1f} GiB billed by {jobs:,} jobs "
                                          f"({avoidable / GIB:,.1f} GiB avoidable)"}
    st = storage_bytes(chain)
    storage_month = (st["active"] / GIB * p["bq_active_storage_per_gib_month"]
                     + st["longterm"] / GIB * p["bq_longterm_storage_per_gib_month"])
    rows["bigquery_storage"] = {"per_run": storage_month / month, "per_month": storage_month,
                                "detail": f"{(st['active'] + st['longterm']) / GIB:,.1f} GiB logical "
                                          f"({st['active'] / GIB:,.1f} active)"}
    if chain.forecast_engine == "bigquery_ml":
        tr = training_bytes(chain)
        week = tr["billed_bytes"] / TIB * p["bq_create_model_per_tib"]
        rows["bqml_training"] = {"per_run": week / 7, "per_month": week * month / 7,
                                 "detail": f"weekly: {tr['input_bytes'] / GIB:,.1f} GiB input x "
                                           f"{a.candidate_models} candidates = {tr['billed_bytes'] / GIB:,.1f} GiB billed, "
                                           f"${week:,.2f}/week"}
        ts = training_statements(chain)
        weekly_b = sum(x.billed for x in ts["weekly"])
        daily_b = sum(x.billed for x in ts["daily"])
        checks = sum(x.count for x in ts["daily"])
        # The training service (1 vCPU, 1 GiB): each check, and the week's evaluation and
        # diagnostics writes, one BigQuery job round trip each.
        weekly_jobs = sum(x.count for x in ts["weekly"] if x.step == "training")
        check_s = checks * a.training_check_s + weekly_jobs * a.statement_latency_s / 7
        check_run = check_s * (p["run_vcpu_second"] + p["run_gib_second"])
        per_run = ((weekly_b / 7 + daily_b) / TIB * p["bq_query_per_tib"] + check_run
                   + checks / 1e6 * p["run_per_million_requests"])
        rows["bqml_evaluate_and_check"] = {
            "per_run": per_run,
            "detail": f"weekly ML.ARIMA_EVALUATE into model_diagnostics and bookkeeping "
                      f"({sum(x.count for x in ts['weekly']):,} jobs, {weekly_b / GIB:,.2f} GiB); "
                      f"training check every {a.training_check_minutes} min ({checks} jobs and requests a day, "
                      f"{daily_b / GIB:,.2f} GiB); {check_s:,.0f} s a day of the training service"}
        upper = forecast_output_bytes(chain)
        rows["bqml_forecast_explain"] = {"per_run": 2 * MIN_BILLED / TIB * p["bq_query_per_tib"],
                                         "detail": f"10 MB minimum each; upper bound if billed by output rows: "
                                                   f"{upper / GIB:,.1f} GiB = ${upper / TIB * p['bq_query_per_tib']:,.2f}"}
    cr = cloud_run(chain, stmts)
    vcpu_s = sum(v["vcpu_s"] for v in cr.values())
    gib_s = sum(v["gib_s"] for v in cr.values())
    requests = 3
    run_cost = vcpu_s * p["run_vcpu_second"] + gib_s * p["run_gib_second"] + requests / 1e6 * p["run_per_million_requests"]
    # The retrain service (1 vCPU, 1 GiB) submits the training job and answers at once: a cold
    # start and its bookkeeping jobs (training_statements, step "retrain") a week.
    retrain_s = (a.cold_start_s + a.statement_latency_s * sum(
        x.count for x in training_statements(chain)["weekly"] if x.step == "retrain")
        if chain.forecast_engine == "bigquery_ml" else 0.0)
    retrain_week = retrain_s * (p["run_vcpu_second"] + p["run_gib_second"])
    work_vcpu_s = sum(v["vcpu"] * v["cpu_work_s"] for v in cr.values())
    rows["cloud_run"] = {"per_run": run_cost + retrain_week / 7,
                         "detail": f"{vcpu_s:,.0f} vCPU-s, {gib_s:,.0f} GiB-s, {requests} requests; "
                                   f"of which CPU work {work_vcpu_s:,.0f} vCPU-s"
                                   + (f" (+ retrain: {retrain_s:,.0f} s x 1 vCPU / 1 GiB a week)" if retrain_week else "")}
    sizes = message_sizes(chain)
    reorders, transfers = runs["replenishment_orders"], runs["transfers"]
    # The plan step publishes `forecast`, `plan` and `published`; the release publishes one message
    # per order and transfer line (batches of 100); BigQuery subscriptions deliver published and
    # reorders into their tables (delivery priced like push delivery: an assumption).
    released = reorders * sizes["reorder"] + transfers * sizes["transfer"]
    publish = (2 * max(1000, sizes["step"]) + max(1000, sizes["published"])
               + max(released, 1000 * math.ceil((reorders + transfers) / 100)))
    deliveries = 2 * max(1000, sizes["step"]) + max(1000, sizes["published"]) + released
    ps_bytes = publish + deliveries
    rows["pubsub"] = {"per_run": ps_bytes / TIB * p["pubsub_per_tib"],
                      "detail": f"{ps_bytes / MIB:,.2f} MiB: {reorders + transfers:,.0f} released order and "
                                f"transfer messages of about {sizes['reorder']} B published and written to "
                                f"reorder_messages, 3 step messages, 2 pushes"}
    scale = chain.scale
    shipments = shipments_per_run(chain)
    art = MEASURED["artifact_bytes"]
    lines_measured = MEASURED["order_rows"] + MEASURED["transfer_rows"] + MEASURED["routes"] + MEASURED["route_stops"]
    lines = runs["replenishment_orders"] + runs["transfers"] + runs["routes"] + runs["route_stops"]
    artifacts = (art["plan.json"] * lines / lines_measured + art["report.html"] + art["summary.json"]
                 + art["routes.geojson"] * runs["route_stops"] / MEASURED["route_stops"]
                 + (art["routes_request.json"] + art["routes_response.json"]) * shipments / MEASURED["shipments"])
    drop_b = MEASURED["drop_bytes"]
    drop = (drop_b["inventory.csv"] * scale
            + drop_b["sales.parquet"] / MEASURED["history_days"] * scale
            + (drop_b["products.csv"] * chain.products / 300) + drop_b["stores.csv"] * chain.stores / 25
            + drop_b["vehicles.csv"] + drop_b["distribution_centers.csv"] + drop_b["promotions.csv"] * chain.products / 300)
    # Both buckets: Standard, Nearline after 30 days, deleted after their retention (storage.tf).
    days = chain.age_days + 1
    kept_std = (drop + artifacts) * min(30, days)
    kept_nl = (drop * max(0, min(a.raw_retention_days, days) - 30)
               + artifacts * max(0, min(a.artifacts_retention_days, days) - 30))
    gcs_month = (kept_std / 1e9 * p["gcs_standard_per_gb_month"]
                 + kept_nl / 1e9 * p["gcs_nearline_per_gb_month"])
    ops = (9 + 6) / 1000 * p["gcs_class_a_per_1000"] + 8 / 1000 * p["gcs_class_b_per_1000"]
    rows["cloud_storage"] = {"per_run": gcs_month / month + ops,
                             "detail": f"{artifacts / 1e6:,.1f} MB artifacts + {drop / 1e6:,.1f} MB drop per run; "
                                       f"{(kept_std + kept_nl) / 1e9:,.1f} GB kept"}
    ro_month = route_opt_cost(shipments * month) if chain.routing_engine == "api" else 0.0
    rows["route_optimization"] = {"per_run": ro_month / month, "per_month": ro_month,
                                  "detail": f"{shipments:,.0f} shipments per run (Fleet Routing SKU)"
                                  if chain.routing_engine == "api" else "local OR-Tools solver: no API call"}
    sched = 3 if chain.forecast_engine == "bigquery_ml" else 2
    rows["cloud_scheduler"] = {"per_run": sched * p["scheduler_per_job_month"] / month,
                               "per_month": sched * p["scheduler_per_job_month"],
                               "detail": f"{sched} jobs (planning, retrain"
                                         + (", training check)" if sched == 3 else ")")}
    check_jobs = (sum(x.count for x in training_statements(chain)["daily"])
                  if chain.forecast_engine == "bigquery_ml" else 0)
    log_bytes = (a.log_entries_per_run * a.log_entry_bytes + jobs * a.audit_entry_bytes
                 + check_jobs * (a.audit_entry_bytes + a.log_entry_bytes))
    rows["cloud_logging"] = {"per_run": log_bytes / GIB * p["logging_per_gib"],
                             "detail": f"{a.log_entries_per_run} service entries + {jobs:,} BigQuery audit "
                                       f"entries" + (f" + {check_jobs} training checks (a request log and an audit "
                                                     "entry each)" if check_jobs else "")
                                       + f" = {log_bytes / MIB:,.1f} MiB"}
    for r in rows.values():
        r.setdefault("per_month", r["per_run"] * month)
    review = review_statements(chain)
    review_bytes = sum(x.billed for x in review)
    review_jobs = sum(x.count for x in review)
    review_api_s = review_jobs * a.statement_latency_s  # the api service (1 vCPU, 1 GiB) waits for them
    review_run = (review_bytes / TIB * p["bq_query_per_tib"]
                  + review_api_s * (p["run_vcpu_second"] + p["run_gib_second"]))
    # When decisions changed what the trucks carry, the release sends one more Route Optimization
    # request (the approved loads) and the api waits for the solver's time limit.
    shipments_month = shipments_per_run(chain) * month if chain.routing_engine == "api" else 0.0
    extra = reroute_shipments(chain) * month if chain.routing_engine == "api" else 0.0
    reroute_month = route_opt_cost(shipments_month + extra) - route_opt_cost(shipments_month)
    reroute_run = reroute_month / month + a.routing_time_limit_s * (p["run_vcpu_second"] + p["run_gib_second"])
    total_run = sum(r["per_run"] for r in rows.values())
    total_month = sum(r["per_month"] for r in rows.values())
    return {"chain": {"stores": chain.stores, "products": chain.products, "series": chain.series,
                      "age_days": chain.age_days, "forecast_engine": chain.forecast_engine,
                      "routing_engine": chain.routing_engine},
            "assumptions": asdict(a), "rows_per_run": runs, "bigquery_jobs": jobs,
            "bigquery_billed_bytes": billed, "bigquery_avoidable_bytes": avoidable,
            "storage": st, "cloud_run": cr, "message_bytes": sizes, "components": rows,
            "total_per_run": total_run, "total_per_month": total_month,
            "review_release": {"per_run": review_run, "per_month": review_run * month, "bigquery_jobs": review_jobs,
                               "billed_bytes": review_bytes, "api_seconds": review_api_s,
                               "lines": runs["replenishment_orders"] + runs["transfers"],
                               "reroute_per_run": reroute_run, "reroute_per_month": reroute_run * month,
                               "reroute_shipments": reroute_shipments(chain) if chain.routing_engine == "api" else 0},
            "statements": [asdict(s) | {"billed": s.billed} for s in stmts + review + (
                training_statements(chain)["weekly"] + training_statements(chain)["daily"]
                if chain.forecast_engine == "bigquery_ml" else [])]}


def render(result: dict[str, Any]) -> str:
    c = result["chain"]
    lines = [f"{c['stores']:,} stores x {c['products']:,} products = {c['series']:,} series; "
             f"tables hold {c['age_days']} earlier runs; forecast {c['forecast_engine']}, routing {c['routing_engine']}",
             "", "| component | per run (USD) | per month (USD) | how |", "|---|---:|---:|---|"]
    for name, r in result["components"].items():
        lines.append(f"| {name} | {r['per_run']:,.4f} | {r['per_month']:,.2f} | {r['detail']} |")
    lines.append(f"| total | {result['total_per_run']:,.4f} | {result['total_per_month']:,.2f} | |")
    rv = result["review_release"]
    lines.append(f"| + review and release (every line approved in the workbench) | {rv['per_run']:,.4f} | "
                 f"{rv['per_month']:,.2f} | {rv['lines']:,.0f} lines: {rv['bigquery_jobs']:,} BigQuery jobs, "
                 f"{rv['billed_bytes'] / GIB:,.1f} GiB billed, {rv['api_seconds']:,.0f} s of api time |")
    lines.append(f"| + if decisions changed the loads: the release's Route Optimization request | "
                 f"{rv['reroute_per_run']:,.4f} | {rv['reroute_per_month']:,.2f} | "
                 f"{rv['reroute_shipments']:,.0f} shipments solved again |")
    lines += ["", "Cloud Run per service (wall = cold start + measured CPU work scaled + BigQuery jobs x latency):"]
    for name, v in result["cloud_run"].items():
        lines.append(f"  {name:<9} {v['wall_s']:>12,.0f} s wall, {v['cpu_work_s']:>10,.1f} s CPU work, "
                     f"{v['bigquery_jobs']:>9,} BigQuery jobs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retailopt.benchmarks.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=int, default=25)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--age-days", type=int, default=365, help="earlier daily runs the tables hold")
    parser.add_argument("--forecast-engine", choices=("bigquery_ml", "local"), default="bigquery_ml")
    parser.add_argument("--routing-engine", choices=("api", "local"), default="api")
    parser.add_argument("--statement-latency-s", type=float, default=Assumptions.statement_latency_s)
    parser.add_argument("--json", type=argparse.FileType("w"), default=None, help="write every figure as JSON")
    parser.add_argument("--statements", action="store_true", help="list the BigQuery statements of one run")
    args = parser.parse_args(argv)
    if args.stores < 1 or args.products < 1 or args.age_days < 0:
        parser.error("--stores and --products must be >= 1 and --age-days >= 0")
    chain = Chain(args.stores, args.products, args.age_days, args.forecast_engine, args.routing_engine,
                  replace(Assumptions(), statement_latency_s=args.statement_latency_s))
    result = estimate(chain)
    print(render(result))
    if args.statements:
        print("\n| step | statement | jobs | scanned GiB per job | billed GiB |\n|---|---|---:|---:|---:|")
        for s in result["statements"]:
            print(f"| {s['step']} | {s['what']} | {s['count']:,} | {s['scanned'] / GIB:,.3f} | {s['billed'] / GIB:,.3f} |")
    if args.json:
        json.dump(result, args.json, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
