"""The functions-framework targets of functions/main.py, posted real CloudEvents and HTTP requests.

The pipeline and the embedded warehouse are the real ones, on a small generated chain; only the
Pub/Sub publisher is replaced (by a recorder) where a test needs to see what a handler sent.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from google.api_core import exceptions as gexc
from starlette.testclient import TestClient

from retailopt.config import load_settings
from retailopt.sample import generate_sample_chain
from retailopt.services import logs, messages
from retailopt.services.local import main_source, start_local
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore
from services_support import TokenFactory

import functions_framework

CHAIN = "acme"
DROP = "acme/2026-01-15"


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample_chain(out, n_stores=4, n_products=6, days=120, end_date=date(2026, 1, 14))
    return out


@pytest.fixture(scope="module")
def tokens() -> TokenFactory:
    return TokenFactory()


def _raw_dir(tmp_path: Path, sample_files: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(sample_files, raw / DROP)
    (raw / DROP / "_READY").write_text("")
    return raw


class RecordingPublisher:
    """Stands in for Pub/Sub where a test inspects what was sent (no emulator runs here)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()

    def publish(self, topic, message):
        return self.publish_many(topic, [message])[0]

    def publish_many(self, topic, batch):
        with self._lock:
            if self.fail_first:
                self.fail_first -= 1
                raise gexc.ServiceUnavailable("pubsub unavailable")
            self.sent.extend((topic, dict(m)) for m in batch)
            return [str(len(self.sent) - i) for i in range(len(batch))]

    def topics(self):
        return [t for t, _ in self.sent]


@pytest.fixture()
def runtime(tmp_path, sample_files):
    from retailopt.warehouse import open_warehouse

    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": CHAIN}, environ={})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    rt = Runtime(settings, ServiceSettings(max_event_age_s=3600, max_attempts=3, max_body_bytes=200_000),
                 warehouse, RecordingPublisher(), LocalStore(_raw_dir(tmp_path, sample_files)),
                 LocalStore(tmp_path / "artifacts"))
    set_runtime(rt)
    yield rt
    set_runtime(None)
    warehouse.close()


@pytest.fixture()
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.CloudLoggingFormatter())
    logs.logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.logger.removeHandler(handler)


def _client(target: str):
    return functions_framework.create_app(target, str(main_source())).test_client()


def _api_client() -> TestClient:
    """The API is an ASGI function: functions-framework builds a Starlette app for it."""
    return TestClient(functions_framework.create_app("api", str(main_source())))


