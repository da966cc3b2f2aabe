"""The alerts of terraform/monitoring.tf fire on what the services really log.

The handlers run for real (functions-framework test clients, real CloudEvents, the embedded
warehouse; for the BigQuery ML paths bqemulator) and their JSON log lines are captured and
shaped as Cloud Run's LogEntry (resource cloud_run_revision, jsonPayload, severity). Every log
filter of monitoring.tf (log-based metrics and log-match alert policies), with its locals and
variables substituted, is evaluated on them with the Logging query language subset in
logquery_support: a policy that can match nothing the code emits fails the test.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import shutil
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import functions_framework
import hcl2
import pytest
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from google.api_core import exceptions as gexc
from hcl2.utils import SerializationOptions
from starlette.testclient import TestClient

from logquery_support import compile_filter
from retailopt.config import load_settings
from retailopt.sample import generate_sample_chain
from retailopt.services import logs, messages
from retailopt.services.local import main_source
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "terraform"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
PREFIX = "retailopt"
CHAIN = "acme"
DROP = "acme/2026-01-15"
MAX_ATTEMPTS = 3
# functions-framework target -> Cloud Run service (terraform/run.tf: <prefix>-<service>).
SERVICES = {"import_files": "import", "forecast": "forecast", "plan": "plan", "retrain": "retrain",
            "check_trainings": "training", "api": "api"}


# --- what the code logs ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Logged:
    scenario: str
    service: str
    line: dict[str, Any]

    @property
    def entry(self) -> dict[str, Any]:
        """The LogEntry Cloud Run makes of a JSON line on stdout: `severity`, `time` and the
        logging.googleapis.com/* keys become LogEntry fields, the rest is jsonPayload."""
        payload = {k: v for k, v in self.line.items()
                   if k not in ("severity", "time") and not k.startswith("logging.googleapis.com/")}
        return {
            "logName": "projects/acme-retail-prod/logs/run.googleapis.com%2Fstdout",
            "resource": {"type": "cloud_run_revision", "labels": {
                "service_name": f"{PREFIX}-{self.service}", "revision_name": f"{PREFIX}-{self.service}-00001-abc",
                "configuration_name": f"{PREFIX}-{self.service}", "location": "europe-west1",
                "project_id": "acme-retail-prod"}},
            "severity": self.line["severity"],
            "timestamp": self.line["time"],
            "jsonPayload": payload,
        }

    def __str__(self) -> str:
        return f"{self.scenario}/{self.service}: {self.line.get('message')}"


class RecordingPublisher:
    """Stands in for Pub/Sub (no emulator here): keeps what the handlers publish."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def publish(self, topic, message):
        return self.publish_many(topic, [message])[0]

    def publish_many(self, topic, batch):
        with self._lock:
            if self.fail:
                raise gexc.ServiceUnavailable("pubsub unavailable")
            self.sent.extend((topic, dict(m)) for m in batch)
            return [str(len(self.sent) - i) for i in range(len(batch))]

    def take(self, topic: str) -> dict:
        found = [m for t, m in self.sent if t == topic]
        assert found, f"nothing published to {topic}: {[t for t, _ in self.sent]}"
        return found[-1]


class Capture:
    """The services' JSON lines, each with the Cloud Run service that wrote it."""

    def __init__(self) -> None:
        self.logged: list[Logged] = []
        self._stream = io.StringIO()
        self._handler = logging.StreamHandler(self._stream)
        self._handler.setFormatter(logs.CloudLoggingFormatter())

    def __enter__(self) -> Capture:
        logs.logger.addHandler(self._handler)
        logs.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        logs.logger.removeHandler(self._handler)

    def post(self, scenario: str, target: str, event: CloudEvent) -> int:
        status = _post(_client(target), event)
        self._collect(scenario, target)
        return status

    def check_trainings(self, scenario: str, runtime: Runtime) -> dict[str, Any]:
        """The training check Cloud Scheduler calls (the `training` service)."""
        from retailopt.services import handlers

        summary = handlers.check_trainings(runtime)
        self._collect(scenario, "check_trainings")
        return summary

    def call_api(self, scenario: str, method: str, path: str, **kwargs) -> Any:
        response = TestClient(functions_framework.create_app("api", str(main_source()))).request(method, path, **kwargs)
        self._collect(scenario, "api")
        return response

    def _collect(self, scenario: str, target: str) -> None:
        text = self._stream.getvalue()
        self._stream.seek(0)
        self._stream.truncate()
        self.logged.extend(Logged(scenario, SERVICES[target], json.loads(line)) for line in text.splitlines())


def _client(target: str):
    return functions_framework.create_app(target, str(main_source())).test_client()


def _post(client, event: CloudEvent) -> int:
    headers, body = to_structured(event)
    return client.post("/", headers=headers, data=body).status_code


def _pubsub_event(message: dict, event_id: str) -> CloudEvent:
    now = datetime.now(timezone.utc)
    return CloudEvent({"id": event_id, "source": f"//pubsub.googleapis.com/projects/p/topics/{PREFIX}-x",
                       "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                      messages.pubsub_event_data(message, event_id, now, "projects/p/subscriptions/s"))


def _marker_event(runtime: Runtime, event_id: str) -> CloudEvent:
    return CloudEvent({"id": event_id, "source": "//storage.googleapis.com/projects/_/buckets/raw",
                       "type": messages.STORAGE_FINALIZED_TYPE, "time": datetime.now(timezone.utc).isoformat()},
                      {"bucket": runtime.raw_store.name, "name": f"{DROP}/_READY", "generation": "1", "size": "0"})


def _start(run_id: str, prefix: str | None = DROP, **kw) -> dict:
    return messages.make_message("start", chain_id=CHAIN, run_id=run_id, run_date="2026-01-15",
                                 source={"prefix": prefix} if prefix else None, **kw)


def _local_runtime(root: Path, sample: Path, publisher: RecordingPublisher) -> Runtime:
    from retailopt.warehouse import open_warehouse

    raw = root / "raw"
    shutil.copytree(sample, raw / DROP)
    (raw / DROP / "_READY").write_text("")
    settings = load_settings({"data_dir": root / "data", "chain_id": CHAIN, "routing_time_limit_s": 2}, environ={})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return Runtime(settings, ServiceSettings(max_event_age_s=3600, max_attempts=MAX_ATTEMPTS, max_body_bytes=200_000),
                   warehouse, publisher, LocalStore(raw), LocalStore(root / "artifacts"))


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> list[Logged]:
    sample = tmp_path_factory.mktemp("sample")
    generate_sample_chain(sample, n_stores=4, n_products=6, days=120, end_date=date(2026, 1, 14))
    scenarios = [_complete_run, _given_up, _bad_drop, _unknown_run]
    with Capture() as capture:
        for scenario in scenarios:
            publisher = RecordingPublisher()
            runtime = _local_runtime(tmp_path_factory.mktemp(scenario.__name__), sample, publisher)
            set_runtime(runtime)
            try:
                scenario(capture, runtime, publisher)
            finally:
                set_runtime(None)
                runtime.warehouse.close()
    return capture.logged


def _complete_run(capture: Capture, runtime: Runtime, publisher: RecordingPublisher) -> None:
    """A planner's POST /runs, then import, forecast and plan, each fed what the step before published."""
    assert capture.call_api("complete", "POST", "/runs", json={"run_date": "2026-01-15"}).status_code == 202
    run_id = "acme-20260115-complete"
    assert capture.post("complete", "import_files", _pubsub_event(_start(run_id), "c-import")) == 200
    assert capture.post("complete", "forecast", _pubsub_event(publisher.take("forecast"), "c-forecast")) == 200
    assert capture.post("complete", "plan", _pubsub_event(publisher.take("plan"), "c-plan")) == 200
    assert runtime.warehouse.query("SELECT status FROM `{dataset}.runs` WHERE run_id = @r",
                                   {"r": run_id}).status.tolist() == ["COMPLETE"]


def _given_up(capture: Capture, runtime: Runtime, publisher: RecordingPublisher) -> None:
    """Pub/Sub keeps failing: the delivery that reaches max_attempts gives up and fails the run."""
    publisher.fail = True
    event = _pubsub_event(_start("acme-20260115-doomed", prefix=None), "doomed")
    assert [capture.post("given_up", "import_files", event) for _ in range(MAX_ATTEMPTS)] == \
        [500] * (MAX_ATTEMPTS - 1) + [200]


def _bad_drop(capture: Capture, runtime: Runtime, publisher: RecordingPublisher) -> None:
    """A drop whose required file is unreadable: the run is FAILED with the reason."""
    (runtime.raw_store.root / DROP / "stores.csv").write_text("this,is,not\nthe,stores,file\n")
    assert capture.post("bad_drop", "import_files", _marker_event(runtime, "bad-drop")) == 200


def _unknown_run(capture: Capture, runtime: Runtime, publisher: RecordingPublisher) -> None:
    """Messages no retry can fix and no run to fail: an unknown run, an unsupported schema version."""
    message = messages.make_message("plan", chain_id=CHAIN, run_id="nope")
    assert capture.post("unknown_run", "plan", _pubsub_event(message, "nope-1")) == 200
    data = {"message": {"data": base64.b64encode(json.dumps({"schema_version": 9, "kind": "forecast"}).encode()).decode()}}
    event = CloudEvent({"id": "v9", "source": "s", "type": messages.PUBSUB_EVENT_TYPE}, data)
    assert capture.post("unknown_run", "forecast", event) == 200



# --- BigQuery ML paths (bqemulator) ------------------------------------------------------------

BQML_TRAINED_ON = date(2025, 2, 16)
BQML_RUN_DATE = date(2025, 3, 3)


@pytest.fixture()
def emitted_bigquery_ml(bqemu_client, tmp_path, monkeypatch) -> list[Logged]:
    """A weekly training, its check, a daily forecast from the model, then a training whose
    BigQuery job fails. bqemulator computes no ML table function, so (as in
    test_forecasting_bigquery_ml) only ML.FORECAST / ML.EXPLAIN_FORECAST / ML.ARIMA_EVALUATE /
    ML.DETECT_ANOMALIES are replaced by tables of their output columns; handlers, statements, jobs and bookkeeping are real."""
    import uuid

    from retailopt.forecasting import bigquery_ml as bq
    from retailopt.warehouse.bigquery import BigQueryWarehouse
    from test_forecasting_anomalies import detect_on_emulator_tables
    from test_forecasting_bigquery_ml import EXPLAIN_OUT, FORECAST_OUT, evaluate_rows_for, replace_table_function

    dataset = f"m_{uuid.uuid4().hex[:8]}"
    warehouse = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=dataset)
    warehouse.ensure_schema()
    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": CHAIN, "warehouse": "bigquery",
                              "project": bqemu_client.project, "dataset": dataset, "forecast_engine": "bigquery_ml",
                              "horizon_days": 14, "history_days": 60}, environ={})
    drop = f"{CHAIN}/{BQML_RUN_DATE.isoformat()}"
    generate_sample_chain(tmp_path / "raw" / drop, n_stores=2, n_products=2, days=35,
                          end_date=BQML_RUN_DATE - timedelta(days=1))
    (tmp_path / "raw" / drop / "_READY").write_text("")
    publisher = RecordingPublisher()
    runtime = Runtime(settings, ServiceSettings(max_event_age_s=3600, max_attempts=MAX_ATTEMPTS,
                                                max_body_bytes=200_000),
                      warehouse, publisher, LocalStore(tmp_path / "raw"), LocalStore(tmp_path / "artifacts"))
    detect_on_emulator_tables(bqemu_client, dataset, monkeypatch)  # no anomalies: empty output tables
    for function, table in (("forecast_statement", "ml_forecast_out"), ("explain_statement", "ml_explain_out")):
        real = getattr(bq, function)
        name = "FORECAST" if function == "forecast_statement" else "EXPLAIN_FORECAST"
        monkeypatch.setattr(bq, function, lambda *a, _real=real, _name=name, _table=table, **k: replace_table_function(
            _real(*a, **k), _name, _table, settings, client=bqemu_client))
    set_runtime(runtime)
    try:
        with Capture() as capture:
            start = messages.make_message("start", chain_id=CHAIN, run_id="acme-20250303-bqml", run_date=BQML_RUN_DATE,
                                          source={"prefix": drop})
            assert capture.post("bigquery_ml", "import_files", _pubsub_event(start, "bq-import")) == 200
            positions = [tuple(p) for p in warehouse.query(
                "SELECT DISTINCT store_id, product_id FROM `{dataset}.inventory`").itertuples(index=False)]
            retrain = messages.make_message("retrain", chain_id=CHAIN, run_id="retrain-acme-weekly",
                                            run_date=BQML_TRAINED_ON)
            assert capture.post("bigquery_ml", "retrain", _pubsub_event(retrain, "retrain-1")) == 200
            evaluate_rows_for(bqemu_client, settings, monkeypatch, positions)
            assert capture.check_trainings("bigquery_ml", runtime)["done"] == 1
            data_end = date.fromisoformat(_one(capture.logged, "bigquery_ml", "retrain", "retrain ok").line["counts"]
                                          ["data_end"])
            _ml_rows(bqemu_client, settings, positions, data_end, FORECAST_OUT, EXPLAIN_OUT)
            assert capture.post("bigquery_ml", "forecast", _pubsub_event(publisher.take("forecast"), "bq-fc")) == 200
            # The next week's training is recorded and its BigQuery job fails (the emulator runs
            # any CREATE MODEL it accepts, so the job of that id reads a table that does not exist).
            broken = bq.plan_training(warehouse, settings, CHAIN, BQML_RUN_DATE, attempt=1)
            bq.record_training(warehouse, broken)
            bqemu_client.query(f"SELECT * FROM `{bqemu_client.project}.{dataset}.no_such_table`",
                               job_id=broken.job_id, location=broken.job_location, job_retry=None)
            assert capture.check_trainings("bigquery_ml", runtime)["failed"] == 1
        return capture.logged
    finally:
        set_runtime(None)


def _ml_rows(client, settings, positions, data_end: date, forecast_columns: str, explain_columns: str) -> None:
    """What ML.FORECAST and ML.EXPLAIN_FORECAST would answer from the day after the training data."""
    table = f"`{settings.project}.{settings.dataset}"
    days = (BQML_RUN_DATE - data_end).days - 1 + settings.horizon_days
    for name, columns, stamp in (("ml_forecast_out", forecast_columns, "forecast_timestamp"),
                                 ("ml_explain_out", explain_columns, "time_series_timestamp")):
        client.query(f"CREATE TABLE {table}.{name}` {columns}").result()
        names = re.findall(r"(\w+) (?:STRING|TIMESTAMP|FLOAT64|INT64|BOOL)", columns)
        rows = []
        for store, product in positions:
            for d in range(days):
                ts = f"TIMESTAMP '{(data_end + timedelta(days=1 + d)).isoformat()} 00:00:00+00'"
                known = {"store_id": f"'{store}'", "product_id": f"'{product}'", stamp: ts,
                         "time_series_type": "'forecast'", "forecast_value": "2.0", "time_series_data": "2.0",
                         "standard_error": "1.0", "confidence_level": "0.9"}
                bound = {"lower": "0.4", "upper": "3.6"}
                rows.append("(" + ", ".join(known.get(c) or next((v for k, v in bound.items() if f"_{k}_" in c), "0.0")
                                            for c in names) + ")")
        client.query(f"INSERT INTO {table}.{name}` ({', '.join(names)}) VALUES {', '.join(rows)}").result()


# --- monitoring.tf, rendered ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def monitoring() -> dict[str, Any]:
    doc = hcl2.load((TF / "monitoring.tf").open(encoding="utf-8"), serialization_options=OPTIONS)
    resources = {(kind, name): body for block in doc["resource"] for kind, named in block.items()
                 for name, body in named.items()}
    return {"locals": {k: v for block in doc["locals"] for k, v in block.items()}, "resources": resources}


def default_thresholds() -> dict[str, float]:
    """var.alert_thresholds' defaults, read from variables.tf."""
    doc = hcl2.load((TF / "variables.tf").open(encoding="utf-8"), serialization_options=OPTIONS)
    variable = next(blk["alert_thresholds"] for blk in doc["variable"] if "alert_thresholds" in blk)
    found = re.findall(r"(\w+)\s*=\s*optional\(number,\s*([0-9.]+)\)", variable["type"])
    assert found, variable["type"]
    return {name: float(value) for name, value in found}


def render(template: str, scope: dict[str, Any]) -> str:
    """Terraform's string interpolation for plain references (local.x, var.x.y, each.value.z)."""
    def value(match: re.Match) -> str:
        expr = match.group(1).strip()
        if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", expr):
            raise AssertionError(f"the test renders plain references only, not ${{{expr}}}")
        node: Any = scope
        for part in expr.split("."):
            node = node[part]
        if isinstance(node, str):
            return render(node, scope)
        if isinstance(node, float) and node.is_integer():
            node = int(node)
        return json.dumps(node)
    return re.sub(r"\$\{([^{}]*)\}", value, template)


def scope(monitoring, thresholds: dict[str, float] | None = None, **each: Any) -> dict[str, Any]:
    loc = {**monitoring["locals"], "prefix": PREFIX}
    assert loc["metric_type"] == \
        '${{for k in keys(local.log_metrics) : k => "logging.googleapis.com/user/${local.prefix}_${k}"}}'
    loc["metric_type"] = {k: f"logging.googleapis.com/user/{PREFIX}_{k}" for k in loc["log_metrics"]}
    return {"local": loc, "var": {"alert_thresholds": {**default_thresholds(), **(thresholds or {})}},
            "each": each}


def policy_filters(monitoring, thresholds=None) -> dict[str, str]:
    """Each log-match alert policy's condition filter, as Terraform would render it."""
    body = monitoring["resources"][("google_monitoring_alert_policy", "log_match")]
    assert body["for_each"] == "${local.log_alerts}"
    template = body["conditions"][0]["condition_matched_log"][0]["filter"]
    return {name: render(template, scope(monitoring, thresholds, key=name, value=alert))
            for name, alert in monitoring["locals"]["log_alerts"].items()}


def metric_filters(monitoring) -> dict[str, str]:
    body = monitoring["resources"][("google_logging_metric", "default")]
    assert body["for_each"] == "${local.log_metrics}"
    return {name: render(body["filter"], scope(monitoring, key=name, value=metric))
            for name, metric in monitoring["locals"]["log_metrics"].items()}


def matched(query: str, logged: list[Logged]) -> list[Logged]:
    predicate = compile_filter(query)
    return [item for item in logged if predicate(item.entry)]


def _one(logged: list[Logged], scenario: str, service: str, message: str) -> Logged:
    found = [item for item in logged if item.scenario == scenario and item.service == service
             and item.line.get("message", "").startswith(message)]
    assert len(found) == 1, (scenario, service, message, [str(i) for i in logged])
    return found[0]


# --- the contract --------------------------------------------------------------------------------

def test_each_failure_policy_matches_exactly_its_lines(emitted, monitoring):
    """Every rejected line the code writes lands in exactly one failure policy: the one made for it."""
    filters = policy_filters(monitoring)
    expected = {
        "dead_letters": [_one(emitted, "given_up", "import", "import rejected: gave up after")],
        "failed_runs": [_one(emitted, "bad_drop", "import", "import rejected: InputError")],
        "failed_steps": [_one(emitted, "unknown_run", "plan", "plan rejected: unknown run"),
                         _one(emitted, "unknown_run", "forecast", "forecast rejected: unsupported schema_version")],
        "stores_at_risk": [],  # at the default threshold (5) the 4-store sample chain does not alert
        "model_age": [],  # the local engine has no model to age (the BigQuery ML path: see below)
        "training_failed": [],
    }
    assert set(expected) == set(filters)
    for name, query in filters.items():
        assert matched(query, emitted) == expected[name], name
    rejected = [item for item in emitted if item.line.get("outcome") == "rejected"]
    failure_policies = ("dead_letters", "failed_runs", "failed_steps", "training_failed")
    for item in rejected:
        hits = [name for name in failure_policies if compile_filter(filters[name])(item.entry)]
        assert len(hits) == 1, (str(item), hits)
    # The lines that fail a run say so: run_status FAILED, and the run is FAILED indeed.
    assert expected["dead_letters"][0].line["run_status"] == expected["failed_runs"][0].line["run_status"] == "FAILED"
    assert all("run_status" not in item.line for item in expected["failed_steps"])


def test_stores_at_risk_policy_compares_the_plans_count_with_the_threshold(emitted, monitoring):
    plan = _one(emitted, "complete", "plan", "plan ok")
    at_risk = plan.line["counts"]["stores_at_risk_after"]
    assert isinstance(at_risk, int) and at_risk >= 1, plan.line["counts"]
    assert isinstance(plan.line["counts"]["positions_at_risk_after"], int)
    assert matched(policy_filters(monitoring, {"stores_at_risk": at_risk - 1})["stores_at_risk"], emitted) == [plan]
    assert matched(policy_filters(monitoring, {"stores_at_risk": at_risk})["stores_at_risk"], emitted) == []
    assert default_thresholds()["stores_at_risk"] > 0, "0 alerts on nearly every plan"


def test_bigquery_ml_policies_match_the_forecast_and_training_lines(emitted_bigquery_ml, monitoring):
    logged = emitted_bigquery_ml
    forecast = _one(logged, "bigquery_ml", "forecast", "forecast ok")
    age = forecast.line["counts"].get("model_age_days")
    assert isinstance(age, int), f"the forecast step logs no integer model_age_days: {forecast.line}"
    assert age == (BQML_RUN_DATE - BQML_TRAINED_ON).days
    filters = policy_filters(monitoring)
    assert age > default_thresholds()["model_age_days"]
    assert matched(filters["model_age"], logged) == [forecast]
    assert matched(policy_filters(monitoring, {"model_age_days": age})["model_age"], logged) == []
    failed = _one(logged, "bigquery_ml", "training", "retrain rejected: training failed:")
    assert "no_such_table" in failed.line["reason"]
    assert matched(filters["training_failed"], logged) == [failed]
    for name in ("dead_letters", "failed_runs", "failed_steps", "stores_at_risk"):
        assert matched(filters[name], logged) == [], name
    metrics = metric_filters(monitoring)
    assert matched(metrics["model_age_days"], logged) == [forecast]
    _values_are_numbers(monitoring, metrics, logged)


def test_log_metrics_count_what_their_names_say(emitted, monitoring):
    filters = metric_filters(monitoring)
    plan = _one(emitted, "complete", "plan", "plan ok")
    assert matched(filters["completed_runs"], emitted) == [plan]  # not the api's or another step's "ok"
    assert matched(filters["dead_letters"], emitted) == [_one(emitted, "given_up", "import", "import rejected")]
    assert matched(filters["failed_steps"], emitted) == [i for i in emitted if i.line.get("outcome") == "rejected"]
    assert matched(filters["stores_at_risk"], emitted) == [plan]
    assert matched(filters["model_age_days"], emitted) == []  # the local engine fits its models in every run
    assert matched(filters["step_duration_s"], emitted) == [i for i in emitted if "duration_s" in i.line]
    _values_are_numbers(monitoring, filters, emitted)


def _values_are_numbers(monitoring, filters: dict[str, str], logged: list[Logged]) -> None:
    """A value extractor reads a number on every line its metric matches."""
    for name, metric in monitoring["locals"]["log_metrics"].items():
        if metric["value"] is None:
            continue
        field = re.fullmatch(r"EXTRACT\(jsonPayload\.([\w.]+)\)", metric["value"]).group(1)
        for item in matched(filters[name], logged):
            value: Any = item.line
            for part in field.split("."):
                value = value[part]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, str(item))


def test_no_complete_run_policy_spans_the_configured_hours(monitoring):
    body = monitoring["resources"][("google_monitoring_alert_policy", "no_complete_run")]
    condition = body["conditions"][0]["condition_threshold"][0]
    assert render(condition["filter"], scope(monitoring)) == \
        f'metric.type="logging.googleapis.com/user/{PREFIX}_completed_runs" AND resource.type="cloud_run_revision"'
    assert condition["comparison"] == "COMPARISON_LT" and condition["threshold_value"] == 1
    assert condition["evaluation_missing_data"] == "EVALUATION_MISSING_DATA_ACTIVE"
    aggregation = condition["aggregations"][0]
    assert aggregation["per_series_aligner"] == "ALIGN_SUM" and aggregation["cross_series_reducer"] == "REDUCE_SUM"
    alignment = int(aggregation["alignment_period"].rstrip("s"))
    assert alignment <= 90000, "alerting policies align over at most 25 hours"
    hours = default_thresholds()["hours_without_complete_run"]
    assert hours == 26
    # 24 h sums below one, held for the remaining hours: no completed run in the whole window.
    assert monitoring["locals"]["no_complete_run_s"] == "${var.alert_thresholds.hours_without_complete_run * 3600}"
    assert condition["duration"] == "${local.no_complete_run_s - 86400}s" and alignment == 86400


def test_alert_labels_and_documentation_name_what_exists(emitted, monitoring):
    body = monitoring["resources"][("google_monitoring_alert_policy", "log_match")]
    extractors = body["conditions"][0]["condition_matched_log"][0]["label_extractors"]
    for label, extractor in extractors.items():
        field = re.fullmatch(r"EXTRACT\(jsonPayload\.(\w+)\)", extractor).group(1)
        assert any(field in item.line for item in emitted if item.line.get("outcome") == "rejected"), label
    assert body["alert_strategy"][0]["notification_rate_limit"][0]["period"]
    for name, alert in monitoring["locals"]["log_alerts"].items():
        assert alert["severity"] in ("CRITICAL", "ERROR", "WARNING"), name
        for view in re.findall(r"\b([a-z_]+) (?:view|table)\b", alert["doc"]):
            assert (ROOT / "sql" / "views" / f"{view}.sql").exists() or (ROOT / "sql" / "schema" / f"{view}.sql").exists(), \
                (name, view)
