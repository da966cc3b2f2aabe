"""Event handlers of the planning chain: each claims its event, runs one pipeline step, and
publishes the next step's message.

Outcomes: `ok` (done, next message out), `duplicate` (already handled: acknowledged), `dropped`
(too old), `ignored` (nothing to do, e.g. a data file before its _READY marker, or a run that is
already finished), `rejected` (permanent: acknowledged, reason logged and kept in the ledger, the
run marked FAILED), and an exception for a transient failure, which the platform retries.
"""

from __future__ import annotations

import re
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from retailopt import pipeline
from retailopt.config import ConfigError, Settings, load_settings
from retailopt.ingest import InputError
from retailopt.loading import DateRange
from retailopt.services import messages
from retailopt.services.dedupe import Claim, KeyKind
from retailopt.services.logs import StepLog, step_log
from retailopt.services.messages import EventInfo, PermanentError
from retailopt.services.runtime import Runtime
from retailopt.services.storage import READY_MARKER

# Settings a what-if request may change; the rest (where data lives, which engines run) is the
# deployment's, not the caller's.
WHAT_IF_FIELDS = frozenset({
    "run_date", "horizon_days", "confidence_level", "history_days", "review_period_days", "service_level",
    "service_level_by_category", "cost_service_level_min", "cost_service_level_max", "holding_cost_rate", "overstock_cover_days", "handling_cost_per_unit",
    "transport_cost_per_unit_km", "max_transfer_km", "min_transfer_units", "min_transfer_value",
    "routing_time_limit_s", "speed_kmh", "visit_minutes", "routing_max_route_hours", "fleet_vehicle_ids",
    "fleet_max_vehicles", "carbon_price_per_kg", "seed",
})
# <chain>/<YYYY-MM-DD>/_READY in the raw bucket starts a run on the files beside it.
_DROP_RE = re.compile(r"^(?:(?P<root>[A-Za-z0-9_.=-]+(?:/[A-Za-z0-9_.=-]+)*)/)?(?P<chain>[A-Za-z0-9_-]{1,64})/"
                      r"(?P<date>\d{4}-\d{2}-\d{2})/" + READY_MARKER + "$")

Next = list[tuple[str, list[dict[str, Any]]]]
# Errors of the domain that no retry can fix.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (PermanentError, pipeline.RunNotFound, InputError, ConfigError)


class BusyError(RuntimeError):
    """Another delivery holds the claim right now: retry later (the platform backs off)."""


def run_settings(runtime: Runtime, overrides: Mapping[str, Any] | None, run_date: str | None) -> Settings:
    """The deployment's settings with a run's what-if overrides; bad overrides are permanent errors."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - WHAT_IF_FIELDS)
    if unknown:
        raise PermanentError(f"overrides not allowed: {unknown}")
    if run_date:
        overrides["run_date"] = run_date
    try:
        return load_settings(overrides, base=runtime.settings, environ={})
    except ConfigError as exc:
        raise PermanentError(str(exc)) from exc


def handle(runtime: Runtime, step: str, message: dict[str, Any], info: EventInfo,
           headers: Mapping[str, str] | None, work: Callable[[StepLog], Next]) -> str:
    """Claim, run `work`, publish what it returns, record the outcome. Returns the outcome."""
    run_id = message.get("run_id")
    with step_log(step, headers=headers, run_id=run_id, chain_id=message.get("chain_id"),
                  event_id=info.id) as entry:
        age = info.age_s()
        if age is not None and age > runtime.service.max_event_age_s:
            entry.finish("dropped", f"event is {age:.0f} s old (max {runtime.service.max_event_age_s:.0f} s)")
            return entry.outcome
        ledger = runtime.ledger
        event_claim = ledger.claim(info.dedupe_key, KeyKind.EVENT_ID, step, chain_id=message.get("chain_id"),
                                   run_id=run_id)
        if not event_claim.won:
            return _not_won(runtime, entry, event_claim, [])
        key_claim = ledger.claim(messages.business_key(message, step), KeyKind.BUSINESS_KEY, step,
                                 chain_id=message.get("chain_id"), run_id=run_id)
        if not key_claim.won:
            return _not_won(runtime, entry, key_claim, [event_claim])
        claims = [event_claim, key_claim]
        entry.set(attempt=max(c.attempts for c in claims))
        try:
            if max(c.attempts for c in claims) >= runtime.service.max_attempts:
                raise PermanentError(f"gave up after {runtime.service.max_attempts} attempts")
            outputs = work(entry)
            for topic, batch in outputs:
                if batch:
                    runtime.publisher.publish_many(topic, batch)
                    entry.counts[f"published_{topic}"] = len(batch)
        except PERMANENT_ERRORS as exc:
            reason = exc.reason if isinstance(exc, PermanentError) else f"{type(exc).__name__}: {exc}"
            if _reject(runtime, claims, run_id, step, reason):
                entry.set(run_status="FAILED")  # the failed-runs alert watches this field
            entry.finish("rejected", reason)
            return entry.outcome
        except Exception as exc:
            for claim in claims:
                ledger.finish(claim, "RETRY", outcome=f"{type(exc).__name__}: {exc}")
            raise
        for claim in claims:
            ledger.finish(claim, "DONE", outcome=entry.outcome, run_id=run_id)
        return entry.outcome


def _not_won(runtime: Runtime, entry: StepLog, claim: Claim, held: list[Claim]) -> str:
    ledger = runtime.ledger
    if claim.status in ("DONE", "REJECTED"):
        for other in held:
            ledger.finish(other, "DONE", outcome=f"duplicate of {claim.key}", run_id=claim.run_id)
        entry.finish("duplicate", f"{claim.key} already {claim.status.lower()}")
        return entry.outcome
    for other in held:
        ledger.finish(other, "RETRY", outcome=f"waiting for {claim.key}")
    entry.finish("busy", f"{claim.key} is being handled by another delivery")
    raise BusyError(f"{claim.key} is in progress")


def _reject(runtime: Runtime, claims: list[Claim], run_id: str | None, step: str, reason: str) -> bool:
    """Record the rejection; True when the event's run is FAILED now."""
    for claim in claims:
        runtime.ledger.finish(claim, "REJECTED", outcome=reason, run_id=run_id)
    if run_id and pipeline.get_run(runtime.warehouse, run_id) is not None:
        # A run whose step can never finish must not stay RUNNING or leave partial rows.
        return pipeline.fail_run(runtime.warehouse, run_id, f"{step}: {reason}")
    return False


