"""Asynchronous retraining through the functions-framework targets: `retrain` (Pub/Sub CloudEvents)
submits the training job and answers at once; `check_trainings` (Cloud Scheduler's POST) records
how each training ended and logs it. BigQuery is bqemulator, reached by a real
google-cloud-bigquery client whose HTTP transport adds the two job behaviours of BigQuery the
emulator lacks (a job id cannot be used twice; a job can still be running) — the only double."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

import functions_framework
import pandas as pd
import pytest
import requests
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from retailopt.config import load_settings
from retailopt.forecasting import bigquery_ml as bq
from retailopt.services import logs, messages
from retailopt.services.local import main_source
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore
from retailopt.warehouse.bigquery import BigQueryWarehouse

from bqml_support import evaluate_rows_for
from services_support import TokenFactory

CHAIN = "acme"
_CLIENT_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TRAINED_ON = dt.date(2025, 3, 2)


class BigQueryJobRules(requests.Session):
    """The HTTP transport of a real bigquery.Client talking to bqemulator, with two rules of
    BigQuery's jobs the emulator does not keep (it runs a job to its end at once and lets a job id
    be used again): jobs.insert with an id that exists is refused with 409 Already Exists, and
    jobs.get answers RUNNING for the ids in `running`. `refuse` answers a training's jobs.insert
    with 400, as BigQuery does for a statement it rejects outright. Every other answer is the emulator's."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[str] = set()
        self.refuse: str | None = None
        self.inserts: list[str] = []  # job ids asked for
        self.conflicts: list[str] = []

    def trainings(self) -> list[str]:
        return [job_id for job_id in self.inserts if job_id.startswith("retailopt_train_")]

    def request(self, method, url, *args, **kwargs):
        path = urlsplit(url).path
        if method.upper() == "POST" and re.search(r"/projects/[^/]+/jobs$", path):
            job_id = json.loads(kwargs.get("data") or "{}").get("jobReference", {}).get("jobId")
            if self.refuse and (job_id or "").startswith("retailopt_train_"):
                return _response(400, {"error": {"code": 400, "message": self.refuse, "status": "INVALID_ARGUMENT",
                                                 "errors": [{"reason": "invalidQuery", "message": self.refuse}]}},
                                 method, url)
            if job_id and not _CLIENT_JOB_ID.match(job_id):  # ids the client makes up are unique anyway
                self.inserts.append(job_id)
                probe = super().request("GET", f"{url.split('?')[0]}/{job_id}", timeout=kwargs.get("timeout"))
                if probe.status_code == 200:
                    self.conflicts.append(job_id)
                    message = f"Already Exists: Job {path.split('/')[-2]}:US.{job_id}"
                    return _response(409, {"error": {"code": 409, "message": message, "status": "ALREADY_EXISTS",
                                                     "errors": [{"reason": "duplicate", "message": message}]}},
                                     method, url)
        response = super().request(method, url, *args, **kwargs)
        match = re.search(r"/jobs/([^/]+)$", path)
        if method.upper() == "GET" and match and match.group(1) in self.running and response.status_code == 200:
            job = response.json()
            job["status"] = {"state": "RUNNING"}
            job.get("statistics", {}).pop("endTime", None)
            return _response(200, job, method, url)
        return response


def _response(status: int, body: dict, method: str, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    response.url = url
    response.request = requests.Request(method, url).prepare()
    return response


@pytest.fixture
def cloud(bqemu_endpoint, tmp_path):
    """A runtime as on Cloud Run with the BigQuery ML engine: warehouse, jobs and models in the emulator."""
    transport = BigQueryJobRules()
    client = bigquery.Client(project=bqemu_endpoint.project_id, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=bqemu_endpoint.rest_url), _http=transport)
    dataset = f"s_{uuid.uuid4().hex[:8]}"
    warehouse = BigQueryWarehouse(client, project=client.project, dataset=dataset)
    warehouse.ensure_schema()
    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": CHAIN, "warehouse": "bigquery",
                              "project": client.project, "dataset": dataset, "forecast_engine": "bigquery_ml",
                              "horizon_days": 14, "history_days": 60}, environ={})
    warehouse.insert("sales", pd.DataFrame({
        "store_id": ["S1", "S1", "S2"], "product_id": ["P1", "P1", "P1"],
        "sale_date": ["2025-02-20", "2025-02-27", "2025-02-28"], "units": [3, 4, 2], "price": [1.0, 1.0, 1.0],
        "on_promotion": [False, False, False]}))
    runtime = Runtime(settings, ServiceSettings(max_event_age_s=3600, max_attempts=3), warehouse, _NoPublisher(),
                      LocalStore(tmp_path / "raw"), LocalStore(tmp_path / "artifacts"))
    set_runtime(runtime)
    yield runtime, client, transport
    set_runtime(None)


