"""Dispatch through the Fleet Engine client, stock in transit and every unit accounted for.

The client is the library's own `DeliveryServiceClient`; only its transport is the warehouse-backed
stand-in (retailopt.dispatch.local_fleet), so the requests are built and routed as for Fleet Engine.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest
from google.api_core import exceptions
from google.maps import fleetengine_delivery_v1 as fe

from retailopt import pipeline
from retailopt.dispatch import fleet, ledger
from retailopt.dispatch.local_fleet import local_client
from retailopt.warehouse import open_warehouse
from workbench_support import PLAN_SETTINGS, copy_data, planned_chain

PARENT = fleet.provider(None)
NOW = datetime(2026, 1, 15, 18, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return planned_chain(tmp_path_factory.mktemp("dispatch-chain"))


@pytest.fixture()
def released(chain, tmp_path):
    """The planned chain released as planned, in a warehouse of the test's own."""
    from retailopt.config import load_settings

    data = copy_data(chain[0], tmp_path / "data")
    settings = load_settings({"data_dir": data, **PLAN_SETTINGS}, environ={})
    wh = open_warehouse(settings)
    wh.ensure_schema()
    run = pipeline.get_run(wh, chain[1])
    assert ledger.commit_as_planned(wh, run, released_by="planner@example.com", released_at=NOW) > 0
    yield settings, wh, run
    wh.close()


def _stand_in_rows(wh) -> pd.DataFrame:
    return wh.query("SELECT name, kind FROM `{dataset}.fleet_engine_local` ORDER BY name")


def test_a_released_run_becomes_vehicles_and_tasks_once(released):
    settings, wh, run = released
    client = local_client(wh)
    done = fleet.dispatch_run(wh, client, run, parent=PARENT, visit_minutes=settings.visit_minutes)
    stops = wh.query("SELECT * FROM `{dataset}.route_stops` WHERE run_id = @r", {"r": run["run_id"]})
    routes = wh.query("SELECT vehicle_id FROM `{dataset}.routes` WHERE run_id = @r", {"r": run["run_id"]})
    assert done.tasks == len(stops) > 0 and done.created == done.tasks and not done.already
    assert done.vehicles == routes.vehicle_id.nunique()
    # One vehicle per truck, and each stop a task with an id derived from run, route and stop.
    rows = _stand_in_rows(wh)
    assert sorted(rows[rows.kind == "DeliveryVehicle"].name) == sorted(
        f"{PARENT}/deliveryVehicles/{v}" for v in routes.vehicle_id.unique())
    expected = {fleet.task_id(run["run_id"], r, s) for r, s in zip(stops.route_id, stops.stop_sequence)}
    assert {n.rsplit("/", 1)[1] for n in rows[rows.kind == "Task"].name} == expected
    first = stops.sort_values(["route_id", "stop_sequence"]).iloc[0]
    task = client.get_task(name=f"{PARENT}/tasks/{fleet.task_id(run['run_id'], first.route_id, first.stop_sequence)}")
    assert task.state == fe.Task.State.OPEN and task.delivery_vehicle_id == first.vehicle_id
    assert task.type_ in (fe.Task.Type.PICKUP, fe.Task.Type.SCHEDULED_STOP)
    assert task.planned_location.point.latitude == pytest.approx(first.latitude)
    assert task.target_time_window.start_time == pd.Timestamp(first.arrival_time).to_pydatetime()
    vehicle = client.get_delivery_vehicle(name=f"{PARENT}/deliveryVehicles/{first.vehicle_id}")
    assert [t.task_id for s in vehicle.remaining_vehicle_journey_segments for t in s.stop.tasks][0] == \
        fleet.task_id(run["run_id"], first.route_id, first.stop_sequence)
    # The ledger: every released unit a delivery task carries, once.
    tasks = wh.query("SELECT * FROM `{dataset}.dispatch_tasks` WHERE run_id = @r", {"r": run["run_id"]})
    deliveries = tasks[tasks.task_type == "DELIVERY"]
    committed = wh.query("SELECT line_id, quantity FROM `{dataset}.committed_lines` WHERE run_id = @r "
                         "AND expected_arrival <= @d", {"r": run["run_id"], "d": run["run_date"]})
    assert deliveries.groupby("line_id").quantity.sum().to_dict() == dict(zip(committed.line_id, committed.quantity))
    # A redelivered release event: nothing is created twice.
    again = fleet.dispatch_run(wh, client, run, parent=PARENT)
    assert again.already and again.created == 0 and again.tasks == done.tasks
    assert len(_stand_in_rows(wh)) == len(rows)
    # One that got half way (tasks created, ledger not written) finds its tasks and writes the ledger.
    wh.execute("DELETE FROM `{dataset}.dispatch_tasks` WHERE run_id = @r", {"r": run["run_id"]})
    half = fleet.dispatch_run(wh, client, run, parent=PARENT)
    assert half.created == 0 and half.tasks == done.tasks and len(_stand_in_rows(wh)) == len(rows)