def _known_run(runtime: Runtime, run_id: str) -> dict[str, Any]:
    run = pipeline.get_run(runtime.warehouse, run_id)
    if run is None:
        raise PermanentError(f"unknown run {run_id}")
    return run


def _next(kind: str, message: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return messages.make_message(kind, chain_id=message["chain_id"], run_id=message["run_id"],
                                 run_date=message.get("run_date"), overrides=message.get("overrides"), **extra)


# --- steps -------------------------------------------------------------------------------------

def start(runtime: Runtime, message: dict[str, Any], info: EventInfo, headers: Mapping[str, str] | None) -> str:
    """A start message: create the run, import its files if it names some, hand over to forecast."""
    if message["kind"] != "start":
        raise PermanentError(f"the import service takes start messages, got {message['kind']!r}")

    def work(entry: StepLog) -> Next:
        settings = run_settings(runtime, message.get("overrides"), message.get("run_date"))
        run_id = message["run_id"]
        # A run abandoned by a dead process is failed first, so it cannot block its date for ever.
        pipeline.recover_runs(runtime.warehouse, same_machine=runtime.settings.warehouse == "duckdb")
        existing = pipeline.get_run(runtime.warehouse, run_id)
        if existing is not None and existing.get("status") != "RUNNING":
            entry.finish("ignored", f"run {run_id} is already {existing.get('status')}")
            return []
        source = message.get("source")
        if source:  # the import starts the run once the files are in (its date may come from them)
            entry.counts.update(_import(runtime, settings, run_id, source))
        else:
            pipeline.start_run(runtime.warehouse, settings, run_id=run_id)
        return [("forecast", [_next("forecast", message)])]

    return handle(runtime, "import", message, info, headers, work)


def _import(runtime: Runtime, settings: Settings, run_id: str | None, source: Mapping[str, Any]) -> dict[str, Any]:
    store = runtime.raw_store
    if source.get("bucket") and source["bucket"] != store.name:
        raise PermanentError(f"bucket {source['bucket']!r} is not this deployment's raw bucket")
    prefix = source["prefix"].rstrip("/")
    with tempfile.TemporaryDirectory(prefix="retailopt-import-") as tmp:
        files = store.download_prefix(prefix, Path(tmp))
        if not files:
            raise PermanentError(f"no data files under {prefix!r}")
        replace = source.get("replace_sales")
        replace_sales = None
        if replace:
            try:
                replace_sales = DateRange(date.fromisoformat(replace["first"]), date.fromisoformat(replace["last"]))
            except ValueError as exc:
                raise PermanentError(f"invalid replace_sales: {exc}") from exc
        try:
            counts = dict(pipeline.import_step(runtime.warehouse, settings, run_id, Path(tmp),
                                               replace_sales=replace_sales) or {})
        except InputError as exc:
            # Nothing was loaded. Every file stays in the bucket; those the error names carry it.
            named = [p.name for p in files if p.name in str(exc)] or [READY_MARKER]
            for name in named:
                store.mark_rejected(f"{prefix}/{name}" if prefix else name, str(exc))
            raise
    if run_id is not None:
        for name, reason in _rejected_files(runtime, run_id).items():
            # The file stays where it is; the reason goes on the object for whoever looks at the bucket.
            store.mark_rejected(f"{prefix}/{name}" if prefix else name, reason)
    counts["files"] = len(files)
    return counts


def _rejected_files(runtime: Runtime, run_id: str) -> dict[str, str]:
    rows = runtime.warehouse.query(
        "SELECT source_file, reason FROM `{dataset}.quarantine` WHERE run_id = @run_id AND row_number IS NULL",
        {"run_id": run_id})
    out: dict[str, str] = {}
    for source_file, reason in zip(rows.get("source_file", []), rows.get("reason", [])):
        name = PurePosixPath(str(source_file)).name
        out[name] = f"{out[name]}; {reason}" if name in out else str(reason)
    return out


def storage_object(runtime: Runtime, obj: messages.StorageObject, info: EventInfo,
                   headers: Mapping[str, str] | None) -> str:
    """A file finalized in the raw bucket. Only the `_READY` marker of a drop folder starts a run."""
    if PurePosixPath(obj.name).name != READY_MARKER:
        with step_log("import", headers=headers, event_id=info.id, object=obj.name) as entry:
            entry.finish("ignored", f"data file; the run starts when {READY_MARKER} lands beside it")
        return "ignored"
    match = _DROP_RE.match(obj.name)
    if match is None or obj.bucket != runtime.raw_store.name:
        reason = (f"marker {obj.name!r} is not at <chain>/<YYYY-MM-DD>/{READY_MARKER}" if match is None
                  else f"bucket {obj.bucket!r} is not this deployment's raw bucket")
        with step_log("import", headers=headers, event_id=info.id, object=obj.name) as entry:
            entry.finish("rejected", reason)
        if match is None and obj.bucket == runtime.raw_store.name:
            runtime.raw_store.mark_rejected(obj.name, reason)
        return "rejected"
    try:
        run_date = date.fromisoformat(match.group("date"))
    except ValueError:
        runtime.raw_store.mark_rejected(obj.name, f"invalid date in {obj.name!r}")
        return "rejected"
    chain = match.group("chain")
    # A new generation of the marker (files dropped again) is a new run; a redelivery is not.
    run_id = messages.run_id_for(chain, run_date, None, f"{obj.bucket}/{obj.name}#{obj.generation}")
    message = messages.make_message("start", chain_id=chain, run_id=run_id, run_date=run_date,
                                    source={"bucket": obj.bucket, "prefix": str(PurePosixPath(obj.name).parent)})
    return start(runtime, message, info, headers)


def forecast(runtime: Runtime, message: dict[str, Any], info: EventInfo, headers: Mapping[str, str] | None) -> str:
    def work(entry: StepLog) -> Next:
        if not _running(entry, _known_run(runtime, message["run_id"])):
            return []
        settings = run_settings(runtime, message.get("overrides"), message.get("run_date"))
        entry.counts.update(_counts(pipeline.forecast_step(runtime.warehouse, settings, message["run_id"])))
        return [("plan", [_next("plan", message)])]

    return _typed(runtime, "forecast", message, info, headers, work)


def plan(runtime: Runtime, message: dict[str, Any], info: EventInfo, headers: Mapping[str, str] | None) -> str:
    """Policy, rebalancing and routing, then the atomic publish; announces the plan for review."""
    def work(entry: StepLog) -> Next:
        run_id = message["run_id"]
        run = _known_run(runtime, run_id)
        if run.get("status") == "FAILED":
            entry.finish("ignored", f"run {run_id} is FAILED")
            return []
        summary: dict[str, Any] = {}
        settings = run_settings(runtime, message.get("overrides"), message.get("run_date"))
        if run.get("status") != "COMPLETE":  # COMPLETE: a retry after publishing; only re-announce
            with tempfile.TemporaryDirectory(prefix="retailopt-artifacts-") as tmp:
                counts = pipeline.plan_step(runtime.warehouse, settings, run_id, Path(tmp))
                entry.counts.update(_counts(counts))
                timings = {k: float(v) for k, v in (counts.get("step_seconds") or {}).items()}
                published = pipeline.publish_step(runtime.warehouse, settings, run_id, Path(tmp), timings)
                summary["kpis"] = published.get("kpis", {})
                # On the step's log line for the stockout-risk alert (terraform/monitoring.tf).
                entry.counts.update({k: summary["kpis"][k] for k in ("stores_at_risk_after", "positions_at_risk_after")
                                     if k in summary["kpis"]})
                summary["artifacts"] = runtime.artifacts_store.upload_dir(Path(tmp), pipeline.artifacts_prefix(run_id))
        summary["artifacts_location"] = f"{runtime.artifacts_store.location}/{pipeline.artifacts_prefix(run_id)}/"
        # The orders (and transfers) go out when a planner releases the plan, only the approved
        # lines, once (retailopt.workbench.decisions.release); the plan is announced for review.
        # Where no review step is configured (release_mode "auto") the plan step releases it as
        # planned the same way, and the release's dispatch message sends its routes; a what-if
        # run (overrides) is never released by itself.
        summary["orders"] = len(_orders(runtime, run_id))
        auto = settings.release_mode == "auto" and not message.get("overrides")
        summary["release"] = _auto_release(runtime, run_id) if auto else "pending review"
        return [("published", [_next("published", message, summary=summary)])]

    return _typed(runtime, "plan", message, info, headers, work)


def _auto_release(runtime: Runtime, run_id: str) -> str:
    """Release a complete plan as planned: its orders and transfers go out and dispatch follows
    (the same path as a planner's release). A retry finds it released and says so."""
    # Imported here: the workbench imports this module (its what-if fields).
    from retailopt.workbench import decisions, views

    if views.released(runtime.warehouse, run_id) is not None:
        return "released as planned"
    try:
        decisions.release(runtime, pipeline.get_run(runtime.warehouse, run_id), "auto-release", as_planned=True)
    except decisions.DecisionError as exc:
        if exc.status != 409:
            raise
        if views.released(runtime.warehouse, run_id) is not None:
            return "released as planned"
        if "being released" in exc.message:  # another attempt holds the release: try again later
            raise BusyError(exc.message) from exc
        return f"not released automatically: {exc.message}"
    return "released as planned"


def retrain(runtime: Runtime, message: dict[str, Any], info: EventInfo, headers: Mapping[str, str] | None) -> str:
    """Start the training of the chain's BigQuery ML model of the message's date (the weekly
    trigger) and answer at once: the CREATE MODEL statement runs as a BigQuery job, which
    `check_trainings` follows to its end. A redelivered or repeated message finds the training
    it started (the job id is the training's); after a failed training a new message retries."""
    def work(entry: StepLog) -> Next:
        settings = run_settings(runtime, message.get("overrides"), None)
        if settings.forecast_engine != "bigquery_ml" or not hasattr(runtime.warehouse, "client"):
            entry.finish("ignored", "the local forecasting engine fits its models in every run; nothing to retrain")
            return []
        from google.api_core import exceptions as gexc

        from retailopt.forecasting import bigquery_ml

        chain_id = message["chain_id"]
        if chain_id != settings.chain_id:
            raise PermanentError(f"chain {chain_id!r} is not this deployment's chain {settings.chain_id!r}: "
                                 "its forecasts would never use the model")
        trained_on = date.fromisoformat(message["run_date"]) if message.get("run_date") else datetime.now(timezone.utc).date()
        try:
            version, job = bigquery_ml.submit_training(runtime.warehouse, settings, chain_id, trained_on)
        except gexc.BadRequest as exc:  # BigQuery refused the statement itself: no retry can help
            running = [v for v in bigquery_ml.model_versions(runtime.warehouse, chain_id, trained_on)
                       if v.trained_on == trained_on and v.state == bigquery_ml.RUNNING]
            for version in running:
                bigquery_ml.finish_training(runtime.warehouse, version, bigquery_ml.FAILED, error=exc.message)
            entry.finish("rejected", f"training failed: {exc.message}")
            return []
        entry.set(chain_id=chain_id, job_id=version.job_id, model=version.model_name)
        entry.counts.update(model=version.model_name, model_type=version.model_type,
                            trained_on=version.trained_on.isoformat(), data_end=version.data_end.isoformat(),
                            job_id=version.job_id, state=version.state if job is None else str(job.state))
        return []

    return _typed(runtime, "retrain", message, info, headers, work)


def dispatch(runtime: Runtime, message: dict[str, Any], info: EventInfo, headers: Mapping[str, str] | None) -> str:
    """A released run's routes to Fleet Engine (retailopt.dispatch.fleet): vehicles created once,
    tasks with ids derived from run, route and stop, so a redelivered release event creates nothing
    twice; the tasks are recorded in dispatch_tasks. Fleet Engine errors are retried by Pub/Sub."""
    def work(entry: StepLog) -> Next:
        from retailopt.dispatch import fleet

        run = _known_run(runtime, message["run_id"])
        try:
            done = fleet.dispatch_run(runtime.warehouse, runtime.fleet(), run, parent=runtime.fleet_parent(),
                                      visit_minutes=runtime.settings.visit_minutes)
        except fleet.DispatchError as exc:  # not complete or not released: no retry can help
            raise PermanentError(exc.message) from exc
        entry.counts.update(vehicles=done.vehicles, tasks=done.tasks, created=done.created, units=done.units,
                            already=done.already)
        return []

    # The run is COMPLETE: a rejection must not touch it (_reject fails only RUNNING runs).
    return handle(runtime, "dispatch", message, info, headers, work)


def check_trainings(runtime: Runtime, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The scheduled training check: how did the running trainings end? Each that ended gets one
    log line of step "retrain": outcome ok (DONE, its ML.ARIMA_EVALUATE in model_diagnostics),
    or rejected with reason "training failed: <BigQuery's error>" (FAILED; the forecasts keep
    the chain's previous model). Checking again changes nothing, so no ledger is needed."""
    summary: dict[str, Any] = {"done": 0, "failed": 0, "running": 0}
    with step_log("check_trainings", headers=headers) as entry:
        settings = runtime.settings
        if settings.forecast_engine != "bigquery_ml" or not hasattr(runtime.warehouse, "client"):
            entry.finish("ignored", "the local forecasting engine trains nothing in BigQuery")
            return summary
        from retailopt.forecasting import bigquery_ml

        finished, summary["running"] = bigquery_ml.check_trainings(runtime.warehouse, settings)
        for done in finished:
            version = done.version
            with step_log("retrain", headers=headers, chain_id=version.chain_id, job_id=version.job_id,
                          model=version.model_name) as line:
                line.counts.update(model_type=version.model_type, trained_on=version.trained_on.isoformat(),
                                   data_end=version.data_end.isoformat(), state=version.state)
                if version.state == bigquery_ml.FAILED:
                    line.finish("rejected", f"training failed: {version.error}")
                else:
                    line.counts["diagnostics"] = done.diagnostics
                    if done.diagnostics_error:
                        line.counts["diagnostics_error"] = done.diagnostics_error
            summary["done" if version.state == bigquery_ml.DONE else "failed"] += 1
        entry.counts.update(summary)
    return summary


def _typed(runtime: Runtime, step: str, message: dict[str, Any], info: EventInfo,
           headers: Mapping[str, str] | None, work: Callable[[StepLog], Next]) -> str:
    if message["kind"] != step:
        raise PermanentError(f"the {step} service takes {step} messages, got {message['kind']!r}")
    return handle(runtime, step, message, info, headers, work)


def _running(entry: StepLog, run: Mapping[str, Any]) -> bool:
    if run.get("status") != "RUNNING":
        entry.finish("ignored", f"run {run.get('run_id')} is already {run.get('status')}")
        return False
    return True


def _counts(result: Any) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        return {}
    return {str(k): v for k, v in result.items() if isinstance(v, (int, float, str, bool, dict, list)) or v is None}


def _orders(runtime: Runtime, run_id: str) -> list[dict[str, Any]]:
    rows = runtime.warehouse.query(
        "SELECT order_id, dc_id, store_id, product_id, quantity, cases, order_value, expected_arrival "
        "FROM `{dataset}.replenishment_orders` WHERE run_id = @run_id ORDER BY order_id", {"run_id": run_id})
    out = []
    for record in rows.to_dict(orient="records"):
        record["quantity"] = int(record["quantity"])
        record["cases"] = int(record["cases"])
        record["order_value"] = float(record["order_value"])
        arrival = record["expected_arrival"]
        record["expected_arrival"] = arrival.isoformat()[:10] if hasattr(arrival, "isoformat") else str(arrival)[:10]
        out.append(record)
    return out