class _NoPublisher:
    """The training services publish nothing; a publish would fail the test."""

    def publish(self, topic, message):
        raise AssertionError(f"unexpected publish to {topic}")

    def publish_many(self, topic, batch):
        raise AssertionError(f"unexpected publish to {topic}")


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.CloudLoggingFormatter())
    logs.logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.logger.removeHandler(handler)


_apps: dict[str, object] = {}
_apps_lock = threading.Lock()


def _client(target: str):
    with _apps_lock:
        if target not in _apps:
            _apps[target] = functions_framework.create_app(target, str(main_source()))
    return _apps[target].test_client()


def _retrain_event(run_id: str = "retrain-acme-1", event_id: str = "evt-1", chain: str = CHAIN,
                   run_date: dt.date = TRAINED_ON) -> CloudEvent:
    message = messages.make_message("retrain", chain_id=chain, run_id=run_id, run_date=run_date)
    now = datetime.now(timezone.utc)
    return CloudEvent({"id": event_id, "source": "//pubsub.googleapis.com/projects/p/topics/retailopt-retrain",
                       "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                      messages.pubsub_event_data(message, event_id, now, "projects/p/subscriptions/retrain"))


def _post_retrain(event: CloudEvent):
    headers, body = to_structured(event)
    return _client("retrain").post("/", headers=headers, data=body)


def _versions(runtime) -> pd.DataFrame:
    return runtime.warehouse.query("SELECT * FROM `{dataset}.model_versions` ORDER BY submitted_at")


def _steps(lines, step: str) -> list[dict]:
    return [line for line in lines if line.get("step") == step]


# --- retrain --------------------------------------------------------------------------------------

def test_retrain_submits_the_training_job_and_answers_at_once(cloud, log_lines):
    runtime, client, transport = cloud
    assert _post_retrain(_retrain_event()).status_code == 200
    rows = _versions(runtime)
    assert rows[["model_name", "model_type", "state"]].values.tolist() == [["arima_acme_20250302", "ARIMA_PLUS",
                                                                             "RUNNING"]]
    job_id = rows.job_id.iloc[0]
    assert job_id == bq.training_job_id(runtime.settings.dataset, CHAIN, TRAINED_ON, 1) == transport.trainings()[0]
    assert client.get_job(job_id, location="US").statement_type is not None
    [line] = _steps(log_lines(), "retrain")
    assert line["outcome"] == "ok" and line["job_id"] == job_id and line["counts"]["model"] == "arima_acme_20250302"
    assert line["counts"]["data_end"] == "2025-02-28" and line["counts"]["trained_on"] == "2025-03-02"

    # The same event redelivered: the ledger answers; no job is submitted.
    assert _post_retrain(_retrain_event()).status_code == 200
    assert _steps(log_lines(), "retrain")[-1]["outcome"] == "duplicate" and len(transport.trainings()) == 1
    # Another message of the same day (a second POST /retrain): BigQuery refuses the job id taken,
    # and the training that exists is the answer.
    assert _post_retrain(_retrain_event("retrain-acme-2", "evt-2")).status_code == 200
    assert transport.conflicts == [job_id] and len(_versions(runtime)) == 1
    assert _steps(log_lines(), "retrain")[-1]["counts"]["job_id"] == job_id


def test_retrain_of_another_chain_is_refused(cloud, log_lines):
    runtime, _, transport = cloud
    assert _post_retrain(_retrain_event(chain="other")).status_code == 200
    [line] = _steps(log_lines(), "retrain")
    assert line["outcome"] == "rejected" and "not this deployment's chain" in line["reason"]
    assert not line["reason"].startswith("training failed") and transport.trainings() == []
    assert _versions(runtime).empty


def test_a_statement_bigquery_refuses_is_a_failed_training(cloud, log_lines):
    runtime, _, transport = cloud
    transport.refuse = "Invalid value for holiday_region"
    assert _post_retrain(_retrain_event()).status_code == 200
    [line] = _steps(log_lines(), "retrain")
    assert line["outcome"] == "rejected" and line["severity"] == "ERROR"
    assert line["reason"].startswith("training failed: ") and "holiday_region" in line["reason"]
    row = _versions(runtime).iloc[0]
    assert row.state == "FAILED" and "holiday_region" in row.error
    # A later message of the day tries again, as a new attempt with its own job id.
    transport.refuse = None
    assert _post_retrain(_retrain_event("retrain-acme-2", "evt-2")).status_code == 200
    rows = _versions(runtime)
    assert rows.state.tolist() == ["FAILED", "RUNNING"]
    assert rows.job_id.iloc[1] == bq.training_job_id(runtime.settings.dataset, CHAIN, TRAINED_ON, 2)


# --- check_trainings ------------------------------------------------------------------------------

def test_the_check_records_and_logs_how_each_training_ended(cloud, log_lines, monkeypatch):
    """A training that ran, one whose job failed and one still running, checked twice; then the
    running one ends. Each ending is recorded and logged once: DONE as step retrain, outcome ok;
    FAILED as step retrain, outcome rejected, reason "training failed: <BigQuery's error>"."""
    runtime, client, transport = cloud
    settings = runtime.settings
    assert _post_retrain(_retrain_event()).status_code == 200
    done_job = _versions(runtime).job_id.iloc[0]
    failed = bq.plan_training(runtime.warehouse, settings, CHAIN, dt.date(2025, 3, 9), attempt=1)
    bq.record_training(runtime.warehouse, failed)
    client.query(f"SELECT * FROM `{settings.project}.{settings.dataset}.no_such_table`", job_id=failed.job_id,
                 job_retry=None)
    slow = bq.plan_training(runtime.warehouse, settings, CHAIN, dt.date(2025, 3, 16), attempt=1)
    bq.record_training(runtime.warehouse, slow)
    bq.submit_training(runtime.warehouse, settings, CHAIN, dt.date(2025, 3, 16))
    transport.running.add(slow.job_id)
    evaluate_rows_for(client, settings, monkeypatch, [("S1", "P1"), ("S2", "P1")])
    check = _client("check_trainings")

    seen = len(log_lines())
    answer = check.post("/")
    assert answer.status_code == 200 and answer.get_json() == {"done": 1, "failed": 1, "running": 1}
    ended = {line["job_id"]: line for line in _steps(log_lines()[seen:], "retrain")}
    assert set(ended) == {done_job, failed.job_id}
    done_line, failed_line = ended[done_job], ended[failed.job_id]
    assert done_line["outcome"] == "ok" and done_line["counts"]["diagnostics"] == 2
    assert done_line["severity"] == "INFO" and done_line["model"] == "arima_acme_20250302"
    assert failed_line["outcome"] == "rejected" and failed_line["severity"] == "ERROR"
    assert failed_line["reason"].startswith("training failed: ") and "no_such_table" in failed_line["reason"]
    assert failed_line["chain_id"] == CHAIN and failed_line["model"] == failed.model_name
    [summary] = _steps(log_lines(), "check_trainings")
    assert summary["outcome"] == "ok" and summary["counts"] == {"done": 1, "failed": 1, "running": 1}
    states = _versions(runtime).set_index("job_id").state.to_dict()
    assert states == {done_job: "DONE", failed.job_id: "FAILED", slow.job_id: "RUNNING"}
    # The forecasts use the training that succeeded; the failed newer one leaves it in use.
    assert bq.select_model(runtime.warehouse, CHAIN, dt.date(2025, 3, 12)).job_id == done_job

    before = len(_steps(log_lines(), "retrain"))
    assert check.post("/").get_json() == {"done": 0, "failed": 0, "running": 1}
    assert len(_steps(log_lines(), "retrain")) == before
    transport.running.clear()
    assert check.post("/").get_json() == {"done": 1, "failed": 0, "running": 0}
    assert _steps(log_lines(), "retrain")[-1]["job_id"] == slow.job_id
    assert bq.select_model(runtime.warehouse, CHAIN, dt.date(2025, 3, 16)).job_id == slow.job_id


def test_check_trainings_answers_the_scheduler_only(cloud, monkeypatch):
    runtime, _, _ = cloud
    tokens = TokenFactory()
    monkeypatch.setattr(runtime, "verifier", tokens.verifier())
    check = _client("check_trainings")
    assert check.post("/").status_code == 401
    assert check.post("/", headers=tokens.header(email="someone@example.com")).status_code == 403
    assert check.get("/", headers=tokens.header()).status_code == 405
    assert check.post("/", headers=tokens.header()).get_json() == {"done": 0, "failed": 0, "running": 0}


def test_the_local_engine_trains_nothing(cloud, log_lines):
    runtime, _, transport = cloud
    local = runtime.settings.replace(forecast_engine="local")
    runtime.settings = local
    assert _post_retrain(_retrain_event()).status_code == 200
    assert _client("check_trainings").post("/").get_json() == {"done": 0, "failed": 0, "running": 0}
    assert [line["outcome"] for line in log_lines() if line.get("step") in ("retrain", "check_trainings")] == [
        "ignored", "ignored"]
    assert transport.trainings() == []

