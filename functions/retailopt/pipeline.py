"""The daily planning run: import → forecast → policy, rebalancing and routing → publish.

Each step reads its inputs from the warehouse and replaces its own rows for the run id, so a step
can be run again (at-least-once delivery) without duplicating anything. A run's results become
visible only when its `runs` row says COMPLETE; a failed run has its partial rows removed.
"""

from __future__ import annotations

import contextlib
import dataclasses

import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pandas as pd

from retailopt import schema, sqlfiles
from retailopt.config import Settings
from retailopt.ingest import InputError, load_inputs
from retailopt.loading import (DateRange, drop_staged, load_facts, load_parquet_file, load_staged_facts, new_load_id,
                               stage_parquet_file, stage_rows)
from retailopt.warehouse import Warehouse, open_warehouse
from retailopt.warehouse.base import query_file

if TYPE_CHECKING:
    import pyarrow as pa

    from retailopt.transfer_pricing import DayBackground

log = logging.getLogger(__name__)

# Whole lists: a file present replaces the table's content (promotions: the current plan).
DIMENSION_TABLES = ("stores", "distribution_centers", "products", "vehicles", "promotions")
# Tables a run writes besides `runs`; quarantine stays after a failure because it explains it.
RESULT_TABLES = ("forecasts", "forecast_components", "demand_windows", "sales_anomalies", "inventory_policy",
                 "plan_exceptions", "transfers", "replenishment_orders", "carried_lines", "routes", "route_stops",
                 "plan_worklist", "plan_lines", "plan_overview")


class RunNotFound(LookupError):
    """The run id is not in the runs table (a permanent error for a message handler)."""


class RunClosed(RunNotFound):
    """The run is no longer RUNNING (its lease expired and it was failed, or it finished): a step
    still working on it must not write (a permanent error for a message handler, like an unknown run)."""


@dataclass
class RunResult:
    run_id: str
    status: str
    run_date: date
    artifacts_dir: Path | None = None
    summary_path: Path | None = None
    kpis: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id(run_date: date) -> str:
    return f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:10]}"


def read_table(wh: Warehouse, table: str) -> pd.DataFrame:
    sqlfiles.check_table_name(table)
    return wh.query(f"SELECT * FROM `{{dataset}}.{table}`")


def read_run_rows(wh: Warehouse, table: str, run_id: str) -> pd.DataFrame:
    sqlfiles.check_table_name(table)
    return wh.query(f"SELECT * FROM `{{dataset}}.{table}` WHERE run_id = @run_id", {"run_id": run_id})


def replace_run_rows(wh: Warehouse, table: str, run_id: str, frame: pd.DataFrame,
                     run_date: date | None = None) -> int:
    """Idempotent write: the run's previous rows in `table` are replaced by `frame`."""
    sqlfiles.check_table_name(table)
    frame = frame.assign(run_id=run_id)
    if run_date is not None and "run_date" in schema.table(table).column_names:
        frame = frame.assign(run_date=run_date)
    wh.execute(f"DELETE FROM `{{dataset}}.{table}` WHERE run_id = @run_id", {"run_id": run_id})
    return wh.insert(table, frame)


def get_run(wh: Warehouse, run_id: str) -> dict[str, Any] | None:
    rows = query_file(wh, "run_by_id", {"run_id": run_id})
    if rows.empty:
        return None
    row = rows.iloc[0].to_dict()
    for key in ("parameters", "timings", "kpis"):
        row[key] = _json_or_none(row[key])
    row["run_date"] = pd.Timestamp(row["run_date"]).date()
    return row