def _pubsub_event(message: dict, event_id: str = "evt-1", time: datetime | None = None) -> CloudEvent:
    now = time or datetime.now(timezone.utc)
    return CloudEvent({"id": event_id, "source": "//pubsub.googleapis.com/projects/p/topics/retailopt-x",
                       "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                      messages.pubsub_event_data(message, event_id, now, "projects/p/subscriptions/s"))


def _post(client, event: CloudEvent, binary: bool = False, extra_headers: dict | None = None):
    headers, body = (to_binary if binary else to_structured)(event)
    return client.post("/", headers={**headers, **(extra_headers or {})}, data=body)


def _start_message(run_id: str = "acme-20260115-test", prefix: str | None = DROP, **kw) -> dict:
    return messages.make_message("start", chain_id=CHAIN, run_id=run_id, run_date="2026-01-15",
                                 source={"prefix": prefix} if prefix else None, **kw)


def _runs(rt: Runtime, run_id: str):
    return rt.warehouse.query("SELECT run_id, status FROM `{dataset}.runs` WHERE run_id = @r", {"r": run_id})


# --- idempotency ----------------------------------------------------------------------------------

def test_same_start_message_delivered_five_times_concurrently_yields_one_run(runtime):
    message = _start_message()
    event = _pubsub_event(message, event_id="dup-1")
    barrier = threading.Barrier(5)
    statuses = []

    def deliver():
        client = _client("import_files")
        barrier.wait()
        statuses.append(_post(client, event).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Deliveries that found the claim held were told to retry (5xx); replay them as Pub/Sub would.
    for _ in range(statuses.count(500)):
        assert _post(_client("import_files"), event).status_code == 200
    assert statuses.count(200) >= 1
    assert len(_runs(runtime, message["run_id"])) == 1
    assert runtime.publisher.topics() == ["forecast"]
    sales = runtime.warehouse.query("SELECT COUNT(*) AS n FROM `{dataset}.sales`")["n"].iloc[0]
    file_rows = len(pd.read_parquet(runtime.raw_store.root / DROP / "sales.parquet"))
    assert sales == file_rows
    # Published again under another event id (same business key): still one run, nothing re-sent.
    assert _post(_client("import_files"), _pubsub_event(message, event_id="dup-2")).status_code == 200
    assert runtime.publisher.topics() == ["forecast"]
    assert runtime.ledger.get(messages.business_key(message, "import"))["status"] == "DONE"


def test_transient_failure_is_retried_then_succeeds(runtime):
    runtime.publisher.fail_first = 1
    message = _start_message(run_id="acme-20260115-retry", prefix=None)
    event = _pubsub_event(message, event_id="retry-1")
    assert _post(_client("import_files"), event).status_code == 500
    assert runtime.ledger.get(event_key := "event:" + event["source"] + "/retry-1")["status"] == "RETRY"
    assert _post(_client("import_files"), event, binary=True).status_code == 200
    assert runtime.ledger.get(event_key)["status"] == "DONE"
    assert runtime.publisher.topics() == ["forecast"]


def test_a_step_that_keeps_failing_is_given_up_not_retried_forever(runtime, log_lines):
    runtime.publisher.fail_first = 100
    message = _start_message(run_id="acme-20260115-doomed", prefix=None)
    event = _pubsub_event(message, event_id="doomed")
    codes = [_post(_client("import_files"), event).status_code for _ in range(3)]
    assert codes == [500, 500, 200]  # max_attempts=3: the third delivery gives up and is acknowledged
    assert log_lines()[-1]["outcome"] == "rejected" and "gave up after 3 attempts" in log_lines()[-1]["reason"]
    assert _runs(runtime, message["run_id"]).status.tolist() == ["FAILED"]


# --- bad input --------------------------------------------------------------------------------------

def test_malformed_cloudevent_gets_400(runtime):
    response = _client("forecast").post("/", headers={"Content-Type": "application/cloudevents+json"},
                                        data=b'{"specversion": "1.0", "type": "x"}')
    assert response.status_code == 400


@pytest.mark.parametrize("target, body, reason", [
    ("forecast", b"{}", "message.data"),
    ("forecast", json.dumps({"schema_version": 9, "kind": "forecast"}).encode(), "unsupported schema_version 9"),
    ("forecast", json.dumps({"schema_version": 1, "kind": "forecast", "chain_id": "acme", "run_id": ["x"],
                             "created_at": "2026-01-01T00:00:00Z"}).encode(), "invalid message field run_id"),
    ("plan", None, "unknown run nope"),
    ("forecast", None, "unknown run nope"),
])
def test_bad_messages_are_acknowledged_with_a_reason(runtime, log_lines, target, body, reason):
    if body is None:
        data = messages.pubsub_event_data(messages.make_message(target, chain_id="acme", run_id="nope"), "m",
                                          datetime.now(timezone.utc), "s")
    elif body == b"{}":
        data = {"message": {"attributes": {}}}
    else:
        data = {"message": {"data": base64.b64encode(body).decode()}}
    event = CloudEvent({"id": "bad-1", "source": "s", "type": messages.PUBSUB_EVENT_TYPE}, data)
    assert _post(_client(target), event).status_code == 200
    rejected = [line for line in log_lines() if line.get("outcome") == "rejected"]
    assert rejected and reason in rejected[-1]["reason"] and rejected[-1]["severity"] == "ERROR"
    assert runtime.publisher.sent == []


def test_old_and_oversized_events_are_dropped(runtime, log_lines):
    old = _pubsub_event(_start_message(run_id="acme-old"), event_id="old",
                        time=datetime.now(timezone.utc) - timedelta(hours=2))
    assert _post(_client("import_files"), old).status_code == 200
    assert [l["outcome"] for l in log_lines() if l.get("step") == "import"] == ["dropped"]
    big = _start_message(run_id="acme-big", prefix=None, overrides={"seed": 1})
    event = _pubsub_event(big, event_id="big")
    headers, body = to_structured(event)
    padded = body[:-1] + b', "padding": "' + b"x" * 300_000 + b'"}'
    assert _client("import_files").post("/", headers=headers, data=padded).status_code == 200
    assert "exceeds" in log_lines()[-1]["reason"]
    assert runtime.publisher.sent == [] and len(_runs(runtime, "acme-old")) == 0


def _marker_event(runtime, event_id: str, generation: str = "1") -> CloudEvent:
    return CloudEvent({"id": event_id, "source": "//storage.googleapis.com/projects/_/buckets/raw",
                       "type": messages.STORAGE_FINALIZED_TYPE, "time": datetime.now(timezone.utc).isoformat()},
                      {"bucket": runtime.raw_store.name, "name": f"{DROP}/_READY", "generation": generation,
                       "size": "0"})


def test_bad_rows_are_quarantined_and_the_run_goes_on(runtime):
    inventory = runtime.raw_store.root / DROP / "inventory.csv"
    lines = inventory.read_text().splitlines()
    header = lines[0].split(",")
    broken = lines[1].split(",")
    broken[header.index("on_hand")] = "minus-three"
    inventory.write_text("\n".join([lines[0], ",".join(broken), *lines[2:]]) + "\n")
    assert _post(_client("import_files"), _marker_event(runtime, "gcs-rows")).status_code == 200
    (topic, message), = runtime.publisher.sent
    assert topic == "forecast"
    assert _runs(runtime, message["run_id"]).status.tolist() == ["RUNNING"]
    quarantine = runtime.warehouse.query(
        "SELECT source_file, row_number FROM `{dataset}.quarantine` WHERE run_id = @r", {"r": message["run_id"]})
    assert ("inventory.csv", 1) in set(zip(quarantine.source_file, quarantine.row_number))


def test_bad_file_in_bucket_stays_with_its_reason(runtime, log_lines):
    drop = runtime.raw_store.root / DROP
    (drop / "stores.csv").write_text("this,is,not\nthe,stores,file\n")
    assert _post(_client("import_files"), _marker_event(runtime, "gcs-1")).status_code == 200
    assert (drop / "stores.csv").exists()
    note = json.loads((drop / "stores.csv.rejected.json").read_text())
    assert "stores" in note["retailopt-rejected"]
    rejected = [line for line in log_lines() if line.get("outcome") == "rejected"]
    assert rejected and "stores.csv" in rejected[-1]["reason"]
    runs = runtime.warehouse.query("SELECT status, error FROM `{dataset}.runs`")
    assert runs.status.tolist() == ["FAILED"] and "stores.csv" in runs.error.iloc[0]
    why = runtime.warehouse.query("SELECT source_file, row_number, reason FROM `{dataset}.quarantine`")
    assert "stores.csv" in why.source_file.tolist()
    assert why[why.source_file == "stores.csv"].row_number.isna().all()
    assert "missing columns" in " ".join(why.reason)
    assert runtime.publisher.sent == []
    # The redelivered event is a duplicate, not a new attempt.
    assert _post(_client("import_files"), _marker_event(runtime, "gcs-1")).status_code == 200
    assert log_lines()[-1]["outcome"] == "duplicate"


def test_data_file_without_marker_is_ignored(runtime, log_lines):
    event = CloudEvent({"id": "gcs-2", "source": "//storage.googleapis.com/projects/_/buckets/raw",
                        "type": messages.STORAGE_FINALIZED_TYPE}, {"bucket": runtime.raw_store.name,
                                                                   "name": f"{DROP}/sales.csv", "size": "10"})
    assert _post(_client("import_files"), event).status_code == 200
    assert log_lines()[-1]["outcome"] == "ignored" and runtime.publisher.sent == []


# --- authentication -------------------------------------------------------------------------------

def test_events_and_api_check_tokens_when_configured(runtime, tokens):
    runtime.verifier = tokens.verifier()
    event = _pubsub_event(_start_message(run_id="acme-auth", prefix=None), event_id="auth-1")
    assert _post(_client("import_files"), event).status_code == 401
    assert _post(_client("import_files"), event,
                 extra_headers=tokens.header(email="intruder@x.iam.gserviceaccount.com")).status_code == 403
    assert runtime.publisher.sent == []
    assert _post(_client("import_files"), event, extra_headers=tokens.header()).status_code == 200
    api = _api_client()
    assert api.get("/healthz").status_code == 200
    for headers, status in [({}, 401), ({"Authorization": "Bearer junk"}, 401),
                            (tokens.header(audience="https://elsewhere"), 401),
                            (tokens.header(email="intruder@x.iam.gserviceaccount.com"), 403)]:
        response = api.get("/runs/acme-auth", headers=headers)
        assert response.status_code == status
        assert response.json() in ({"error": "unauthenticated"}, {"error": "forbidden"})
    assert api.get("/runs/acme-auth", headers=tokens.header()).json()["status"] == "RUNNING"


def test_api_rejects_bad_requests(runtime):
    api = _api_client()
    cases = [
        (dict(json={"overrides": {"service_level": 1.5}}), 400, "service_level"),
        (dict(json={"overrides": {"dataset": "other"}}), 400, "overrides"),
        (dict(json={"run_date": "2026-13-45"}), 400, "run_date"),
        (dict(json={"horizon": 3}), 400, "horizon"),
        (dict(json={"overrides": {"fleet_vehicle_ids": "VAN 1"}}), 400, "fleet_vehicle_ids"),
        (dict(json={"overrides": {"fleet_max_vehicles": 0}}), 400, "fleet_max_vehicles"),
        (dict(content=b"{not json", headers={"Content-Type": "application/json"}), 400, "JSON"),
        (dict(content=b"x" * 300_000, headers={"Content-Type": "application/json"}), 413, "larger"),
        (dict(content=b'{"run_date": "2026-01-15"}', headers={"Content-Type": "text/plain"}), 415, "JSON"),
    ]
    for kwargs, status, fragment in cases:
        response = api.post("/runs", **kwargs)
        assert response.status_code == status, response.json()
        assert fragment in response.json()["error"]
    assert api.get("/runs/nope").status_code == 404
    assert api.get("/runs/bad%20id").status_code == 404
    assert api.delete("/runs").status_code == 405
    assert runtime.publisher.sent == []
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/runs/{run_id}/routes" in spec["paths"]


# --- the whole chain, locally ---------------------------------------------------------------------

def test_local_chain_runs_from_one_start_request(tmp_path, sample_files, tokens):
    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": CHAIN, "routing_time_limit_s": 2},
                             environ={})
    settled = threading.Event()
    chain = start_local(settings, raw_dir=_raw_dir(tmp_path, sample_files), artifacts_dir=tmp_path / "artifacts",
                        verifier=tokens.verifier(), backoff_s=0.05, on_idle=settled.set)
    try:
        api = chain.api_client()
        auth = tokens.header()
        body = {"run_date": "2026-01-15", "source_prefix": DROP, "overrides": {"service_level": 0.9}}
        started = api.post("/runs", json=body, headers=auth)
        assert started.status_code == 202, started.json()
        run_id = started.json()["run_id"]
        assert chain.wait_idle(240)
        assert settled.wait(10)  # the hook `serve` uses to collect garbage between runs
        assert chain.bus.dead_letters == []
        run = api.get(f"/runs/{run_id}", headers=auth).json()
        assert run["status"] == "COMPLETE", run
        orders = api.get(f"/runs/{run_id}/orders", headers=auth).json()
        routes = api.get(f"/runs/{run_id}/routes", headers=auth).json()
        transfers = api.get(f"/runs/{run_id}/transfers", headers=auth).json()
        assert orders["count"] == len(orders["rows"]) and transfers["run_id"] == run_id
        assert all("stops" in r for r in routes["rows"])
        topics = [t for t, _ in chain.bus.published]
        assert topics.count("import") == 1 and topics.count("forecast") == 1 and topics.count("plan") == 1
        assert topics.count("published") == 1 and topics.count("reorders") == 0  # orders go out on release
        assert list((tmp_path / "artifacts" / "runs" / run_id).iterdir())
        latest = api.get("/plans/latest", headers=auth).json()
        assert latest["run"]["run_id"] == run_id and len(latest["orders"]) == orders["count"]
        again = api.post("/runs", json=body, headers=auth)
        assert again.status_code == 200 and again.json() == {**started.json(), "status": "COMPLETE",
                                                                  "duplicate": True}
    finally:
        chain.close()


def test_the_same_request_after_a_crash_starts_a_new_attempt(tmp_path, sample_files):
    """A run left RUNNING by a dead process no longer answers "duplicate, RUNNING" for ever."""
    from retailopt import pipeline

    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": CHAIN, "routing_time_limit_s": 1},
                             environ={})
    chain = start_local(settings, raw_dir=_raw_dir(tmp_path, sample_files), artifacts_dir=tmp_path / "artifacts",
                        backoff_s=0.05)
    try:
        api = chain.api_client()
        body = {"run_date": "2026-01-15", "source_prefix": DROP}
        crashed = messages.run_id_for(CHAIN, date(2026, 1, 15), {}, None)
        wh = chain.runtime.warehouse
        pipeline.start_run(wh, settings, run_id=crashed, run_date=date(2026, 1, 15))
        wh.execute("UPDATE `{dataset}.runs` SET lease_until = @past WHERE run_id = @run_id",
                   {"past": datetime.now(timezone.utc) - timedelta(minutes=1), "run_id": crashed})
        started = api.post("/runs", json=body)
        assert started.status_code == 202, started.json()
        assert started.json()["run_id"] == f"{crashed}-r2" and started.json()["retry_of"] == crashed
        assert chain.wait_idle(240) and chain.bus.dead_letters == []
        assert pipeline.get_run(wh, crashed)["status"] == "FAILED"
        assert "lease expired" in pipeline.get_run(wh, crashed)["error"]
        assert pipeline.get_run(wh, f"{crashed}-r2")["status"] == "COMPLETE"
        again = api.post("/runs", json=body)
        assert again.status_code == 200 and again.json()["run_id"] == f"{crashed}-r2"
        # A full replacement of sales names its days, with files to import.
        for bad, fragment in (({"run_date": "2026-01-15", "replace_sales": {"first": "2026-01-01",
                                                                          "last": "2026-01-14"}}, "source_prefix"),
                              ({**body, "replace_sales": {"first": "2026-01-14", "last": "2026-01-01"}},
                               "before it starts")):
            answer = api.post("/runs", json=bad)
            assert answer.status_code == 400 and fragment in answer.json()["error"], answer.json()
    finally:
        chain.close()
