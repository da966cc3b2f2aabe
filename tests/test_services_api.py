"""The HTTP API (retailopt.services.api) on a real DuckDB warehouse: hostile bodies, odd stored
rows, and which reads are answered from memory (on the event loop) rather than by a query."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from retailopt.services.api import Api, HttpCall
from retailopt.services.runtime import set_runtime
from api_support import api_client, duck_runtime, insert_run

JSON = {"Content-Type": "application/json"}


@pytest.fixture()
def runtime(tmp_path):
    rt = duck_runtime(tmp_path)
    set_runtime(rt)
    yield rt
    set_runtime(None)
    rt.warehouse.close()


class Clock:
    """A monotonic clock the test moves by hand, so delays are checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _get(path: str) -> HttpCall:
    return HttpCall("GET", path, {})


def _api(rt, **kwargs) -> Api:
    return Api(lambda: rt, runtime_peek=lambda: rt, **kwargs)


# --- hostile bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/runs", "/retrain"])
@pytest.mark.parametrize("body", [
    b"[" * 100_000,
    b'{"overrides": ' + b"[" * 50_000,
    b'{"overrides": {"service_level": ' + b"[" * 900 + b"]" * 900 + b"}}",
    b'{"request_key": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}",
])
def test_deeply_nested_json_body_is_400(runtime, path, body):
    response = api_client().post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "JSON" in response.json()["error"] or "nested" in response.json()["error"]
    assert runtime.publisher.sent == []


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_numbers_json_cannot_carry_are_400(runtime, literal):
    body = b'{"overrides": {"routing_time_limit_s": ' + literal + b"}}"
    response = api_client().post("/runs", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "number" in response.json()["error"]
    assert runtime.publisher.sent == []


# --- stored rows the API must still show ----------------------------------------------------------

NON_FINITE = '{"service_level": Infinity, "speed_kmh": NaN, "fleet": {"limits": [-Infinity, 2.5]}, "huge": 1e400}'


def test_run_whose_stored_settings_hold_infinity_or_nan_is_shown_with_nulls(runtime):
    insert_run(runtime, "acme-nonfinite-running", parameters=NON_FINITE)
    insert_run(runtime, "acme-nonfinite-done", parameters=NON_FINITE, status="COMPLETE", kpis='{"fill": NaN}')
    runtime.warehouse.insert("transfers", pd.DataFrame([{
        "run_id": "acme-nonfinite-done", "run_date": "2026-01-15", "transfer_id": "T1", "product_id": "P1",
        "from_store_id": "S1", "to_store_id": "S2", "quantity": 3, "value": float("inf"), "cost": float("-inf"),
        "distance_km": 1.0}]))
    client = api_client()
    for run_id in ("acme-nonfinite-running", "acme-nonfinite-done", "acme-nonfinite-done"):  # twice: cached
        response = client.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        assert response.json()["run_date"] == "2026-01-15"
        assert response.json()["parameters"] == {"service_level": None, "speed_kmh": None,
                                                 "fleet": {"limits": [None, 2.5]}, "huge": None}
    assert client.get("/runs/acme-nonfinite-done").json()["kpis"] == {"fill": None}
    transfers = client.get("/runs/acme-nonfinite-done/transfers")
    assert transfers.status_code == 200, transfers.text
    assert transfers.json()["rows"][0]["value"] is None and transfers.json()["rows"][0]["cost"] is None
    latest = client.get("/plans/latest")
    assert latest.status_code == 200, latest.text
    assert latest.json()["run"]["parameters"]["service_level"] is None


def test_stored_settings_that_are_not_json_are_shown_as_stored(runtime):
    insert_run(runtime, "acme-garbled", parameters="{not json")
    response = api_client().get("/runs/acme-garbled")
    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == "{not json"


# --- reads answered from memory -------------------------------------------------------------------

def test_unknown_run_ids_are_answered_from_memory(runtime):
    insert_run(runtime, "acme-known")
    api = _api(runtime)
    assert api.handle(_get("/runs/acme-unknown-0")).status == 404  # loads the index of runs
    for path in ("/runs/acme-unknown-1", "/runs/acme-unknown-2/orders", "/runs/acme-unknown-3/routes/"):
        reply = api.handle(_get(path), blocking=False)
        assert reply is not None and reply.status == 404, path
        assert json.loads(reply.body) == {"error": f"no run {path.split('/')[2]}"}
    # A known run that is still RUNNING needs the warehouse: not answered on the loop.
    assert api.handle(_get("/runs/acme-known"), blocking=False) is None
    assert api.handle(_get("/runs/acme-known")).status == 200


def test_a_new_run_is_visible_once_the_index_is_older_than_its_ttl(runtime):
    clock = Clock()
    api = _api(runtime, index_ttl_s=1.0, index_max_stale_s=5.0, clock=clock)
    assert api.handle(_get("/runs/acme-new")).status == 404
    insert_run(runtime, "acme-new")
    clock.now += 0.5
    # Within the TTL the index is trusted: the documented delay.
    assert api.handle(_get("/runs/acme-new")).status == 404
    clock.now += 0.6
    assert api.handle(_get("/runs/acme-new")).status == 200


def test_a_stale_index_is_served_on_the_loop_while_one_refresh_runs(runtime):
    clock = Clock()
    api = _api(runtime, index_ttl_s=1.0, index_max_stale_s=5.0, clock=clock)
    assert api.handle(_get("/runs/acme-late")).status == 404
    insert_run(runtime, "acme-late")
    clock.now += 2.0
    # Older than the TTL, younger than the limit: answered from the old index, refreshed behind.
    reply = api.handle(_get("/runs/acme-late"), blocking=False)
    assert reply is not None and reply.status == 404
    deadline = time.monotonic() + 10
    while api.handle(_get("/runs/acme-late"), blocking=False) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.handle(_get("/runs/acme-late"), blocking=False) is None  # known now: RUNNING, so a query
    # Too old to be trusted (an idle instance): the loop hands over, the thread refreshes first.
    clock.now += 6.0
    assert api.handle(_get("/runs/acme-other"), blocking=False) is None
    assert api.handle(_get("/runs/acme-other")).status == 404


def test_latest_plan_is_answered_from_memory_and_follows_new_complete_runs(runtime):
    clock = Clock()
    api = _api(runtime, index_ttl_s=1.0, index_max_stale_s=5.0, clock=clock)
    assert api.handle(_get("/plans/latest")).status == 404
    earlier = datetime.now(timezone.utc) - timedelta(hours=1)
    insert_run(runtime, "acme-first", status="COMPLETE", finished_at=earlier)
    insert_run(runtime, "acme-failed", status="FAILED")
    clock.now += 1.1
    assert json.loads(api.handle(_get("/plans/latest")).body)["run"]["run_id"] == "acme-first"
    reply = api.handle(_get("/plans/latest"), blocking=False)
    assert reply is not None and json.loads(reply.body)["run"]["run_id"] == "acme-first"
    insert_run(runtime, "acme-second", status="COMPLETE")
    clock.now += 1.1
    assert json.loads(api.handle(_get("/plans/latest")).body)["run"]["run_id"] == "acme-second"


def test_a_running_run_is_read_fresh_until_it_is_final(runtime):
    api = _api(runtime)
    insert_run(runtime, "acme-progress")
    assert json.loads(api.handle(_get("/runs/acme-progress")).body)["status"] == "RUNNING"
    assert api.handle(_get("/runs/acme-progress/orders")).status == 409
    runtime.warehouse.execute("UPDATE `{dataset}.runs` SET status = 'COMPLETE', finished_at = @t "
                              "WHERE run_id = @r", {"r": "acme-progress", "t": datetime.now(timezone.utc)})
    assert json.loads(api.handle(_get("/runs/acme-progress")).body)["status"] == "COMPLETE"
    assert api.handle(_get("/runs/acme-progress/orders")).status == 200
    reply = api.handle(_get("/runs/acme-progress"), blocking=False)  # final: kept in memory now
    assert reply is not None and json.loads(reply.body)["status"] == "COMPLETE"


def test_concurrent_cold_reads_share_one_warehouse_query(runtime):
    insert_run(runtime, "acme-shared", status="COMPLETE")
    queries: list[str] = []
    real_query = runtime.warehouse.query

    def counted(sql, params=None):
        queries.append(sql)
        time.sleep(0.3)  # long enough for every reader to arrive while the first one queries
        return real_query(sql, params)

    runtime.warehouse.query = counted
    api = _api(runtime)
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def read(path: str) -> None:
        barrier.wait()
        statuses.append(api.handle(_get(path)).status)

    threads = [threading.Thread(target=read, args=(p,)) for p in ["/runs/acme-shared"] * 4 + ["/runs/nope"] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 4 + [404] * 4
    # One index load and one read of the run's row, whatever the number of readers.
    assert len(queries) == 2, queries


def test_a_step_in_this_process_refreshes_the_index_at_once(runtime, monkeypatch):
    from cloudevents.conversion import to_structured
    from cloudevents.http import CloudEvent

    import functions_framework
    from retailopt.services import entrypoints, messages
    from retailopt.services.local import main_source

    clock = Clock()  # frozen: without the refresh the index would hide the new run
    api = _api(runtime, clock=clock)
    monkeypatch.setattr(entrypoints, "API", api)
    assert api.handle(_get("/runs/acme-20260115-step")).status == 404
    message = messages.make_message("start", chain_id="acme", run_id="acme-20260115-step", run_date="2026-01-15")
    now = datetime.now(timezone.utc)
    event = CloudEvent({"id": "step-1", "source": "//pubsub.googleapis.com/projects/p/topics/retailopt-import",
                        "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                       messages.pubsub_event_data(message, "step-1", now, "projects/p/subscriptions/s"))
    headers, body = to_structured(event)
    client = functions_framework.create_app("import_files", str(main_source())).test_client()
    assert client.post("/", headers=headers, data=body).status_code == 200
    assert len(runtime.warehouse.query("SELECT run_id FROM `{dataset}.runs`")) == 1
    assert api.handle(_get("/runs/acme-20260115-step")).status == 200
