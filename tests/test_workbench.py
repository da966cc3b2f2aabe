"""The workbench served by the API app, on a real planned chain in DuckDB (pages, escaping,
roles, CSRF, decisions, release), and its decisions table on bqemulator."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pandas as pd
import pytest

from api_support import api_client
from services_support import TokenFactory
from workbench_support import copy_data, csrf_of, line_ids, planned_chain, published, workbench_runtime

from retailopt.services.runtime import set_runtime
from retailopt.workbench import decisions, store, views, web

PLANNER = "planner@example.com"
READER = "reader@example.com"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> tuple[Path, str]:
    return planned_chain(tmp_path_factory.mktemp("wb-chain"))


@pytest.fixture()
def local(chain, tmp_path):
    """Open local mode (no token check): the local user is a planner."""
    runtime = workbench_runtime(copy_data(chain[0], tmp_path / "data"))
    client = api_client()
    yield runtime, client, chain[1]
    client.close()
    set_runtime(None)
    runtime.warehouse.close()


def _rows(runtime, sql: str, **params) -> pd.DataFrame:
    return runtime.warehouse.query(sql, params)


def _decisions(runtime, run_id: str) -> pd.DataFrame:
    return _rows(runtime, "SELECT * FROM `{dataset}.plan_decisions` WHERE run_id = @run_id ORDER BY decision_id",
                 run_id=run_id)


# --- pages -------------------------------------------------------------------------------------

def test_every_page_answers_with_names_formatted_and_a_strict_policy(local):
    runtime, client, run_id = local
    stores = _rows(runtime, "SELECT store_id, name FROM `{dataset}.stores`")
    for path in ("/", "/docs", f"/ui/runs/{run_id}", f"/ui/runs/{run_id}/worklist", f"/ui/runs/{run_id}/transfers",
                 f"/ui/runs/{run_id}/orders?sort=-quantity", f"/ui/compare?a={run_id}&b={run_id}"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert "<script>" not in page.text and " style=" not in page.text  # no inline code the policy would block
    overview = client.get(f"/ui/runs/{run_id}").text
    kpis = runtime.warehouse.query("SELECT kpis FROM `{dataset}.runs` WHERE run_id = @r", {"r": run_id}).kpis[0]
    units = json.loads(kpis)["units_ordered"]
    assert f"{int(units):,} units" in overview  # thousands separators
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} C[SD]T", overview)  # the chain's time zone, to the minute
    transfers = client.get(f"/ui/runs/{run_id}/transfers").text
    assert any(name in transfers for name in stores.name)
    assert client.get("/static/workbench.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/ui/runs/no-such-run").status_code == 404


def test_a_store_named_like_a_script_renders_as_text(local):
    runtime, client, run_id = local
    sender = _rows(runtime, "SELECT from_store_id FROM `{dataset}.transfers` WHERE run_id = @r LIMIT 1",
                   r=run_id).from_store_id[0]
    runtime.warehouse.execute("UPDATE `{dataset}.stores` SET name = @name WHERE store_id = @id",
                              {"name": "<script>alert(1)</script>", "id": sender})
    for path in (f"/ui/runs/{run_id}/transfers", f"/ui/runs/{run_id}/worklist?store={sender}"):
        html = client.get(path).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert(1)</script>" not in html


def test_the_worklist_explains_every_position_and_pages_on_the_server(local):
    runtime, client, run_id = local
    wh = runtime.warehouse
    at_risk = int(_rows(runtime, "SELECT COUNT(*) AS n FROM `{dataset}.inventory_policy` WHERE run_id = @r "
                                 "AND status_after_plan IN ('STOCKOUT_RISK', 'OVERSTOCK')", r=run_id).n[0])
    first = views.worklist(wh, run_id, store_id=None, category=None, reason=None, page=1, size=10)
    assert first.total >= at_risk > 10 and len(first.rows) == 10
    values = [r["value_at_risk"] for r in first.rows]
    assert values == sorted(values, reverse=True)
    second = views.worklist(wh, run_id, store_id=None, category=None, reason=None, page=2, size=10)
    assert not {(r["store_id"], r["product_id"]) for r in first.rows} & {
        (r["store_id"], r["product_id"]) for r in second.rows}
    summary = views.worklist_summary(wh, run_id, store_id=None, category=None)
    assert sum(s["positions"] for s in summary) == first.total
    risky = [s for s in summary if s["status_after_plan"] == "STOCKOUT_RISK"]
    assert risky and all(s["reason_code"] != "UNEXPLAINED" for s in risky)
    code = risky[0]["reason_code"]
    only = views.worklist(wh, run_id, store_id=None, category=None, reason=code, page=1, size=500)
    assert only.total == sum(s["positions"] for s in summary if s["reason_code"] == code)
    assert all(r["reason_code"] == code and r["reason_text"] for r in only.rows)
    store = only.rows[0]["store_id"]
    by_store = views.worklist(wh, run_id, store_id=store, category=None, reason=None, page=1, size=500)
    assert by_store.total and all(r["store_id"] == store for r in by_store.rows)
    page = client.get(f"/ui/runs/{run_id}/worklist?reason={code}&page=1").text
    assert views.REASONS.get(code, code) in page


def test_what_if_form_goes_through_the_same_logic_as_post_runs(local):
    runtime, client, run_id = local
    token = csrf_of(client.get("/").text)
    bad = client.post("/ui/runs", data={"csrf_token": token, "run_date": "2026-01-15", "service_level": "2"})
    assert bad.status_code == 400 and "service_level" in bad.text
    assert runtime.publisher.sent == []
    ok = client.post("/ui/runs", data={"csrf_token": token, "run_date": "2026-01-15", "service_level": "0.98",
                                       "fleet_max_vehicles": "1"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/?done=started")
    [(topic, message)] = runtime.publisher.sent
    assert topic == "import" and message["overrides"] == {"service_level": 0.98, "fleet_max_vehicles": 1}


def test_compare_shows_kpi_deltas_and_the_lines_that_changed(local):
    runtime, client, run_id = local
    wh = runtime.warehouse
    # A second complete run: the same plan with one order line fewer and one transfer doubled.
    other = run_id + "-b"
    for table in ("transfers", "replenishment_orders"):
        frame = wh.query(f"SELECT * FROM `{{dataset}}.{table}` WHERE run_id = @r", {"r": run_id}).assign(run_id=other)
        if table == "transfers":
            frame.loc[frame.index[0], "quantity"] *= 2
        else:
            frame = frame.iloc[1:]
        wh.insert(table, frame)
    wh.execute("INSERT INTO `{dataset}.runs` SELECT * REPLACE (@other AS run_id) FROM `{dataset}.runs` "
               "WHERE run_id = @r", {"r": run_id, "other": other})
    html = client.get(f"/ui/compare?a={run_id}&b={other}").text  # the page writes the new run's lines first
    changed = views.changed_lines(wh, run_id, other, 1)
    assert changed.total == 2 and {r["kind"] for r in changed.rows} == {"TRANSFER", "ORDER"}
    assert "Lines that changed: 2" in html and "Positions at risk after the plan" in html


# --- roles and CSRF --------------------------------------------------------------------------

@pytest.fixture()
def signed(chain, tmp_path):
    tokens = TokenFactory()
    runtime = workbench_runtime(copy_data(chain[0], tmp_path / "data"), planners=(PLANNER,),
                                verifier=tokens.verifier((PLANNER, READER)), allowed=(PLANNER, READER))
    client = api_client()
    yield runtime, client, chain[1], tokens
    client.close()
    set_runtime(None)
    runtime.warehouse.close()


def test_every_page_needs_the_token_and_a_reader_cannot_approve(signed):
    runtime, client, run_id, tokens = signed
    assert client.get("/").status_code == 401
    assert client.get(f"/ui/runs/{run_id}/transfers").status_code == 401
    assert client.get("/static/workbench.css").status_code == 401
    reader = tokens.header(email=READER)
    page = client.get(f"/ui/runs/{run_id}/transfers", headers=reader)
    assert page.status_code == 200 and "read only" in page.text and 'name="approve"' not in page.text
    line = line_ids(page.text)[0]
    refused = client.post(f"/ui/runs/{run_id}/transfers", headers=reader,
                          data={"csrf_token": csrf_of(page.text), "approve": line})
    assert refused.status_code == 403 and "planner role" in refused.text
    body = {"decisions": [{"line_type": "TRANSFER", "line_id": line, "action": "APPROVE"}]}
    assert client.post(f"/runs/{run_id}/decisions", json=body, headers=reader).status_code == 403
    assert client.post(f"/runs/{run_id}/release", headers=reader).status_code == 403
    assert _decisions(runtime, run_id).empty
    made = client.post(f"/runs/{run_id}/decisions", json=body, headers=tokens.header(email=PLANNER))
    assert made.status_code == 201, made.text
    [row] = _decisions(runtime, run_id).to_dict("records")
    assert row["decided_by"] == PLANNER and row["action"] == "APPROVE"


def test_form_posts_need_the_token_of_this_identity_and_origin(signed):
    runtime, client, run_id, tokens = signed
    planner = tokens.header(email=PLANNER)
    page = client.get(f"/ui/runs/{run_id}/transfers", headers=planner)
    assert "SameSite=Strict" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
    line = line_ids(page.text)[0]
    url = f"/ui/runs/{run_id}/transfers"
    assert client.post(url, headers=planner, data={"approve": line}).status_code == 403
    reader_token = csrf_of(client.get(url, headers=tokens.header(email=READER)).text)
    assert client.post(url, headers=planner, data={"csrf_token": reader_token, "approve": line}).status_code == 403
    cross = {**planner, "Origin": "https://evil.example"}
    assert client.post(url, headers=cross, data={"csrf_token": csrf_of(page.text), "approve": line}).status_code == 403
    assert _decisions(runtime, run_id).empty
    done = client.post(url, headers=planner, data={"csrf_token": csrf_of(page.text), "approve": line},
                       follow_redirects=False)
    assert done.status_code == 303 and len(_decisions(runtime, run_id)) == 1


# --- decisions and release ------------------------------------------------------------------------

def test_decisions_are_validated_appended_and_reread(local):
    runtime, client, run_id = local
    wh = runtime.warehouse
    from retailopt.pipeline import get_run

    record = get_run(wh, run_id)
    transfer = views.lines(wh, "transfers", run_id, sort="-value")[0].rows[0]
    order = views.lines(wh, "orders", run_id, sort="-quantity")[0].rows[0]
    pack = int(order["case_pack"])
    with pytest.raises(decisions.DecisionError, match="negative"):
        decisions.decide(wh, record, "ann", [decisions.Request("TRANSFER", transfer["line_id"], "EDIT", -1)])
    with pytest.raises(decisions.DecisionError, match="more than the sender"):
        decisions.decide(wh, record, "ann", [decisions.Request("TRANSFER", transfer["line_id"], "EDIT", 10**6)])
    with pytest.raises(decisions.DecisionError, match="whole number of cases"):
        decisions.decide(wh, record, "ann", [decisions.Request("ORDER", order["line_id"], "EDIT", pack + 1)])
    with pytest.raises(decisions.DecisionError, match="give a reason"):
        decisions.decide(wh, record, "ann", [decisions.Request("ORDER", order["line_id"], "REJECT", reason=" ")])
    with pytest.raises(decisions.DecisionError, match="has no"):
        decisions.decide(wh, record, "ann", [decisions.Request("ORDER", "O-none", "APPROVE")])
    assert _decisions(runtime, run_id).empty  # nothing written by a refused batch
    smaller = transfer["quantity"] - 1
    decisions.decide(wh, record, "ann", [decisions.Request("TRANSFER", transfer["line_id"], "APPROVE")])
    decisions.decide(wh, record, "bob", [decisions.Request("TRANSFER", transfer["line_id"], "EDIT", smaller)])
    decisions.decide(wh, record, "bob", [decisions.Request("ORDER", order["line_id"], "EDIT", 2 * pack),
                                         decisions.Request("ORDER", order["line_id"], "REJECT", reason="no room")])
    again = views.line(wh, "transfers", run_id, transfer["line_id"])
    assert again["quantity"] == smaller and again["decision"] == "PENDING" and again["edited"]  # edited: approve again
    rejected = views.line(wh, "orders", run_id, order["line_id"])
    assert rejected["decision"] == "REJECTED" and rejected["reason"] == "no room" and rejected["quantity"] == 2 * pack
    rows = _decisions(runtime, run_id)
    assert list(rows.action) == ["APPROVE", "EDIT", "EDIT", "REJECT"]
    assert list(rows.decided_by) == ["ann", "bob", "bob", "bob"]
    first = rows.iloc[0]
    assert first.old_quantity == first.new_quantity == transfer["quantity"]  # the earlier row is untouched
    assert (rows.iloc[1].old_quantity, rows.iloc[1].new_quantity) == (transfer["quantity"], smaller)
    log = client.get(f"/runs/{run_id}/decisions").json()
    assert log["count"] == 4 and log["released"] is False and {r["decided_by"] for r in log["rows"]} == {"ann", "bob"}


def test_release_publishes_the_approved_lines_once(local):
    runtime, client, run_id = local
    wh = runtime.warehouse
    orders = views.lines(wh, "orders", run_id, sort="line")[0].rows[:3]
    transfers = views.lines(wh, "transfers", run_id, sort="line")[0].rows[:2]
    pack = int(orders[0]["case_pack"])
    body = {"decisions": [
        {"line_type": "ORDER", "line_id": orders[0]["line_id"], "action": "EDIT", "quantity": pack},
        {"line_type": "ORDER", "line_id": orders[0]["line_id"], "action": "APPROVE"},
        {"line_type": "ORDER", "line_id": orders[1]["line_id"], "action": "APPROVE"},
        {"line_type": "ORDER", "line_id": orders[2]["line_id"], "action": "REJECT", "reason": "closed"},
        {"line_type": "TRANSFER", "line_id": transfers[0]["line_id"], "action": "APPROVE"}]}
    assert client.post(f"/runs/{run_id}/decisions", json=body).status_code == 201
    released = client.post(f"/runs/{run_id}/release")
    assert released.status_code == 200, released.text
    assert released.json()["orders"] == 2 and released.json()["transfers"] == 1
    sent = published(runtime)
    assert sorted(m["kind"] for m in sent) == ["reorder", "reorder", "transfer"]
    by_id = {m["order"]["order_id"]: m["order"] for m in sent if m["kind"] == "reorder"}
    assert by_id[orders[0]["line_id"]]["quantity"] == pack and by_id[orders[0]["line_id"]]["cases"] == 1
    assert orders[2]["line_id"] not in by_id
    [transfer] = [m["transfer"] for m in sent if m["kind"] == "transfer"]
    assert transfer["transfer_id"] == transfers[0]["line_id"] and transfer["quantity"] == transfers[0]["quantity"]
    # The released lines with the quantities in force, committed once for routing and stock.
    committed = wh.query("SELECT line_type, line_id, quantity, released_by FROM `{dataset}.committed_lines` "
                         "WHERE run_id = @r", {"r": run_id})
    assert sorted(committed.line_id) == sorted([orders[0]["line_id"], orders[1]["line_id"], transfers[0]["line_id"]])
    assert dict(zip(committed.line_id, committed.quantity))[orders[0]["line_id"]] == pack
    again = client.post(f"/runs/{run_id}/release")
    assert again.status_code == 409 and "released" in again.json()["error"]
    late = client.post(f"/runs/{run_id}/decisions", json={"decisions": [
        {"line_type": "TRANSFER", "line_id": transfers[1]["line_id"], "action": "APPROVE"}]})
    assert late.status_code == 409
    assert len(published(runtime)) == 3
    assert "released" in client.get("/").text and "Released by" in client.get(f"/ui/runs/{run_id}/transfers").text
    # Decisions changed the loads: the approved lines, at their approved quantities, were packed and
    # routed again; every released unit is on a released route (the sample fleet carries them all).
    assert released.json()["routes"]["re_solved"] is True
    loads = _rows(runtime, "SELECT * FROM `{dataset}.released_loads` WHERE run_id = @r", r=run_id)
    per_line = loads.groupby("line_id").quantity.sum().to_dict()
    assert per_line == {orders[0]["line_id"]: pack, orders[1]["line_id"]: orders[1]["quantity"],
                        transfers[0]["line_id"]: transfers[0]["quantity"]}
    stops = _rows(runtime, "SELECT * FROM `{dataset}.released_route_stops` WHERE run_id = @r", r=run_id)
    # The run date's routes carry the loads due that day; DC orders arrive after their lead time and
    # are carried by the plan of their day.
    delivered = stops[stops.visit_type == "DELIVERY"].groupby("shipment_id").units.sum().to_dict()
    due = loads[pd.to_datetime(loads.expected_arrival).isna()
                | (pd.to_datetime(loads.expected_arrival) <= pd.to_datetime(loads.run_date))]
    assert delivered == due.groupby("shipment_id").quantity.sum().to_dict() and len(due) < len(loads)
    routes = _rows(runtime, "SELECT * FROM `{dataset}.released_routes` WHERE run_id = @r", r=run_id)
    assert released.json()["routes"]["vehicles"] == len(routes) > 0
    planned = _rows(runtime, "SELECT COUNT(*) AS n FROM `{dataset}.route_stops` WHERE run_id = @r", r=run_id).n[0]
    assert len(stops) < planned  # three lines travel, not the whole plan
    page = client.get(f"/ui/runs/{run_id}/routes").text
    assert "Released routes: 2 order lines and 1 transfer lines released; routes solved again" in page
    assert page.count("<circle ") == len(stops)
    assert client.get(f"/ui/runs/{run_id}/routes.json").json()["released"] is True


def test_a_plan_released_as_planned_keeps_its_routes(local):
    runtime, client, run_id = local
    wh = runtime.warehouse
    for kind, line_type in (("orders", "ORDER"), ("transfers", "TRANSFER")):
        ids = [line["line_id"] for line in views.all_lines(wh, kind, run_id)]
        for start in range(0, len(ids), decisions.MAX_BATCH):
            body = {"decisions": [{"line_type": line_type, "line_id": i, "action": "APPROVE"}
                                  for i in ids[start:start + decisions.MAX_BATCH]]}
            assert client.post(f"/runs/{run_id}/decisions", json=body).status_code == 201
    released = client.post(f"/runs/{run_id}/release").json()
    assert released["routes"]["re_solved"] is False
    columns = "route_id, vehicle_id, stop_sequence, shipment_id, units, arrival_time"
    planned = _rows(runtime, f"SELECT {columns} FROM `{{dataset}}.route_stops` WHERE run_id = @r ORDER BY 1, 3", r=run_id)
    kept = _rows(runtime, f"SELECT {columns} FROM `{{dataset}}.released_route_stops` WHERE run_id = @r ORDER BY 1, 3",
                 r=run_id)
    pd.testing.assert_frame_equal(planned, kept)
    loads = _rows(runtime, "SELECT line_type, SUM(quantity) AS units FROM `{dataset}.released_loads` "
                           "WHERE run_id = @r GROUP BY line_type", r=run_id).set_index("line_type").units
    plan = _rows(runtime, "SELECT (SELECT SUM(quantity) FROM `{dataset}.transfers` WHERE run_id = @r) AS t, "
                          "(SELECT SUM(quantity) FROM `{dataset}.replenishment_orders` WHERE run_id = @r) AS o", r=run_id)
    assert loads["TRANSFER"] == plan.t[0] and loads["ORDER"] == plan.o[0]


# --- BigQuery ----------------------------------------------------------------------------------

def test_decisions_and_release_on_bigquery(bqemu_client, chain, tmp_path):
    """The same decisions, re-reads and release state through the BigQuery adapter (bqemulator)."""
    from api_support import RecordingPublisher
    from retailopt import sqlfiles
    from retailopt.config import Settings
    from retailopt.pipeline import get_run
    from retailopt.services.runtime import Runtime
    from retailopt.services.settings import ServiceSettings
    from retailopt.services.storage import LocalStore
    from retailopt.warehouse.bigquery import BigQueryWarehouse
    from retailopt.warehouse.duck import DuckDBWarehouse

    source = DuckDBWarehouse(copy_data(chain[0], tmp_path / "duck") / "warehouse.duckdb", dataset="retailopt")
    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    wh.ensure_schema()
    run_id = chain[1]
    try:
        for table in ("stores", "products", "distribution_centers", "inventory", "inventory_policy",
                      "plan_exceptions", "transfers", "replenishment_orders", "routes", "route_stops", "forecasts",
                      "vehicles"):
            wh.insert(table, source.query(f"SELECT * FROM `{{dataset}}.{table}`"))
        run = source.query("SELECT * FROM `{dataset}.runs` WHERE run_id = @r", {"r": run_id}).iloc[0]
        wh.execute(sqlfiles.read_sql("queries/insert_run.sql"), {
            "run_id": run_id, "run_date": pd.Timestamp(run.run_date).date(),
            "started_at": pd.Timestamp(run.started_at).to_pydatetime(), "parameters": run.parameters})
        wh.execute(sqlfiles.read_sql("queries/finish_run.sql"), {
            "run_id": run_id, "status": "COMPLETE", "finished_at": pd.Timestamp(run.finished_at).to_pydatetime(),
            "timings": run.timings, "kpis": run.kpis, "error": None})
        source_lines = list(source.query("SELECT DISTINCT transfer_id FROM `{dataset}.transfers`").transfer_id)
    finally:
        source.close()
    figures = store.publish(wh, run_id)  # the publish step's SQL, on BigQuery
    assert figures["transfer_lines"] == len(source_lines) and figures["worklist_positions"] > 5
    record = get_run(wh, run_id)
    transfer = min((views.line(wh, "transfers", run_id, t) for t in source_lines), key=lambda t: t["line_id"])
    decisions.decide(wh, record, PLANNER, [decisions.Request("TRANSFER", transfer["line_id"], "EDIT",
                                                             transfer["quantity"] - 1),
                                           decisions.Request("TRANSFER", transfer["line_id"], "APPROVE")])
    again = views.line(wh, "transfers", run_id, transfer["line_id"])
    assert again["decision"] == "APPROVED" and again["quantity"] == transfer["quantity"] - 1
    runtime = Runtime(Settings(), ServiceSettings(), wh, RecordingPublisher(), LocalStore(tmp_path / "raw"),
                      LocalStore(tmp_path / "artifacts"))
    result = decisions.release(runtime, record, PLANNER)
    with pytest.raises(decisions.DecisionError, match="released"):
        decisions.release(runtime, record, PLANNER)
    assert [m["kind"] for t, m in runtime.publisher.sent if t == "reorders"] == ["transfer"]
    assert [m["run_id"] for t, m in runtime.publisher.sent if t == "dispatch"] == [run_id]
    committed = wh.query("SELECT line_id, quantity, expected_arrival FROM `{dataset}.committed_lines` "
                         "WHERE run_id = @r", {"r": run_id})
    assert list(committed.line_id) == [transfer["line_id"]] and int(committed.quantity[0]) == transfer["quantity"] - 1
    loads = wh.query("SELECT line_id, quantity, shipment_id FROM `{dataset}.released_loads` WHERE run_id = @r",
                     {"r": run_id})
    assert loads.line_id.tolist() == [transfer["line_id"]] and loads.quantity.tolist() == [transfer["quantity"] - 1]
    # Alone, this transfer is worth less than a truck's fixed cost: the solver leaves it off, and the
    # release says so rather than showing it on a route.
    stops = wh.query("SELECT shipment_id, units FROM `{dataset}.released_route_stops` WHERE run_id = @r "
                     "AND visit_type = 'DELIVERY'", {"r": run_id})
    assert result["routes"]["re_solved"] and result["routes"]["loads"] == 1
    assert result["routes"]["unrouted_loads"] == 1 - len(stops) and result["routes"]["vehicles"] == len(stops)
    reason = wh.query("SELECT reason FROM `{dataset}.plan_decisions` WHERE run_id = @r AND action = 'RELEASE'",
                      {"r": run_id}).reason[0]
    assert ("1 load on no route" in reason) == (len(stops) == 0)
    rows = wh.query("SELECT action, decided_by FROM `{dataset}.plan_decisions` WHERE run_id = @r ORDER BY decision_id",
                    {"r": run_id})
    assert list(rows.action) == ["EDIT", "APPROVE", "RELEASE"] and set(rows.decided_by) == {PLANNER}
    page = views.worklist(wh, run_id, store_id=None, category=None, reason=None, page=1, size=5)
    assert page.total > 5 and len(page.rows) == 5 and all(r["reason_code"] for r in page.rows)
    position = views.position(wh, record, transfer["to_store_id"], transfer["product_id"])
    assert position["figures"]["reorder_point"] is not None and len(position["forecast"]) > 0
    assert transfer["line_id"] in [t["line_id"] for t in position["lines"]["transfers"]]


# --- position drill-down -------------------------------------------------------------------------

def test_projected_stock_takes_arrivals_and_never_goes_below_zero():
    days = ["d0", "d1", "d2", "d3"]
    assert views.project(10, days, [4, 4, 4, 4], {}) == [10, 6, 2, 0]
    assert views.project(10, days, [4, 4, 4, 4], {"d2": 12}) == [10, 6, 14, 10]


def test_a_position_shows_its_policy_series_lines_and_projections(local):
    runtime, client, run_id = local
    wh = runtime.warehouse
    order = views.lines(wh, "orders", run_id, sort="-value", size=1)[0].rows[0]
    store_id, product_id = order["store_id"], order["product_id"]
    runtime.warehouse.execute("UPDATE `{dataset}.stores` SET name = @name WHERE store_id = @id",
                              {"name": "<script>alert(1)</script>", "id": store_id})
    page = client.get(f"/ui/runs/{run_id}/position", params={"store": store_id, "product": product_id})
    assert page.status_code == 200, page.text[:300]
    html = page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "<svg" in html and 'role="img"' in html and " style=" not in html and "<script>" not in html
    assert f'id="line-{order["line_id"]}"' in html  # the order that brings it stock
    found = views.position(wh, pipeline_run(wh, run_id), store_id, product_id)
    f = found["figures"]
    for label, value in (("Reorder point", f["reorder_point"]), ("Order-up-to level", f["order_up_to"]),
                         ("Safety stock", f["safety_stock"])):
        assert f'<th scope="row">{label}</th><td class="n">{value:,.1f}</td>' in html
    assert len(found["history"]) == views.HISTORY_DAYS and len(found["forecast"]) == len(found["days"]) > 0
    arrival = pd.Timestamp(order["expected_arrival"]).date()
    k = found["days"].index(arrival)
    # The order lifts the stock with the plan above the stock without it from its arrival on.
    assert found["with_plan"][k] - found["without_plan"][k] >= min(order["quantity"], 1)
    assert all(w >= wo for w, wo in zip(found["with_plan"], found["without_plan"])) or found["leaving"] > 0
    assert client.get(f"/ui/runs/{run_id}/position?store={store_id}").status_code == 400
    assert client.get(f"/ui/runs/{run_id}/position", params={"store": store_id, "product": "nope"}).status_code == 404
    worklist = client.get(f"/ui/runs/{run_id}/worklist").text
    assert f"/ui/runs/{run_id}/position?store=" in worklist  # every worklist row opens its position


def pipeline_run(wh, run_id):
    from retailopt.pipeline import get_run

    return get_run(wh, run_id)


# --- routes ----------------------------------------------------------------------------------------

def test_the_routes_page_maps_a_page_of_routes_and_their_timeline(local, monkeypatch):
    runtime, client, run_id = local
    wh = runtime.warehouse
    stop = wh.query("SELECT location_id FROM `{dataset}.route_stops` WHERE run_id = @r AND visit_type = 'DELIVERY' "
                    "ORDER BY route_id, stop_sequence LIMIT 1", {"r": run_id}).location_id[0]
    wh.execute("UPDATE `{dataset}.stores` SET name = @name WHERE store_id = @id",
               {"name": "<script>alert(1)</script>", "id": stop})
    monkeypatch.delenv("RETAILOPT_TILE_URL", raising=False)
    page = client.get(f"/ui/runs/{run_id}/routes")
    assert page.status_code == 200, page.text[:300]
    html = page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html and " style=" not in html
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in csp and "script-src 'self';" in csp
    assert '<script src="/static/leaflet.js" defer></script>' in html and 'class="chart timeline"' in html
    routes = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.routes` WHERE run_id = @r", {"r": run_id}).n[0]
    assert html.count("<circle ") == wh.query("SELECT COUNT(*) AS n FROM `{dataset}.route_stops` WHERE run_id = @r",
                                              {"r": run_id}).n[0] and routes > 0
    # Every delivery to a store shows that store's receiving window on hover.
    assert re.search(r"<title>&lt;script&gt;alert\(1\)&lt;/script&gt;: \S+ delivers [\d,]+ units at \d\d:\d\d C[SD]T, "
                     r"receiving \d\d:\d\d–\d\d:\d\d</title>", html)
    data = client.get(f"/ui/runs/{run_id}/routes.json").json()
    assert len(data["routes"]) == routes and data["tiles"]["url"].startswith("https://tile.openstreetmap.org/")
    stops = [s for r in data["routes"] for s in r["stops"]]
    assert {"<script>alert(1)</script>"} <= {s["place"] for s in stops}  # data: the page's script sets it as text
    assert all(re.fullmatch(r"\d\d:\d\d C[SD]T", s["arrival"]) and s["units"] >= 0 for s in stops)
    assert client.get("/static/leaflet.js").status_code == 200 and client.get("/static/routes.js").status_code == 200
    # No basemap configured: the strict policy, and the map on its plain background.
    monkeypatch.setenv("RETAILOPT_TILE_URL", "")
    plain = client.get(f"/ui/runs/{run_id}/routes")
    assert "img-src 'self' data:;" in plain.headers["content-security-policy"]
    assert client.get(f"/ui/runs/{run_id}/routes.json").json()["tiles"] is None
    assert client.get(f"/ui/runs/{run_id}").headers["content-security-policy"] == web.CSP


def test_only_an_https_tile_server_with_a_tile_pattern_is_used():
    assert web.tile_server({})["origin"] == "https://tile.openstreetmap.org"
    assert web.tile_server({"RETAILOPT_TILE_URL": ""}) is None
    for bad in ("http://tiles.example/{z}/{x}/{y}.png", "https://tiles.example/{z}/{x}.png",
                "https://tiles.example/{z}/{x}/{y}.png?key=a'b", "javascript:alert(1)//{z}/{x}/{y}",
                "https://tiles.example;img-src */{z}/{x}/{y}.png"):
        assert web.tile_server({"RETAILOPT_TILE_URL": bad}) is None, bad
    mine = web.tile_server({"RETAILOPT_TILE_URL": "https://maps.example:8443/t/{z}/{x}/{y}.png",
                            "RETAILOPT_TILE_ATTRIBUTION": "© Example"})
    assert mine == {"url": "https://maps.example:8443/t/{z}/{x}/{y}.png", "origin": "https://maps.example:8443",
                    "attribution": "© Example", "probe": "https://maps.example:8443/t/0/0/0.png"}