def test_a_plan_not_released_is_not_dispatched(chain, tmp_path):
    from retailopt.config import load_settings

    settings = load_settings({"data_dir": copy_data(chain[0], tmp_path / "d"), **PLAN_SETTINGS}, environ={})
    wh = open_warehouse(settings)
    try:
        with pytest.raises(fleet.DispatchError, match="not released"):
            fleet.dispatch_run(wh, local_client(wh), pipeline.get_run(wh, chain[1]), parent=PARENT)
        assert _stand_in_rows(wh).empty
    finally:
        wh.close()


def test_the_stand_in_answers_as_fleet_engine_does(released):
    _, wh, _ = released
    client = local_client(wh)
    client.create_delivery_vehicle(parent=PARENT, delivery_vehicle_id="V9", delivery_vehicle=fe.DeliveryVehicle())
    with pytest.raises(exceptions.AlreadyExists):
        client.create_delivery_vehicle(parent=PARENT, delivery_vehicle_id="V9", delivery_vehicle=fe.DeliveryVehicle())
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=f"{PARENT}/tasks/nope")
    with pytest.raises(exceptions.InvalidArgument):
        client.create_task(parent=PARENT, task_id="a/b", task=fe.Task(type_=fe.Task.Type.DELIVERY))


def _close_three(wh, client, run):
    """Deliver the first delivery task in full, fail the second, deliver part of the third."""
    tasks = [t for t in fleet.tasks_of(wh, run["run_id"]) if t["task_type"] == "DELIVERY"]
    assert len(tasks) >= 3, "the chain's plan needs three deliveries"
    full, failed, part = tasks[0], tasks[1], next(t for t in tasks[2:] if t["units"] > 1)
    fleet.close_task(wh, client, parent=PARENT, task=full["task_id"], outcome="DELIVERED", identity="d@x", now=NOW)
    fleet.close_task(wh, client, parent=PARENT, task=failed["task_id"], outcome="FAILED", identity="d@x",
                     note="store closed", now=NOW)
    fleet.close_task(wh, client, parent=PARENT, task=part["task_id"], outcome="PARTIAL", units=1,
                     identity="d@x", note="one case damaged", now=NOW)
    return full, failed, part


def test_drivers_outcomes_close_the_tasks_in_fleet_engine_and_the_ledger(released):
    settings, wh, run = released
    client = local_client(wh)
    fleet.dispatch_run(wh, client, run, parent=PARENT)
    full, failed, part = _close_three(wh, client, run)
    got = client.get_task(name=f"{PARENT}/tasks/{failed['task_id']}")
    assert got.state == fe.Task.State.CLOSED and got.task_outcome == fe.Task.TaskOutcome.FAILED
    assert client.get_task(name=f"{PARENT}/tasks/{part['task_id']}").task_outcome == fe.Task.TaskOutcome.SUCCEEDED
    after = {t["task_id"]: t for t in fleet.tasks_of(wh, run["run_id"])}
    assert after[full["task_id"]]["units_delivered"] == full["units"]
    assert after[failed["task_id"]]["units_delivered"] == 0 and after[failed["task_id"]]["note"] == "store closed"
    assert after[part["task_id"]]["units_delivered"] == 1
    with pytest.raises(fleet.DispatchError, match="closed already"):
        fleet.close_task(wh, client, parent=PARENT, task=full["task_id"], outcome="FAILED", identity="d@x",
                         note="late", now=NOW)
    open_task = next(t for t in after.values() if t["state"] == "OPEN" and t["units"] > 0)
    for kwargs, message in (({"outcome": "LOST"}, "expected DELIVERED"),
                            ({"outcome": "PARTIAL", "units": open_task["units"], "note": "x"}, "fewer than"),
                            ({"outcome": "PARTIAL", "units": 1}, "say why"),
                            ({"outcome": "FAILED"}, "say why")):
        with pytest.raises(fleet.DispatchError, match=message):
            fleet.close_task(wh, client, parent=PARENT, task=open_task["task_id"], identity="d@x", now=NOW, **kwargs)
    with pytest.raises(fleet.DispatchError, match="no dispatched task"):
        fleet.close_task(wh, client, parent=PARENT, task="t000-unknown", outcome="DELIVERED", identity="d@x")