def _json_or_none(text: Any) -> Any:
    """A stored JSON column; text that does not parse (written by hand, say) reads as None."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def latest_complete_run(wh: Warehouse) -> str | None:
    rows = query_file(wh, "latest_complete_run")
    return None if rows.empty else str(rows.run_id.iloc[0])


def _require_run(wh: Warehouse, run_id: str) -> dict[str, Any]:
    run = get_run(wh, run_id)
    if run is None:
        raise RunNotFound(f"unknown run {run_id!r}")
    return run


def default_run_date(wh: Warehouse) -> date:
    last = query_file(wh, "last_sale_date").last_sale_date.iloc[0]
    if last is None or pd.isna(last):
        raise InputError("no sales in the warehouse: import data first")
    return pd.Timestamp(last).date() + timedelta(days=1)


def start_run(wh: Warehouse, settings: Settings, run_id: str | None = None,
              run_date: date | None = None) -> str:
    """Record a RUNNING run holding a lease (nothing happens if the run id exists already)."""
    run_date = run_date or settings.run_date or default_run_date(wh)
    run_id = run_id or new_run_id(run_date)
    wh.execute(sqlfiles.read_sql("queries/insert_run.sql"), {
        "run_id": run_id, "run_date": run_date, "started_at": _now(),
        "parameters": json.dumps(settings.as_json(), sort_keys=True)})
    renew_lease(wh, run_id, settings.run_lease_s)
    return run_id


def _finish(wh: Warehouse, run_id: str, status: str, *, timings: dict | None = None, kpis: dict | None = None,
            error: str | None = None) -> None:
    wh.execute(sqlfiles.read_sql("queries/finish_run.sql"), {
        "run_id": run_id, "status": status, "finished_at": _now(),
        "timings": json.dumps(timings or {}), "kpis": json.dumps(kpis or {}, default=float), "error": error})


def _status(wh: Warehouse, run_id: str) -> str | None:
    run = get_run(wh, run_id)
    return None if run is None else str(run["status"])


def fail_run(wh: Warehouse, run_id: str, error: str) -> bool:
    """Mark a RUNNING run FAILED and remove its partial results; a COMPLETE run is left as it is.

    Returns whether the run is FAILED now. A FAILED run has its rows removed again (a step that
    was still working when the run was failed may have written some since).
    """
    with wh.transaction():
        status = _status(wh, run_id)
        if status not in ("RUNNING", "FAILED"):
            return False
        _remove_results(wh, run_id)
        if status == "RUNNING":
            _finish(wh, run_id, "FAILED", error=error[:2000])
    return True


def _remove_results(wh: Warehouse, run_id: str, tables: tuple[str, ...] = RESULT_TABLES) -> None:
    for table in tables:
        sqlfiles.check_table_name(table)
        wh.execute(f"DELETE FROM `{{dataset}}.{table}` WHERE run_id = @run_id", {"run_id": run_id})


# ---------------------------------------------------------------- leases


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def renew_lease(wh: Warehouse, run_id: str, lease_s: float) -> None:
    now = _now()
    wh.execute(sqlfiles.read_sql("queries/renew_run_lease.sql"), {
        "run_id": run_id, "now": now, "lease_until": now + timedelta(seconds=lease_s), "owner": _this_process()})


@contextmanager
def heartbeat(wh: Warehouse, run_id: str, lease_s: float) -> Iterator[None]:
    """Keep the run's lease alive while the block works (a thread renews it every quarter lease).

    A process that dies stops renewing, so its run's lease runs out and `recover_runs`
    fails it instead of leaving it RUNNING for ever.
    """
    renew_lease(wh, run_id, lease_s)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(lease_s / 4, 0.5)):
            try:
                renew_lease(wh, run_id, lease_s)
            except Exception as exc:  # a missed beat is retried; the lease allows for three
                log.warning("heartbeat of run %s failed: %s", run_id, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def recover_runs(wh: Warehouse, *, same_machine: bool = False, now: datetime | None = None) -> list[str]:
    """Mark FAILED (partial rows removed) every RUNNING run nobody works on any more; their ids.

    A run is abandoned when its lease ran out (its process stopped renewing it). With
    `same_machine` (the embedded warehouse, which one machine owns) a run is also abandoned at
    once when the process holding its lease on this host is gone: a killed `retailopt run` or
    `serve` is recovered at the next start instead of a lease later.
    """
    now = now or _now()
    host = socket.gethostname()
    failed = []
    for row in query_file(wh, "running_runs").itertuples():
        lease_until = _timestamp(row.lease_until) or _timestamp(row.started_at) + timedelta(days=1)
        owner = row.lease_owner if isinstance(row.lease_owner, str) else ""
        owner_host, _, owner_pid = owner.rpartition(":")
        if lease_until < now:
            why = "its lease expired"
        elif same_machine and owner_host == host and owner_pid.isdigit() and not _alive(int(owner_pid)):
            why = f"process {owner_pid} is gone"
        else:
            continue
        beat = _timestamp(row.heartbeat_at) or _timestamp(row.started_at)
        reason = f"interrupted: the process running it stopped ({why}; last sign of life {beat.isoformat()})"
        if fail_run(wh, str(row.run_id), reason):
            log.warning("run %s: %s", row.run_id, reason)
            failed.append(str(row.run_id))
    return failed


MAX_ATTEMPTS_PER_REQUEST = 100


def current_attempt(wh: Warehouse, base_id: str, now: datetime | None = None) -> tuple[str, dict[str, Any] | None]:
    """The run a repeated start request stands for: `base_id`, or its next attempt after failures.

    Attempts are `<base>-r2`, `<base>-r3`, ...: the first that is neither FAILED nor abandoned
    (RUNNING with its lease run out) is the request's run (None: not started yet). So the same
    request is idempotent while its run is alive or COMPLETE, and starts again once it failed (a
    crash, an expired lease, bad files since fixed). Read-only: the new attempt's start step
    marks an abandoned run FAILED (`recover_runs`).
    """
    now = now or _now()
    for attempt in range(1, MAX_ATTEMPTS_PER_REQUEST + 1):
        run_id = base_id if attempt == 1 else f"{base_id}-r{attempt}"
        run = get_run(wh, run_id)
        if run is None or not (run["status"] == "FAILED" or _abandoned(run, now)):
            return run_id, run
    raise RunClosed(f"run {base_id} failed {MAX_ATTEMPTS_PER_REQUEST} times: send a new request_key")


def _abandoned(run: dict[str, Any], now: datetime) -> bool:
    if run["status"] != "RUNNING":
        return False
    lease_until = _timestamp(run.get("lease_until")) or _timestamp(run.get("started_at")) + timedelta(days=1)
    return lease_until < now


def _timestamp(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextmanager
def _results_of_running_run(wh: Warehouse, run_id: str, tables: tuple[str, ...]) -> Iterator[None]:
    """Write a step's rows only while the run is RUNNING: if it was failed meanwhile (its lease
    expired), the rows are rolled back (DuckDB) or removed again (BigQuery has no rollback here)."""
    try:
        with wh.transaction():
            yield
            status = _status(wh, run_id)
            if status != "RUNNING":
                raise RunClosed(f"run {run_id} is {status}: its results are discarded")
    except RunClosed:
        if _status(wh, run_id) != "COMPLETE":
            _remove_results(wh, run_id, tables)
        raise


def _leased(step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A step of a run works under the run's heartbeat."""
    @functools.wraps(step)
    def run(wh: Warehouse, settings: Settings, run_id: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with heartbeat(wh, run_id, settings.run_lease_s):
            return step(wh, settings, run_id, *args, **kwargs)
    return run


# ---------------------------------------------------------------- import


def import_step(wh: Warehouse, settings: Settings, run_id: str | None, source_dir: Path, *,
                replace_sales: DateRange | None = None) -> dict[str, Any]:
    """Validate the files in `source_dir` and load the valid rows; bad rows go to quarantine.

    Sales and stock snapshot rows are added, or correct the stored rows with the same key; nothing
    else is deleted, unless `replace_sales` names a range of days whose stored sales the files
    replace in full (`retailopt.loading`). Dimension files and the promotion plan are whole lists:
    a file present replaces its table. Every table's counts say how many rows were read,
    accepted, quarantined, added, replaced and deleted. Without a run id a run is started for the
    imported data; its id is returned under "run_id".
    """
    as_of = settings.run_date or _now().date()
    # A large sales file is validated in chunks whose valid rows go straight to the staging table
    # (ingest.CHUNK_ROWS); they are loaded below, or removed if the import stops.
    load_id = new_load_id()
    try:
        result = load_inputs(source_dir, as_of=as_of, stored=_stored_tables(wh),
                             stage=lambda table, rows: stage_rows(wh, table, rows, load_id),
                             stage_file=lambda table, path: stage_parquet_file(wh, table, path, load_id),
                             in_place=hasattr(wh, "scanning"))
    except BaseException as exc:
        drop_staged(wh, "sales", load_id)
        if run_id is not None and isinstance(exc, InputError):
            _record_rejected_import(wh, settings, run_id, exc)
        raise
    try:
        return _load_imported(wh, settings, run_id, source_dir, result, load_id, replace_sales)
    finally:
        drop_staged(wh, "sales", load_id)


def _load_imported(wh: Warehouse, settings: Settings, run_id: str | None, source_dir: Path, result: Any,
                   load_id: str, replace_sales: DateRange | None) -> dict[str, Any]:
    if replace_sales is not None and "sales" in result.kept:
        exc = InputError(f"replacing the sales of {replace_sales} needs a sales file in {source_dir}")
        if run_id is not None:
            _record_rejected_import(wh, settings, run_id, exc)
        raise exc
    loaded: dict[str, dict[str, int]] = {}
    with wh.transaction():
        for table in DIMENSION_TABLES:
            if table in result.kept:  # no file (or a skipped one): the stored rows stay
                continue
            stored = wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.{table}`")
            wh.execute(f"DELETE FROM `{{dataset}}.{table}` WHERE TRUE")
            added = wh.insert(table, result.frames[table])
            loaded[table] = {"added": added, "replaced": 0, "deleted": int(stored.n.iloc[0])}
    try:
        for table in ("inventory", "sales"):
            if table in result.kept and replace_sales is None:
                continue
            if table in result.staged:
                staged = result.staged[table]
                load = functools.partial(load_staged_facts, wh, table, load_id) if staged.file is None \
                    else functools.partial(load_parquet_file, wh, table, staged.file, load_id)
                counts = load(rows=staged.rows, first=staged.first_day, last=staged.last_day,
                              source=_source_name(result, table),
                              replace=replace_sales if table == "sales" else None)
            else:
                counts = load_facts(wh, table, result.frames[table], source=_source_name(result, table),
                                    replace=replace_sales if table == "sales" else None)
            loaded[table] = counts.as_dict()
    except InputError as exc:
        if run_id is not None:
            _record_rejected_import(wh, settings, run_id, exc)
        raise
    if run_id is None or get_run(wh, run_id) is None:
        # After the load: the run date defaults to the day after the last sale just imported.
        run_id = start_run(wh, settings, run_id=run_id)
    run_date = _require_run(wh, run_id)["run_date"]
    replace_run_rows(wh, "quarantine", run_id, result.quarantine, run_date)
    counts: dict[str, Any] = {"run_id": run_id}
    for report in result.reports:
        counts[report.table] = {"rows_in": report.rows_in, "accepted": report.rows_accepted,
                                "quarantined": report.rows_quarantined, **loaded.get(report.table, {})}
    counts["problems"] = [p for r in result.reports for p in r.problems][:50]
    log.info("import %s: %s", run_id, {t: v for t, v in counts.items() if isinstance(v, dict)})
    return counts


def _stored_tables(wh: Warehouse) -> dict[str, set[str] | None]:
    """Input tables the warehouse holds rows of, with their ids where one column is the key."""
    from retailopt.contracts import CONTRACTS, INPUT_TABLES

    stored: dict[str, set[str] | None] = {}
    for table in INPUT_TABLES:
        key = CONTRACTS[table].key
        if len(key) == 1:
            ids = wh.query(f"SELECT DISTINCT {key[0]} AS id FROM `{{dataset}}.{table}`")
            if len(ids):
                stored[table] = set(ids.id.astype(str))
        elif int(wh.query(f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM `{{dataset}}.{table}` LIMIT 1)").n.iloc[0]):
            stored[table] = None
    return stored


def _source_name(result: Any, table: str) -> str:
    return next((Path(r.path).name for r in result.reports if r.table == table), table)


def _record_rejected_import(wh: Warehouse, settings: Settings, run_id: str, exc: InputError) -> None:
    """The named run cannot go on: it is FAILED with the reason, and its quarantine shows why."""
    if get_run(wh, run_id) is None:
        try:
            run_date = settings.run_date or default_run_date(wh)
        except InputError:  # nothing imported yet: the run is dated the day it was tried
            run_date = _now().date()
        start_run(wh, settings, run_id=run_id, run_date=run_date)
    replace_run_rows(wh, "quarantine", run_id, exc.quarantine, _require_run(wh, run_id)["run_date"])
    fail_run(wh, run_id, str(exc))


# ---------------------------------------------------------------- forecast


def _lead_times(stores: pd.DataFrame, dcs: pd.DataFrame) -> pd.DataFrame:
    from retailopt.rebalance import assign_dcs

    return assign_dcs(stores, dcs)


@_leased
def forecast_step(wh: Warehouse, settings: Settings, run_id: str) -> dict[str, Any]:
    from retailopt.forecasting.anomalies import ANOMALY_COLUMNS
    from retailopt.forecasting.components import COMPONENT_HISTORY_DAYS

    run_date = _require_run(wh, run_id)["run_date"]
    inventory = query_file(wh, "latest_inventory")
    positions = inventory[["store_id", "product_id"]]
    leads = _lead_times(read_table(wh, "stores"), read_table(wh, "distribution_centers"))
    window = positions.merge(leads[["store_id", "lead_time_days"]], on="store_id", how="left")
    window["window_days"] = (pd.to_numeric(window.lead_time_days, errors="coerce").fillna(0).clip(lower=0)
                             + settings.review_period_days).astype(int)
    # sales_anomalies rows of the run (ANOMALY_COLUMNS); each engine's branch finds its own.
    anomalies = pd.DataFrame(columns=ANOMALY_COLUMNS)
    excluded_days = 0
    if settings.forecast_engine == "bigquery_ml":
        from retailopt.forecasting import bigquery_ml

        # The weekly retrain trains the models (a BigQuery job the training check follows); the
        # daily run reads ML.FORECAST (and ML.EXPLAIN_FORECAST for the components) from the
        # chain's newest model whose training is DONE. A failed training leaves its predecessor.
        model = bigquery_ml.select_model(wh, settings.chain_id, run_date)
        result = bigquery_ml.forecast_bigquery(wh.client, settings, model,  # type: ignore[attr-defined]
                                               forecast_start=run_date,
                                               window_days=window[["store_id", "product_id", "window_days"]],
                                               component_days=COMPONENT_HISTORY_DAYS)
        history_rows = 0  # the weekly training read the history, not the daily forecast
        promoted_days = 0  # ARIMA_PLUS has no regressors
        if model.xreg:  # ARIMA_PLUS_XREG: forecast with the plan's promotion days as its regressor
            promoted_days = bigquery_ml.promoted_days(wh.client, settings, model,  # type: ignore[attr-defined]
                                                      run_date)
        model_age_days = model.age_days(run_date)  # logged: an alert fires when trainings keep failing
        # ML.DETECT_ANOMALIES on the same model; an ARIMA_PLUS_XREG one gets the regressors of
        # the days after its training data (sql/forecasting/detect_anomalies_xreg.sql).
        from retailopt.forecasting.anomalies import detect_anomalies_bigquery

        anomalies = detect_anomalies_bigquery(wh.client, settings, model_name=model.model_name,  # type: ignore[attr-defined]
                                              data_start=model.data_start, data_end=model.data_end,
                                              run_date=run_date, xreg=model.xreg)
    else:
        return _forecast_local(wh, settings, run_id, run_date, positions,
                               window[["store_id", "product_id", "window_days"]])
    with _results_of_running_run(wh, run_id, ("forecasts", "demand_windows", "forecast_components",
                                              "sales_anomalies")):
        replace_run_rows(wh, "forecasts", run_id, result.daily)
        replace_run_rows(wh, "demand_windows", run_id, result.protection, run_date)
        # Same table whichever engine ran (ML.EXPLAIN_FORECAST or the local decomposition).
        replace_run_rows(wh, "forecast_components", run_id, result.components)
        replace_run_rows(wh, "sales_anomalies", run_id, anomalies, run_date)
    models = result.protection.model.value_counts().to_dict()
    return {"series": int(len(positions)), "history_rows": int(history_rows),
            "forecast_rows": int(len(result.daily)), "component_rows": int(len(result.components)),
            "promoted_days": int(promoted_days), "anomaly_rows": int(len(anomalies)),
            "excluded_spike_days": int(excluded_days),
            "models": {str(k): int(v) for k, v in models.items()},
            "model_age_days": int(model_age_days)}


FORECAST_TABLES = ("forecasts", "demand_windows", "forecast_components", "sales_anomalies")


def _forecast_local(wh: Warehouse, settings: Settings, run_id: str, run_date: date, positions: pd.DataFrame,
                    window: pd.DataFrame) -> dict[str, Any]:
    """The local engine in chunks of whole stores (`forecasting/chunks.py`): each chunk's history
    read from the warehouse alone, forecast in a worker process, its rows written as they come
    (a transaction a chunk); a failure removes the rows written so far."""
    from retailopt.forecasting.chunks import ChunkResult, forecast_in_chunks
    from retailopt.forecasting.components import COMPONENT_HISTORY_DAYS
    from retailopt.forecasting.frequency import resolve_frequency
    from retailopt.forecasting.handoff import RESULT_TABLES, history_from_frame
    from retailopt.forecasting.promotions import promotion_days
    from retailopt.warehouse.arrow_rows import insert_arrow

    since = run_date - timedelta(days=settings.history_days)
    # The sales' frequency (daily, weekly, monthly...) from their distinct dates, read alone.
    dates = query_file(wh, "sale_dates", {"since": since, "until": run_date})["sale_date"]
    try:
        freq = resolve_frequency(settings.data_frequency, pd.to_datetime(dates))
    except ValueError:  # weekly series on several weekdays: each chunk finds its grids (history_frequency)
        freq = None
    # A product without history anywhere takes its category's rate (docs/forecasting.md).
    products = read_table(wh, "products")
    positions = positions.merge(products[["product_id", "category"]].astype(str).drop_duplicates("product_id"),
                                on="product_id", how="left")

    def read_history(first_store: str, last_store: str) -> pd.DataFrame | pa.Table:
        # DuckDB answers in Arrow, which the worker turns into the engine's frame (`handoff.py`).
        bounds = {"since": since, "until": run_date, "store_from": first_store, "store_to": last_store}
        query_arrow = getattr(wh, "query_arrow", None)
        if query_arrow is not None:
            return query_arrow(sqlfiles.read_sql("queries/sales_history_stores.sql"), bounds)
        return history_from_frame(query_file(wh, "sales_history_stores", bounds))

    planned = query_file(wh, "planned_promotions", {
        "since": run_date, "until": run_date + timedelta(days=settings.horizon_days)})

    def plan_for(keys: pd.DataFrame) -> pd.DataFrame | None:
        # No promotion in the horizon means no plan: the engine then keeps past promotions in the
        # level instead of assuming the horizon is promotion-free (docs/forecasting.md). Planned
        # promotions are daily-only.
        if not len(planned) or (freq is not None and not freq.daily):
            return None
        return promotion_days(planned, keys, run_date, settings.horizon_days)

    def write(chunk: ChunkResult) -> None:
        # One transaction a chunk: the embedded warehouse holds a transaction's rows in memory,
        # and a chain's forecast is millions of rows.
        # The rows come typed and checked as Arrow tables from the worker (`handoff.py`).
        run = {"run_id": run_id, "run_date": run_date}
        with _results_of_running_run(wh, run_id, FORECAST_TABLES):
            for field, (table, fixed) in RESULT_TABLES.items():
                insert_arrow(wh, table, getattr(chunk, field), {name: run[name] for name in fixed})

    params = {"run_date": run_date, "horizon_days": settings.horizon_days,
              "confidence_level": settings.confidence_level, "holiday_country": settings.holiday_country,
              "holiday_subdivision": settings.holiday_subdivision, "seed": settings.seed,
              "exclude_anomalies": settings.exclude_anomalies, "component_days": COMPONENT_HISTORY_DAYS,
              "frequency": freq, "data_frequency": settings.data_frequency, "history_days": settings.history_days,
              "arrow_rows": True}
    with _results_of_running_run(wh, run_id, FORECAST_TABLES):
        _remove_results(wh, run_id, FORECAST_TABLES)
    # One DuckDB thread while the chunks run: the cores are the workers' (DuckDBWarehouse.threads).
    # The step's rows are folded into the file on that thread too: left to a later checkpoint on
    # two threads they cost twice the CPU (100 x 1,000: 16 s against about 8 s).
    one_thread, checkpoint = getattr(wh, "threads", None), getattr(wh, "checkpoint", None)
    try:
        with one_thread(1) if one_thread is not None else contextlib.nullcontext():
            counts = forecast_in_chunks(positions, window, read_history=read_history, plan_for=plan_for,
                                        write=write, params=params)
            if checkpoint is not None:
                checkpoint()
    except BaseException:
        # A step that stops half way leaves none of its rows (the run is failed by its caller).
        if _status(wh, run_id) != "COMPLETE":
            _remove_results(wh, run_id, FORECAST_TABLES)
        raise
    counts["series"] = int(len(positions))
    return counts


# ---------------------------------------------------------------- plan


def solve_day_routes(request, settings: Settings):
    """The response and the problems solved (local engine: one per depot or sector, `routing/parts.py`)."""
    from retailopt.routing.engine import solve_routes_by_problem

    return solve_routes_by_problem(request, settings=settings)


def _note_exceptions(policy: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """The policy with `extra` exceptions (orders cut for room) added to its positions' exception
    text, so inventory_policy names every exception plan_exceptions holds for a position."""
    notes = (extra.reason_code.astype(str) + ": " + extra.reason.astype(str)).groupby(
        [extra.store_id.astype(str), extra.product_id.astype(str)]).agg("; ".join)
    key = pd.MultiIndex.from_arrays([policy.store_id.astype(str), policy.product_id.astype(str)])
    added = pd.Series(notes.reindex(key).to_numpy(), index=policy.index)
    current = policy["exception"].where(policy["exception"].notna() & (policy["exception"] != ""))
    merged = current.where(added.isna(), current.fillna("").str.cat(added.fillna(""), sep="; ").str.strip("; "))
    return policy.assign(exception=merged.where(merged != "", None))


_CARRIED_COLUMNS = ["source_run_id", "line_type", "line_id", "product_id", "origin_id", "destination_id", "quantity",
                    "value", "expected_arrival", "shipment_id"]
_CARRIED_AS = {
    "TRANSFER": {"line_id": "transfer_id", "origin_id": "from_store_id", "destination_id": "to_store_id"},
    "ORDER": {"line_id": "order_id", "origin_id": "dc_id", "destination_id": "store_id", "value": "order_value"},
}


def _label_with_day(frame: pd.DataFrame) -> None:
    """A later day's loads are labelled with their day: the same consignment (a centre and a store)
    also has loads today, carried from earlier runs, under the plain labels."""
    if len(frame):
        frame["shipment_id"] = (frame["shipment_id"].astype(str) + "@"
                                + pd.to_datetime(frame["expected_arrival"]).dt.strftime("%Y%m%d"))


def pack_later_loads(orders: pd.DataFrame, run_date: date, fleet: pd.DataFrame,
                     products: pd.DataFrame) -> pd.DataFrame:
    """Orders planned again after the day's routes were solved, packed into loads as `day_loads`
    packs the run's later lines. An order never arrives on its run date (lead times are at least a
    day), so no load of the day's routes changes; one that would is packed all the same, and its
    day's KPIs count it as waiting for a truck."""
    from retailopt.routing.loads import assign_shipments

    _, packed = assign_shipments(pd.DataFrame(), orders, fleet, products)
    _label_with_day(packed)
    return packed


def _carried_frames(carried: pd.DataFrame, products: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Released lines (`carried_lines` columns) as transfers and replenishment_orders frames, by
    line type; an order's cases from its product's case pack."""
    unique = products.drop_duplicates("product_id", keep="last")
    pack = unique.set_index(unique["product_id"].astype(str))["case_pack"]
    extra = {}
    for kind, names in _CARRIED_AS.items():
        part = carried[carried.line_type == kind].rename(columns=names) if len(carried) else carried.iloc[:0]
        if kind == "ORDER" and len(part):
            case = pd.to_numeric(part["product_id"].astype(str).map(pack), errors="coerce").fillna(1).clip(lower=1)
            whole = (part["quantity"] % case) == 0
            part = part.assign(cases=(part["quantity"] // case).where(whole, part["quantity"]).astype("int64"))
        extra[kind] = part
    return extra


def pricing_background(wh: Warehouse, policy: pd.DataFrame, products: pd.DataFrame, dcs: pd.DataFrame,
                       stores: pd.DataFrame, *, settings: Settings, run_date: date,
                       inventory: pd.DataFrame) -> DayBackground:
    """What else the routes of the transfers' delivery day carry, for their pricing: the released
    lines of earlier runs due that day (or, for same-day transfers, due by today and not
    dispatched), and this run's own orders arriving that day (estimated, the orders being planned
    after the transfers)."""
    from retailopt.dispatch.ledger import carried_lines
    from retailopt.rebalance import delivery_day
    from retailopt.transfer_pricing import DayBackground, own_orders_due

    day = delivery_day(run_date, settings.transfer_lead_days)
    carried = carried_lines(wh, day, max_wait_days=settings.transfer_max_wait_days, released_before=run_date)
    if len(carried) and day > run_date:  # lines due by today travel on today's routes
        carried = carried[pd.to_datetime(carried["expected_arrival"]).dt.date > run_date]
    extra = _carried_frames(carried, products)
    own = own_orders_due(policy, products, dcs, stores, settings=settings, run_date=run_date, inventory=inventory)
    orders = [f for f in (extra["ORDER"], own) if len(f)]
    return DayBackground(transfers=extra["TRANSFER"].reset_index(drop=True),
                         orders=pd.concat(orders, ignore_index=True) if orders else own)


def day_loads(transfers: pd.DataFrame, orders: pd.DataFrame, carried: pd.DataFrame, run_date: date,
                       fleet: pd.DataFrame, products: pd.DataFrame):
    """Pack the vehicle loads of the run date: the run's own lines arriving that day and the released
    lines of earlier runs due by then (`carried`) travel together; the run's lines arriving later
    are packed apart (their loads are routed by the plan of their day). Returns the transfers,
    orders and carried lines with `shipment_id`, and the day's transfer and order frames for the
    request."""
    from retailopt.routing.loads import assign_shipments

    day = pd.Timestamp(run_date)

    def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        if frame is None or frame.empty:
            return frame, frame
        due = pd.to_datetime(frame["expected_arrival"]).fillna(day) <= day
        return frame[due].reset_index(drop=True), frame[~due].reset_index(drop=True)

    t_today, t_later = split(transfers)
    o_today, o_later = split(orders)
    extra = _carried_frames(carried, products)

    def together(own: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
        parts = [f for f in (own.assign(_own=True), other.assign(_own=False)) if len(f)]
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts \
            else own.assign(_own=True)

    t_all = together(t_today, extra["TRANSFER"])
    o_all = together(o_today, extra["ORDER"])
    t_all, o_all = assign_shipments(t_all, o_all, fleet, products)
    t_later, o_later = assign_shipments(t_later, o_later, fleet, products)
    _label_with_day(t_later)
    _label_with_day(o_later)

    def own(frame: pd.DataFrame, later: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        parts = [f[columns] for f in (frame[frame["_own"].astype(bool)] if len(frame) else frame, later) if len(f)]
        return pd.concat(parts, ignore_index=True) if parts else later[columns]

    own_t = own(t_all, t_later, list(t_later.columns))
    own_o = own(o_all, o_later, list(o_later.columns))
    carried_out = []
    for kind, frame in (("TRANSFER", t_all), ("ORDER", o_all)):
        part = frame[~frame["_own"].astype(bool)] if len(frame) else frame
        if len(part):
            back = {v: k for k, v in _CARRIED_AS[kind].items()}
            carried_out.append(part.rename(columns=back).assign(line_type=kind)[_CARRIED_COLUMNS])
    carried_rows = pd.concat(carried_out, ignore_index=True) if carried_out \
        else carried.assign(shipment_id=None)[_CARRIED_COLUMNS]
    return (own_t, own_o, carried_rows, t_all.drop(columns="_own", errors="ignore"),
            o_all.drop(columns="_own", errors="ignore"))


def _review_forecasts(wh: Warehouse, run_id: str, run_date: date, lead_days: pd.Series, protection: pd.DataFrame,
                      review_days: int) -> pd.DataFrame:
    """The run's daily forecasts the policy sums (`policy.review_offsets`)."""
    from retailopt.policy import review_offsets

    first, last = review_offsets(lead_days, protection["window_days"], review_days)
    return query_file(wh, "review_forecasts", {"run_id": run_id, "since": run_date + timedelta(days=first),
                                               "until": run_date + timedelta(days=last)})


@_leased
def plan_step(wh: Warehouse, settings: Settings, run_id: str, artifacts_dir: Path | None = None) -> dict[str, Any]:
    from retailopt.policy import compute_policy
    from retailopt.rebalance import apply_plan, plan_orders
    from retailopt.transfer_pricing import plan_priced_transfers
    from retailopt.routing import build_request, request_to_json, response_to_tables
    from retailopt.dispatch.ledger import (cancelled_transfer_exceptions, carried_lines, failed_delivery_exceptions,
                                           stock_position)
    from retailopt.routing.emissions import with_emissions
    from retailopt.routing.fleet import select_fleet
    from retailopt.routing.tables import locations_frame
    from retailopt.routing.unrouted import (carried_unrouted_exceptions, dropped_transfer_exceptions,
                                           skipped_own_transfers, unrouted_exceptions)

    run_date = _require_run(wh, run_id)["run_date"]
    stores, dcs = read_table(wh, "stores"), read_table(wh, "distribution_centers")
    products, vehicles = read_table(wh, "products"), read_table(wh, "vehicles")
    # The latest snapshot with the released lines since then: on order, in transit, delivered.
    inventory = stock_position(wh, run_date, max_wait_days=settings.transfer_max_wait_days)
    protection = read_run_rows(wh, "demand_windows", run_id)
    if protection.empty:
        raise RunNotFound(f"run {run_id} has no forecast: run the forecast step first")
    leads = _lead_times(stores, dcs)
    lead_map = dict(zip(leads.store_id, leads.lead_time_days))
    daily = _review_forecasts(wh, run_id, run_date, leads["lead_time_days"], protection, settings.review_period_days)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    policy, exceptions = compute_policy(inventory, products, protection, daily, run_date=run_date,
                                        lead_time_days=lead_map, settings=settings)
    timings["policy"] = time.perf_counter() - started
    started = time.perf_counter()
    fleet = select_fleet(vehicles, settings)
    # Transfers whose value covers their share of the routes that carry them; orders after, so a
    # receiver whose transfer was not worth its route gets its distribution-centre order.
    # They are priced on the delivery day's routes beside the loads already due that day.
    background = pricing_background(wh, policy, products, dcs, stores, settings=settings, run_date=run_date,
                                    inventory=inventory) if fleet is not None and len(fleet) else None
    transfers, pricing = plan_priced_transfers(policy, protection, products, stores, dcs, fleet, settings=settings,
                                               run_date=run_date, inventory=inventory, background=background)
    timings["transfer_pricing"] = pricing.elapsed_s
    orders, room_cuts = plan_orders(policy, transfers, products, dcs, stores, settings=settings,
                                    run_date=run_date, inventory=inventory, return_exceptions=True)
    # Each consignment packed into vehicle loads; a line larger than a truck becomes one row per load.
    # The routes of the run date carry what arrives that day: the run's own lines due today and the
    # released lines of earlier runs due by today.
    carried = carried_lines(wh, run_date, max_wait_days=settings.transfer_max_wait_days)
    transfers, orders, carried, day_transfers, day_orders = day_loads(
        transfers, orders, carried, run_date, fleet, products)
    timings["rebalancing"] = time.perf_counter() - started
    started = time.perf_counter()
    request = build_request(day_transfers, day_orders, stores, dcs, fleet, products,
                            run_date=run_date, settings=settings)
    solved = solve_day_routes(request, settings)
    response = solved.response
    routes, stops = response_to_tables(request, response, run_date=run_date,
                                       locations=locations_frame(stores, dcs))
    # The run's own transfers due today on a load no route carries are dropped, and the orders
    # planned again without them: their receivers get their distribution-centre order instead of
    # neither. Other loads no route carries stay in the plan (released lines are carried by the
    # next plan's routes); every one is reported with its value, line by line.
    dropped = skipped_own_transfers(transfers, response, run_date)
    if dropped.any():
        gone = transfers[dropped]
        transfers = transfers[~dropped].reset_index(drop=True)
        replanned, room_cuts = plan_orders(policy, transfers, products, dcs, stores, settings=settings,
                                           run_date=run_date, inventory=inventory, return_exceptions=True)
        orders = pack_later_loads(replanned, run_date, fleet, products)
        unrouted = pd.concat([dropped_transfer_exceptions(gone, response),
                              unrouted_exceptions(transfers, orders, response)], ignore_index=True)
    else:
        unrouted = unrouted_exceptions(transfers, orders, response)
    late = carried_unrouted_exceptions(carried, response)
    if len(late):
        unrouted = pd.concat([unrouted, late], ignore_index=True) if len(unrouted) else late
    failed = failed_delivery_exceptions(wh, run_date)
    cancelled = cancelled_transfer_exceptions(wh, run_date, max_wait_days=settings.transfer_max_wait_days)
    noted = pd.concat([f for f in (room_cuts, failed, cancelled) if len(f)], ignore_index=True) \
        if len(room_cuts) or len(failed) or len(cancelled) else room_cuts
    if len(noted):
        exceptions = pd.concat([exceptions, noted], ignore_index=True)
        policy = _note_exceptions(policy, noted)
    policy = apply_plan(policy, transfers, orders, overstock_cover_days=settings.overstock_cover_days)
    if len(unrouted):
        exceptions = pd.concat([exceptions, unrouted], ignore_index=True)
        policy = _note_exceptions(policy, unrouted.drop_duplicates(["store_id", "product_id"]))
    routes = with_emissions(routes, fleet, settings.carbon_price_per_kg)
    timings["routing"] = time.perf_counter() - started
    timings["routing_solve"] = sum(p.solve_s for p in solved.problems)
    problems = [p.as_dict() for p in solved.problems]
    log.info("routing: %d problem(s): %s", len(problems), problems)
    if artifacts_dir is not None:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "routes_request.json").write_text(request_to_json(request), encoding="utf-8")
        (artifacts_dir / "routes_response.json").write_text(
            type(response).to_json(response), encoding="utf-8")
        (artifacts_dir / "routing_problems.json").write_text(json.dumps(problems, indent=1), encoding="utf-8")
    with _results_of_running_run(wh, run_id, RESULT_TABLES):
        replace_run_rows(wh, "inventory_policy", run_id, policy, run_date)
        replace_run_rows(wh, "plan_exceptions", run_id, exceptions, run_date)
        replace_run_rows(wh, "transfers", run_id, transfers, run_date)
        replace_run_rows(wh, "replenishment_orders", run_id, orders, run_date)
        replace_run_rows(wh, "carried_lines", run_id, carried, run_date)
        replace_run_rows(wh, "routes", run_id, routes, run_date)
        replace_run_rows(wh, "route_stops", run_id, stops, run_date)
    skipped = len(response.skipped_shipments)
    return {"positions": int(len(policy)), "exceptions": int(len(exceptions)), "transfers": int(len(transfers)),
            "orders": int(len(orders)), "carried_lines": int(len(carried)), "routes": int(len(routes)),
            "skipped_shipments": int(skipped), "routing_problems": problems,
            "transfer_pricing": pricing.as_dict(),
            "step_seconds": {k: round(v, 3) for k, v in timings.items()}}


# ---------------------------------------------------------------- publish


def compute_kpis(wh: Warehouse, run_id: str) -> dict[str, Any]:
    policy = read_run_rows(wh, "inventory_policy", run_id)
    transfers = read_run_rows(wh, "transfers", run_id)
    orders = read_run_rows(wh, "replenishment_orders", run_id)
    routes = read_run_rows(wh, "routes", run_id)
    stops = read_run_rows(wh, "route_stops", run_id)
    quarantine = read_run_rows(wh, "quarantine", run_id)
    carried = read_run_rows(wh, "carried_lines", run_id)

    def due(frame: pd.DataFrame) -> pd.DataFrame:
        """The rows the run date's routes should carry (later ones are routed on their own day)."""
        if frame.empty:
            return frame
        arrival = pd.to_datetime(frame["expected_arrival"])
        return frame[arrival.isna() | (arrival <= pd.to_datetime(frame["run_date"]))]

    # A line larger than a truck is one row per vehicle load (same id): count lines, sum rows.
    day_lines = [f for f in (due(transfers), due(orders), carried) if len(f)]
    planned_units = sum(int(f.quantity.sum()) for f in day_lines)
    later_units = sum(int(f.quantity.sum()) - int(due(f).quantity.sum()) for f in (transfers, orders) if len(f))
    routed_units = int(routes.units_carried.sum()) if len(routes) else 0
    shipments = {str(s) for frame in day_lines for s in frame.shipment_id.dropna()}
    routed_shipments = {str(s) for s in stops.shipment_id} if len(stops) else set()

    def unrouted(frame: pd.DataFrame, column: str) -> float:
        if not len(frame):
            return 0.0
        return float(frame.loc[~frame.shipment_id.astype(str).isin(routed_shipments), column].sum())

    def stores_with(column: str, status: str) -> int:
        return int(policy.loc[policy[column] == status, "store_id"].nunique()) if len(policy) else 0

    return {
        "positions": int(len(policy)),
        "positions_at_risk_before": int((policy.status == "STOCKOUT_RISK").sum()),
        "positions_at_risk_after": int((policy.status_after_plan == "STOCKOUT_RISK").sum()),
        "positions_overstocked_before": int((policy.status == "OVERSTOCK").sum()),
        "positions_overstocked_after": int((policy.status_after_plan == "OVERSTOCK").sum()),
        "stores_at_risk_before": stores_with("status", "STOCKOUT_RISK"),
        "stores_at_risk_after": stores_with("status_after_plan", "STOCKOUT_RISK"),
        "expected_lost_units": round(float(policy.expected_lost_units.sum()), 1),
        "transfers": int(transfers.transfer_id.nunique()) if len(transfers) else 0,
        "units_moved": int(transfers.quantity.sum()) if len(transfers) else 0,
        "transfer_value": round(float(transfers.value.sum()), 2) if len(transfers) else 0.0,
        "transfer_cost": round(float(transfers.cost.sum()), 2) if len(transfers) else 0.0,
        "orders": int(orders.order_id.nunique()) if len(orders) else 0,
        "units_ordered": int(orders.quantity.sum()) if len(orders) else 0,
        "order_value": round(float(orders.order_value.sum()), 2) if len(orders) else 0.0,
        "vehicles_used": int(routes.vehicle_id.nunique()) if len(routes) else 0,
        "route_km": round(float(routes.distance_km.sum()), 1) if len(routes) else 0.0,
        "route_cost": round(float(routes.cost.sum()), 2) if len(routes) else 0.0,
        "route_co2_kg": round(float(routes.co2_kg.fillna(0).sum()), 1) if len(routes) else 0.0,
        "carbon_cost": round(float(routes.carbon_cost.fillna(0).sum()), 2) if len(routes) else 0.0,
        "shipments": len(shipments),
        "shipments_unrouted": len(shipments - routed_shipments),
        "units_routed": routed_units,
        "units_unrouted": planned_units - routed_units,
        # What the loads on no route are worth: transfer value plus order value (plan_exceptions
        # UNROUTED_LOAD names each line).
        "value_unrouted": round(unrouted(due(transfers), "value") + unrouted(due(orders), "order_value")
                                + unrouted(carried, "value"), 2),
        "units_carried_in": int(carried.quantity.sum()) if len(carried) else 0,
        "units_arriving_later": later_units,
        "quarantined_rows": int(quarantine.row_number.notna().sum()) if len(quarantine) else 0,
    }


@_leased
def publish_step(wh: Warehouse, settings: Settings, run_id: str, artifacts_dir: Path,
                 timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Write the artifacts, then mark the run COMPLETE (the moment its results become visible)."""
    from retailopt import report

    run = _require_run(wh, run_id)
    kpis = compute_kpis(wh, run_id)
    timings = dict(timings or {})
    paths = report.write_artifacts(wh, run, kpis, timings, artifacts_dir)
    _finish(wh, run_id, "COMPLETE", timings=timings, kpis=kpis)
    status = _status(wh, run_id)
    if status != "COMPLETE":  # failed meanwhile (lease expired): the failure stands
        raise RunClosed(f"run {run_id} is {status}: not published")
    return {"kpis": kpis, "artifacts": {k: str(v) for k, v in paths.items()}}


# ---------------------------------------------------------------- the whole run


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)


def _release_memory() -> None:
    """Give the import's freed buffers back to the system before the forecast starts its workers
    (the allocators keep them otherwise, and the process tree's peak counts them)."""
    import ctypes
    import gc

    import pyarrow

    gc.collect()
    pyarrow.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def artifacts_prefix(run_id: str) -> str:
    """Where a run's artifacts go in the artifacts bucket, and under `<data dir>/artifacts` on one
    machine, for `retailopt run` and `retailopt serve` alike: runs/<run id>."""
    return f"runs/{run_id}"


def run_planning(settings: Settings, data: Path | None = None,
                 progress: Callable[[str], None] | None = None, *,
                 replace_sales: DateRange | None = None) -> RunResult:
    """Run every step in this process. `data` is a folder of input files to import first
    (`replace_sales`: the days whose stored sales the folder's files replace in full)."""
    progress = progress or (lambda step: None)
    timings: dict[str, float] = {}
    wh = open_warehouse(settings)
    try:
        with _timed(timings, "setup"):
            wh.ensure_schema()
            recover_runs(wh, same_machine=settings.warehouse == "duckdb")
        import_counts: dict[str, Any] | None = None
        if data is not None:
            progress("import")
            with _timed(timings, "import"):
                import_counts = import_step(wh, settings, None, data, replace_sales=replace_sales)
                _release_memory()
            run_id = import_counts["run_id"]
        else:
            run_id = start_run(wh, settings)
        run_date = _require_run(wh, run_id)["run_date"]
        artifacts_dir = settings.data_dir / "artifacts" / artifacts_prefix(run_id)
        try:
            progress("forecast")
            with _timed(timings, "forecast"):
                forecast_step(wh, settings, run_id)
            progress("plan")
            with _timed(timings, "plan"):
                plan_counts = plan_step(wh, settings, run_id, artifacts_dir)
            timings.update({k: v for k, v in plan_counts["step_seconds"].items()})
            progress("publish")
            with _timed(timings, "publish"):
                published = publish_step(wh, settings, run_id, artifacts_dir, timings)
        except BaseException as exc:  # Ctrl-C too: a run this process gives up must not stay RUNNING
            fail_run(wh, run_id, f"{type(exc).__name__}: {exc}" if str(exc) else f"interrupted ({type(exc).__name__})")
            raise
        result = RunResult(run_id=run_id, status="COMPLETE", run_date=run_date, artifacts_dir=artifacts_dir,
                           summary_path=Path(published["artifacts"]["summary"]), kpis=published["kpis"],
                           timings=timings)
        if import_counts is not None:
            result.kpis["import"] = import_counts
        return result
    finally:
        wh.close()