def test_two_days_with_a_failed_delivery_account_for_every_unit(released):
    """Day 1 is released, dispatched and driven (one delivery in full, one failed, one in part);
    day 2 plans from the snapshot plus what happened: nothing lost, nothing counted twice."""
    settings, wh, run = released
    client = local_client(wh)
    fleet.dispatch_run(wh, client, run, parent=PARENT)
    full, failed, part = _close_three(wh, client, run)
    snapshot = pipeline.read_table(wh, "inventory").set_index(["store_id", "product_id"])
    committed = wh.query("SELECT * FROM `{dataset}.committed_lines` WHERE run_id = @r", {"r": run["run_id"]})
    tasks = wh.query("SELECT * FROM `{dataset}.dispatch_tasks` WHERE run_id = @r AND task_type = 'DELIVERY'",
                     {"r": run["run_id"]})
    # Every released unit is delivered, back at its sender, or still on its way (on order / in transit).
    delivered = int(tasks.units_delivered.fillna(0).sum())
    returned = int((tasks.quantity - tasks.units_delivered).where(tasks.state == "CLOSED", 0).sum())
    open_units = int(committed.quantity.sum()) - int(tasks.loc[tasks.state == "CLOSED", "quantity"].sum())
    assert delivered + returned + open_units == int(committed.quantity.sum())
    assert returned == failed["units"] + part["units"] - 1 > 0

    day2 = pipeline.run_planning(settings.replace(run_date=date(2026, 1, 16)))
    policy = pipeline.read_run_rows(wh, "inventory_policy", day2.run_id).set_index(["store_id", "product_id"])
    # Stock: each position is its snapshot plus what was delivered to it less what it sent and was
    # delivered; the failed and undelivered units are back at their sender.
    expect = snapshot.on_hand.copy()
    closed = tasks[tasks.state == "CLOSED"]
    for row in closed.itertuples():
        expect[(row.destination_id, row.product_id)] += int(row.units_delivered)
        if row.line_type == "TRANSFER":
            expect[(row.origin_id, row.product_id)] -= int(row.units_delivered)
    open_transfers = committed[(committed.line_type == "TRANSFER")
                               & ~committed.line_id.isin(closed.line_id)]
    for row in open_transfers.itertuples():  # released, not yet delivered: reserved at the sender
        expect[(row.origin_id, row.product_id)] -= int(row.quantity)
    assert policy.on_hand.sort_index().to_dict() == expect.clip(lower=None).sort_index().to_dict()
    # On order: the snapshot's plus every released unit not yet closed (day 1's orders arrive on day 3).
    on_order = snapshot.on_order.copy()
    for row in committed[~committed.line_id.isin(closed.line_id)].itertuples():
        on_order[(row.destination_id, row.product_id)] += int(row.quantity)
    assert policy.on_order.sort_index().to_dict() == on_order.sort_index().to_dict()
    # Chain-wide: transfers move units, they never make or lose any.
    assert int(policy.on_hand.sum()) == int(snapshot.on_hand.sum()) + int(
        closed.loc[closed.line_type == "ORDER", "units_delivered"].sum()) - int(open_transfers.quantity.sum())
    # The failed and the partial deliveries are exceptions of the day-2 plan, at their receivers.
    exceptions_ = pipeline.read_run_rows(wh, "plan_exceptions", day2.run_id)
    failed_rows = exceptions_[exceptions_.reason_code == "DELIVERY_FAILED"]
    short = closed[closed.units_delivered < closed.quantity]
    assert set(zip(failed_rows.store_id, failed_rows.product_id)) == set(zip(short.destination_id, short.product_id))
    assert failed_rows.reason.str.contains("store closed").any()
    # Nothing released is ordered or moved twice: the closed lines are not carried again, and
    # the day-2 plan carries none of day 1's lines (its orders are due on day 3).
    carried = pipeline.read_run_rows(wh, "carried_lines", day2.run_id)
    assert not set(carried.line_id) & set(tasks.line_id)


def _pubsub_event(message: dict, event_id: str):
    from cloudevents.http import CloudEvent
    from retailopt.services import messages

    now = datetime.now(timezone.utc)
    return CloudEvent({"id": event_id, "source": "//pubsub.googleapis.com/projects/p/topics/retailopt-dispatch",
                       "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                      messages.pubsub_event_data(message, event_id, now, "projects/p/subscriptions/s"))


def test_release_dispatches_and_drivers_record_outcomes_through_the_api(chain, tmp_path):
    import functions_framework
    from cloudevents.conversion import to_structured

    from api_support import api_client
    from retailopt.services.local import main_source
    from retailopt.services.runtime import set_runtime
    from retailopt.workbench import views
    from workbench_support import workbench_runtime

    data = copy_data(chain[0], tmp_path / "data")
    runtime = workbench_runtime(data)
    client = api_client()
    run_id = chain[1]
    try:
        transfers = views.all_lines(runtime.warehouse, "transfers", run_id)
        body = {"decisions": [{"line_type": "TRANSFER", "line_id": t["line_id"], "action": "APPROVE"}
                              for t in transfers]}
        assert client.post(f"/runs/{run_id}/decisions", json=body).status_code == 201
        released = client.post(f"/runs/{run_id}/release")
        assert released.status_code == 200, released.text
        assert released.json()["dispatch"] == "published"
        # The release event: one dispatch message, delivered (twice, as Pub/Sub may) to the
        # dispatch service as a real CloudEvent.
        [message] = [m for t, m in runtime.publisher.sent if t == "dispatch"]
        assert message["kind"] == "dispatch" and message["run_id"] == run_id
        service = functions_framework.create_app("dispatch", str(main_source())).test_client()
        for attempt in ("evt-1", "evt-2"):
            headers, body = to_structured(_pubsub_event(message, attempt))
            assert service.post("/", headers=headers, data=body).status_code == 200
        tasks_made = _stand_in_rows(runtime.warehouse)
        listed = client.get(f"/runs/{run_id}/tasks").json()
        assert listed["count"] == int((tasks_made.kind == "Task").sum()) > 0
        # Only approved lines travel: the orders were not approved (and arrive later anyway).
        assert {ln["line_type"] for t in listed["tasks"] for ln in t["lines"]} == {"TRANSFER"}
        delivery = next(t for t in listed["tasks"] if t["task_type"] == "DELIVERY" and t["units"] > 1)
        partial = client.post(f"/tasks/{delivery['task_id']}/outcome",
                              json={"outcome": "PARTIAL", "units": 1, "note": "one case damaged"})
        assert partial.status_code == 200, partial.text
        assert partial.json()["units_delivered"] == 1 and partial.json()["closed_by"]
        assert client.post(f"/tasks/{delivery['task_id']}/outcome", json={"outcome": "DELIVERED"}).status_code == 409
        other = next(t for t in listed["tasks"] if t["task_id"] != delivery["task_id"])
        assert client.post(f"/tasks/{other['task_id']}/outcome", json={"outcome": "LOST"}).status_code == 400
        assert client.post(f"/tasks/{other['task_id']}/outcome", json={"outcome": "FAILED"}).status_code == 400
        assert client.post("/tasks/t000-nope/outcome", json={"outcome": "DELIVERED"}).status_code == 404
        again = client.post(f"/runs/{run_id}/dispatch")
        assert again.status_code == 200 and again.json()["already"] and again.json()["created"] == 0
        assert len(_stand_in_rows(runtime.warehouse)) == len(tasks_made)
        task = runtime.fleet().get_task(name=f"{runtime.fleet_parent()}/tasks/{delivery['task_id']}")
        assert task.state == fe.Task.State.CLOSED and task.task_outcome == fe.Task.TaskOutcome.SUCCEEDED
        # The workbench's deliveries page: a driver fails a task with a reason through its form.
        from workbench_support import csrf_of

        page = client.get(f"/ui/runs/{run_id}/tasks")
        assert page.status_code == 200 and "one case damaged" in page.text and "1 of" in page.text
        target = next(t for t in listed["tasks"] if t["task_type"] == "DELIVERY" and t["task_id"] != delivery["task_id"])
        form = {"csrf_token": csrf_of(page.text), "task": target["task_id"], "outcome": "FAILED",
                "note": "<b>closed</b>"}
        posted = client.post(f"/ui/runs/{run_id}/tasks", data=form, follow_redirects=False)
        assert posted.status_code == 303, posted.text[:300]
        after = client.get(f"/ui/runs/{run_id}/tasks").text
        assert "&lt;b&gt;closed&lt;/b&gt;" in after and "<b>closed" not in after
        assert client.post(f"/ui/runs/{run_id}/tasks", data={**form, "csrf_token": "0" * 64}).status_code == 403
    finally:
        client.close()
        set_runtime(None)
        runtime.warehouse.close()
    # With a planner list set, the local user is neither planner nor driver.
    runtime = workbench_runtime(data, planners=("planner@example.com",))
    client = api_client()
    try:
        refused = client.post(f"/tasks/{other['task_id']}/outcome", json={"outcome": "DELIVERED"})
        assert refused.status_code == 403 and "driver" in refused.json()["error"]
        assert client.post(f"/runs/{run_id}/dispatch").status_code == 403
    finally:
        client.close()
        set_runtime(None)
        runtime.warehouse.close()


def test_serve_dispatches_a_release_through_its_event_bus(chain, tmp_path):
    """`serve`: the release's dispatch message goes over the in-process bus to the dispatch target."""
    from retailopt.config import load_settings
    from retailopt.services.local import start_local
    from retailopt.services.runtime import set_runtime
    from retailopt.workbench import views

    settings = load_settings({"data_dir": copy_data(chain[0], tmp_path / "data"), **PLAN_SETTINGS}, environ={})
    local = start_local(settings, backoff_s=0.05)
    try:
        api = local.api_client()
        run_id = chain[1]
        lines = views.all_lines(local.runtime.warehouse, "transfers", run_id)
        decided = api.post(f"/runs/{run_id}/decisions", json={"decisions": [
            {"line_type": "TRANSFER", "line_id": t["line_id"], "action": "APPROVE"} for t in lines]})
        assert decided.status_code == 201, decided.text
        assert api.post(f"/runs/{run_id}/release").status_code == 200
        assert local.wait_idle(120) and local.bus.dead_letters == []
        tasks = api.get(f"/runs/{run_id}/tasks").json()
        stops = local.runtime.warehouse.query("SELECT COUNT(*) AS n FROM `{dataset}.route_stops` WHERE run_id = @r",
                                              {"r": run_id})
        assert tasks["count"] == int(stops.n.iloc[0]) > 0
        assert sum(t["units"] for t in tasks["tasks"] if t["task_type"] == "DELIVERY") == sum(
            int(t["quantity"]) for t in lines)
    finally:
        local.close()
        set_runtime(None)


def test_without_a_review_step_the_plan_step_releases_the_plan_and_dispatch_follows(chain, tmp_path):
    """release_mode = auto (`serve` or the cloud): the plan step's message releases the complete
    plan as planned, its lines go out, and the dispatch service turns the routes into tasks."""
    from retailopt.config import load_settings
    from retailopt.services import messages
    from retailopt.services.local import start_local
    from retailopt.services.runtime import set_runtime
    from retailopt.workbench import views

    settings = load_settings({"data_dir": copy_data(chain[0], tmp_path / "data"), **PLAN_SETTINGS,
                              "release_mode": "auto"}, environ={})
    local = start_local(settings, backoff_s=0.05)
    sent: list[tuple[str, dict]] = []
    publish_many = local.runtime.publisher.publish_many
    local.runtime.publisher.publish_many = lambda topic, batch: sent.extend((topic, m) for m in batch) or publish_many(
        topic, batch)
    try:
        wh, run_id = local.runtime.warehouse, chain[1]
        run = pipeline.get_run(wh, run_id)
        assert views.released(wh, run_id) is None
        message = messages.make_message("plan", chain_id=settings.chain_id, run_id=run_id,
                                        run_date=pd.Timestamp(run["run_date"]).date())
        local.runtime.publisher.publish("plan", message)
        assert local.wait_idle(120) and local.bus.dead_letters == []
        release = views.released(wh, run_id)
        assert release is not None and release["decided_by"] == "auto-release"
        planned = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.committed_lines` WHERE run_id = @r", {"r": run_id})
        lines = [x for kind in ("orders", "transfers") for x in views.all_lines(wh, kind, run_id)
                 if int(x["quantity"]) > 0]
        assert int(planned.n.iloc[0]) == len(lines) > 0
        assert len([m for topic, m in sent if topic == "reorders"]) == len(lines)
        published = [m for topic, m in sent if topic == "published"]
        assert published and published[-1]["summary"]["release"] == "released as planned"
        tasks = local.api_client().get(f"/runs/{run_id}/tasks").json()
        assert tasks["count"] > 0
        # The same message again (a redelivery after the release) releases nothing twice.
        local.runtime.publisher.publish("plan", {**message, "created_at": datetime.now(timezone.utc).isoformat()})
        assert local.wait_idle(120)
        again = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.committed_lines` WHERE run_id = @r", {"r": run_id})
        assert int(again.n.iloc[0]) == len(lines)
    finally:
        local.close()
        set_runtime(None)


def test_without_a_review_step_serve_releases_and_dispatches_each_plan(chain, tmp_path):
    """release_mode "auto": the plan step of `serve` releases the plan as planned (every line,
    committed once) and its dispatch message sends the routes, with no planner's release; a
    redelivered plan message releases nothing again."""
    from retailopt.config import load_settings
    from retailopt.services import handlers
    from retailopt.services.local import start_local
    from retailopt.services.runtime import set_runtime

    data = copy_data(chain[0], tmp_path / "data")
    settings = load_settings({"data_dir": data, **PLAN_SETTINGS, "release_mode": "auto"}, environ={})
    local = start_local(settings, backoff_s=0.05)
    try:
        api = local.api_client()
        started = api.post("/runs", json={"run_date": "2026-01-15"})
        assert started.status_code in (200, 201, 202), started.text
        run_id = started.json()["run_id"]
        assert local.wait_idle(300) and local.bus.dead_letters == []
        wh = local.runtime.warehouse
        run = pipeline.get_run(wh, run_id)
        assert run["status"] == "COMPLETE"
        committed = wh.query("SELECT line_type, SUM(quantity) AS units FROM `{dataset}.committed_lines` "
                             "WHERE run_id = @r GROUP BY line_type", {"r": run_id}).set_index("line_type").units
        planned = {"TRANSFER": int(pipeline.read_run_rows(wh, "transfers", run_id).quantity.sum()),
                   "ORDER": int(pipeline.read_run_rows(wh, "replenishment_orders", run_id).quantity.sum())}
        assert {k: int(v) for k, v in committed.items()} == {k: v for k, v in planned.items() if v}
        tasks = api.get(f"/runs/{run_id}/tasks").json()
        stops = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.route_stops` WHERE run_id = @r", {"r": run_id})
        assert tasks["count"] == int(stops.n.iloc[0]) > 0
        decided = wh.query("SELECT decided_by FROM `{dataset}.plan_decisions` WHERE run_id = @r AND action = 'RELEASE'",
                           {"r": run_id})
        assert decided.decided_by.tolist() == ["auto-release"]
        # A plan step retried after its release (its message redelivered) releases nothing again.
        assert handlers._auto_release(local.runtime, run_id) == "released as planned"
        assert wh.query("SELECT COUNT(*) AS n FROM `{dataset}.plan_decisions` WHERE run_id = @r AND action = 'RELEASE'",
                        {"r": run_id}).n.iloc[0] == 1
    finally:
        local.close()
        set_runtime(None)
