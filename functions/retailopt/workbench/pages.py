"""The workbench's pages and form posts, and the JSON decision and release endpoints.

Each function takes the `Api` (its runtime, its cache of runs), the call and the verified caller
(None in open local mode) and returns a `Reply`. Reads go through `views`, writes through
`decisions`; a form post is checked for its CSRF token first, then for the planner role.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlencode

import pandas as pd

from retailopt.errors import StatusError
from retailopt.services.api import ApiError, HttpCall, Reply, json_reply, openapi, validate_body
from retailopt.services.logs import log
from retailopt.workbench import charts, decisions, store, views, web

HTML = "text/html; charset=utf-8"
# What-if fields of the runs page form: (form field, setting, kind).
WHAT_IF_FORM: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("service_level", "service_level", float),
    ("horizon_days", "horizon_days", int),
    ("review_period_days", "review_period_days", int),
    ("fleet_max_vehicles", "fleet_max_vehicles", int),
    ("fleet_vehicle_ids", "fleet_vehicle_ids", str),
    ("max_transfer_km", "max_transfer_km", float),
    ("min_transfer_value", "min_transfer_value", float),
)
DONE_MESSAGES = {
    "approved": "Approved {n} line(s).", "rejected": "Rejected {n} line(s).", "edited": "Changed the quantity of {n} line(s).",
    "released": "Released: the approved lines were published.", "started": "Run {run} requested.",
    "recorded": "Delivery outcome recorded.",
}


# --- plumbing --------------------------------------------------------------------------------

class _Context:
    def __init__(self, api: Any, call: HttpCall, caller: str | None) -> None:
        self.api = api
        self.call = call
        self.caller = caller
        self.runtime = api.runtime()
        self.wh = self.runtime.warehouse
        self.identity = web.identity_of(self.runtime, caller)
        self.planner = web.is_planner(self.runtime, caller)
        self.query = web.parse_query(call.query)
        self.nonce, self.new_nonce = web.csrf_nonce(call.headers)

    def tz(self, run: dict[str, Any] | None = None) -> str:
        params = (run or {}).get("parameters") or {}
        tz = params.get("timezone") if isinstance(params, dict) else None
        return str(tz or self.runtime.settings.timezone)

    def page(self, template: str, status: int = 200, run: dict[str, Any] | None = None, **context: Any) -> Reply:
        images = context.pop("csp_images", None)  # an origin the page may load images from (map tiles)
        tz = self.tz(run)
        done = self.query.get("done")
        message = DONE_MESSAGES[done].format(n=_int(self.query.get("n")), run=self.query.get("run", "")) \
            if done in DONE_MESSAGES else None
        body = web.render(template, identity=self.identity, planner=self.planner,
                          csrf=web.csrf_token(self.nonce, self.identity), run=run, tz=tz, message=message,
                          time=lambda v: web.fmt_time(v, tz), reasons=views.REASONS, query=self.query,
                          open_mode=self.runtime.verifier is None, **context)
        headers = web.security_headers(images)
        if self.new_nonce:
            headers = headers + (web.csrf_cookie_header(self.nonce, self.call.headers),)
        return Reply(status, body, HTML, headers)

    def error(self, status: int, message: str, run: dict[str, Any] | None = None) -> Reply:
        return self.page("error.html", status, run=run, code=status, error=message)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.api._run(run_id, True)

    def form(self) -> dict[str, list[str]]:
        limit = self.runtime.service.max_body_bytes
        if len(self.call.body) > limit:
            raise ApiError(413, f"form larger than {limit} bytes")
        return web.parse_form(self.call.body)

    def check_post(self, form: dict[str, list[str]], need_planner: bool = True) -> None:
        if not web.csrf_ok(self.call.headers, form, self.identity):
            log(logging.WARNING, "workbench form refused: CSRF check failed", step="workbench", path=self.call.path)
            raise ApiError(403, "the form has expired or did not come from this workbench: reload the page and try again")
        if need_planner and not self.planner:
            raise ApiError(403, f"{self.identity} may read the plan but not change or release it (planner role needed)")


def _int(raw: Any, default: int = 0) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


def _redirect(location: str) -> Reply:
    return Reply(303, b"", HTML, (("Location", location),) + web.SECURITY_HEADERS)


def _html(handler: Callable[..., Reply]) -> Callable[..., Reply]:
    def wrapped(api: Any, call: HttpCall, caller: str | None, **args: str) -> Reply:
        ctx = _Context(api, call, caller)
        try:
            return handler(ctx, **args)
        except ApiError as exc:
            return ctx.error(exc.status, exc.message)
        except decisions.DecisionError as exc:
            return ctx.error(exc.status, exc.message)
    wrapped.__name__ = handler.__name__
    return wrapped


def _filters(ctx: _Context) -> dict[str, str | None]:
    return {"store_id": ctx.query.get("store") or None, "category": ctx.query.get("category") or None}


# --- pages -----------------------------------------------------------------------------------

@_html
def runs(ctx: _Context) -> Reply:
    return _runs_page(ctx)


@_html
def docs(ctx: _Context) -> Reply:
    spec = openapi()
    endpoints = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            if isinstance(op, dict):
                endpoints.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                                  "description": op.get("description", ""),
                                  "responses": {k: v.get("description") or v.get("$ref", "").rsplit("/", 1)[-1]
                                                for k, v in op.get("responses", {}).items()}})
    return ctx.page("docs.html", spec=spec, endpoints=endpoints)


@_html
def start_run(ctx: _Context) -> Reply:
    form = ctx.form()
    ctx.check_post(form, need_planner=False)
    value = {k: (v[0].strip() if v else "") for k, v in form.items()}
    body: dict[str, Any] = {}
    try:
        if value.get("run_date"):
            body["run_date"] = value["run_date"]
        if value.get("source_prefix"):
            body["source_prefix"] = value["source_prefix"]
        if value.get("request_key"):
            body["request_key"] = value["request_key"]
        overrides = {}
        for field, setting, kind in WHAT_IF_FORM:
            if value.get(field):
                try:
                    overrides[setting] = kind(value[field])
                except ValueError as exc:
                    raise ApiError(400, f"invalid field {field}: {value[field][:40]!r} is not a number") from exc
        if overrides:
            body["overrides"] = overrides
        validate_body("StartRunRequest", body)
        reply = ctx.api.start_validated(ctx.call, body, ctx.caller)
    except ApiError as exc:
        return _runs_page(ctx, error=exc.message, status=exc.status)
    answer = json.loads(reply.body)
    if reply.status >= 400:
        return _runs_page(ctx, error=answer.get("error", "could not start the run"), status=reply.status)
    return _redirect("/?" + urlencode({"done": "started", "run": answer["run_id"]}))


def _runs_page(ctx: _Context, error: str | None = None, status: int = 200) -> Reply:
    page = views.page_number(ctx.query.get("page"))
    listing = views.runs(ctx.wh, page, ctx.runtime.settings.as_json())
    return ctx.page("runs.html", status, listing=listing, complete=views.run_ids(ctx.wh), error=error)


@_html
def compare(ctx: _Context) -> Reply:
    complete = views.run_ids(ctx.wh)
    a_id, b_id = ctx.query.get("a"), ctx.query.get("b")
    if not a_id or not b_id:
        return ctx.page("compare.html", complete=complete, a=None, b=None, kpis=[], changed=None, progress=None)
    a, b = ctx.run(a_id), ctx.run(b_id)
    for r in (a, b):
        if r.get("status") != "COMPLETE":
            raise ApiError(409, f"run {r['run_id']} is {r.get('status')}: only complete runs can be compared")
        _published(ctx, r)
    # Two complete runs never change: their comparison is worked out once, over a few requests
    # for a chain's millions of lines (the page shows how far it got and reloads itself).
    key = (f"{a_id}|{b_id}", "wb:compare")
    comparison = ctx.api._cached(key)
    if comparison is None:
        comparison = ctx.api._once(key, lambda: ctx.api._kept(key, views.Comparison(a_id, b_id)))
    changed, progress = None, None
    if comparison.advance(ctx.wh):
        changed = comparison.page(ctx.wh, views.page_number(ctx.query.get("page")))
    else:
        progress = comparison.progress
    return ctx.page("compare.html", complete=complete, a=a, b=b,
                    kpis=views.compare_kpis(a.get("kpis") or {}, b.get("kpis") or {}), changed=changed,
                    progress=progress,
                    overrides_a=views.overrides_of(a.get("parameters") or {}, ctx.runtime.settings.as_json()),
                    overrides_b=views.overrides_of(b.get("parameters") or {}, ctx.runtime.settings.as_json()))


def _complete(ctx: _Context, run_id: str) -> dict[str, Any]:
    run = ctx.run(run_id)
    if run.get("status") != "COMPLETE":
        raise ApiError(409, f"run {run_id} is {run.get('status')}: its plan is shown once it is COMPLETE")
    return run


def _published(ctx: _Context, run: dict[str, Any]) -> dict[str, Any]:
    """The run's workbench figures (plan_overview); kept in memory, as a complete run's are final."""
    key = (run["run_id"], "wb:overview")
    found = ctx.api._cached(key)
    if found is None:
        try:
            found = ctx.api._once(key, lambda: ctx.api._kept(key, views.overview(ctx.wh, run)))
        except store.NotPublished as exc:
            raise ApiError(409, str(exc)) from exc
    return found


@_html
def overview(ctx: _Context, run_id: str) -> Reply:
    run = ctx.run(run_id)
    if run.get("status") != "COMPLETE":
        return ctx.page("overview.html", run=run, figures={}, kpis=run.get("kpis") or {}, released=None,
                        counts={}, log=[])
    figures = _published(ctx, run)
    return ctx.page("overview.html", run=run, figures=figures, kpis=run.get("kpis") or {},
                    released=views.released(ctx.wh, run_id),
                    counts={k: views.decision_counts(ctx.wh, k, run_id, figures[f"{k[:-1]}_lines"])
                            for k in ("transfers", "orders")},
                    log=views.decisions_log(ctx.wh, run_id, 20))


def _summary(ctx: _Context, run_id: str, store_id: str | None, category: str | None) -> list[dict[str, Any]]:
    # A complete run's worklist never changes: its counts per filter are kept in memory.
    key = (run_id, f"wb:summary:{store_id or ''}:{category or ''}")
    found = ctx.api._cached(key)
    if found is None:
        found = ctx.api._once(key, lambda: ctx.api._kept(
            key, views.worklist_summary(ctx.wh, run_id, store_id=store_id, category=category)))
    return found


@_html
def worklist(ctx: _Context, run_id: str) -> Reply:
    run = _complete(ctx, run_id)
    _published(ctx, run)
    flt = _filters(ctx)
    reason = ctx.query.get("reason") or None
    reason = reason if reason in views.REASONS or (reason and reason.isupper() and len(reason) < 40) else None
    page = views.page_number(ctx.query.get("page"))
    summary = _summary(ctx, run_id, **flt)
    total = sum(int(s["positions"]) for s in summary if reason is None or s["reason_code"] == reason)
    listing = views.worklist(ctx.wh, run_id, reason=reason, page=page, total=total, **flt)
    return ctx.page("worklist.html", run=run, listing=listing, summary=summary, options=views.filters(ctx.wh),
                    selected={**flt, "reason": reason})


@_html
def position(ctx: _Context, run_id: str) -> Reply:
    run = _complete(ctx, run_id)
    _published(ctx, run)
    store_id, product_id = ctx.query.get("store"), ctx.query.get("product")
    if not store_id or not product_id:
        raise ApiError(400, "name the position: ?store=<store id>&product=<product id>")
    found = views.position(ctx.wh, run, store_id, product_id)
    if found is None:
        raise ApiError(404, f"run {run_id} has no position of store {store_id[:64]} and product {product_id[:64]}")
    return ctx.page("position.html", run=run, pos=found, chart=_position_chart(found))


def _position_chart(found: dict[str, Any]) -> Any:
    f = found["figures"]
    name = f"{f.get('product_name') or f['product_id']} at {f.get('store_name') or f['store_id']}"
    run_date = found["days"][0] if found["days"] else None
    chart = charts.Chart(
        title=f"Sales, forecast and projected stock of {name}",
        description=("Units sold each day over the last 13 weeks, the forecast of the daily demand with its "
                     "interval, and the stock expected at the start of each day with and without the plan, "
                     "against the reorder point, the order-up-to level and the safety stock; the numbers "
                     "are in the tables below."),
        lines=[charts.Line("units sold", found["history"], "#55606e", width=1.2),
               charts.Line("forecast", [(d, m) for d, m, _, _ in found["forecast"]], "#0b5cad"),
               charts.Line("stock without the plan", list(zip(found["days"], found["without_plan"])), "#a3261b",
                           dash="5 3", step=True),
               charts.Line("stock with the plan", list(zip(found["days"], found["with_plan"])), "#1c6b35",
                           width=2.2, step=True)],
        bands=[charts.Band("forecast interval", [(d, lo, hi) for d, _, lo, hi in found["forecast"]], "#0b5cad")],
        rules=[charts.Rule("order-up-to level", float(f["order_up_to"]), "#6b3fa0"),
               charts.Rule("reorder point", float(f["reorder_point"]), "#8a5a00"),
               charts.Rule("safety stock", float(f["safety_stock"]), "#8793a3", dash="2 3")],
        marker=run_date, marker_label="run date")
    return charts.render(chart)


def _local(value: Any, tz: str) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return stamp.tz_convert(tz).to_pydatetime()


def _window(day: datetime, opens: Any, closes: Any) -> tuple[datetime, datetime] | None:
    if opens is None or closes is None:
        return None
    at = [day.replace(hour=t.hour, minute=t.minute, second=0, microsecond=0) for t in (opens, closes)]
    return at[0], at[1]


def _stop_label(stop: dict[str, Any], route: dict[str, Any], tz: str) -> str:
    window = ""
    if stop.get("receiving_open") is not None and stop.get("receiving_close") is not None:
        window = f", receiving {stop['receiving_open']:%H:%M}–{stop['receiving_close']:%H:%M}"
    kind = "delivers" if stop["visit_type"] == "DELIVERY" else "picks up"
    return (f"{stop.get('place_name') or stop['location_id']}: {route['vehicle_id']} {kind} "
            f"{stop['units']:,} units at {web.fmt_time(stop['arrival_time'], tz)[11:]}{window}")


@_html
def routes(ctx: _Context, run_id: str) -> Reply:
    run = _complete(ctx, run_id)
    tz = ctx.tz(run)
    released = views.released(ctx.wh, run_id)
    listing = views.routes(ctx.wh, run_id, views.page_number(ctx.query.get("page")), released=released is not None)
    shifts = []
    for route in listing.rows:
        start = _local(route["start_time"], tz)
        visits = [charts.Visit(_local(s["arrival_time"], tz), _stop_label(s, route, tz),
                               _window(_local(s["arrival_time"], tz), s.get("receiving_open"), s.get("receiving_close"))
                               if s["visit_type"] == "DELIVERY" and s.get("is_store") else None)
                  for s in route["stops"]]
        shifts.append(charts.Shift(route["vehicle_id"], start, _local(route["end_time"], tz), visits))
    timeline = charts.timeline(
        shifts, f"Vehicle timeline, {tz}",
        "Each vehicle's route from leaving its depot to coming back, the receiving windows of the stores it "
        "delivers to (shaded) and its arrivals (dots: green within the store's window, red outside it, blue "
        "at a pick-up).")
    late = sum(1 for shift in shifts for v in shift.visits if v.window and not v.window[0] <= v.at <= v.window[1])
    tiles = web.tile_server()
    return ctx.page("routes.html", run=run, listing=listing, timeline=timeline, late=late, released=released,
                    kpis=run.get("kpis") or {}, tiles=tiles, csp_images=tiles["origin"] if tiles else None)


def routes_data(api: Any, call: HttpCall, caller: str | None, run_id: str) -> Reply:
    """The routes of one page of the routes page, for its map: stops with what a hover shows."""
    ctx = _Context(api, call, caller)
    run = ctx.run(run_id)
    if run.get("status") != "COMPLETE":
        return json_reply({"error": f"run {run_id} is {run.get('status')}"}, 409)
    tz = ctx.tz(run)
    released = views.released(ctx.wh, run_id) is not None
    listing = views.routes(ctx.wh, run_id, views.page_number(ctx.query.get("page")), released=released)
    out = []
    for route in listing.rows:
        out.append({"vehicle": route["vehicle_id"], "colour": route["colour"],
                    "points": [[s["latitude"], s["longitude"]] for s in route["stops"]],
                    "stops": [{"lat": s["latitude"], "lon": s["longitude"], "kind": s["visit_type"],
                               "place": s.get("place_name") or s["location_id"],
                               "arrival": web.fmt_time(s["arrival_time"], tz)[11:], "units": int(s["units"]),
                               "sequence": int(s["stop_sequence"])} for s in route["stops"]]})
    body = json_reply({"run_id": run_id, "released": released, "page": listing.page, "routes": out,
                       "tiles": web.tile_server()})
    return Reply(body.status, body.body, body.content_type, (("Cache-Control", "no-store"),
                                                             ("X-Content-Type-Options", "nosniff")))


@_html
def lines(ctx: _Context, run_id: str, kind: str) -> Reply:
    return _lines_page(ctx, run_id, kind)


def _lines_page(ctx: _Context, run_id: str, kind: str, error: str | None = None, status: int = 200) -> Reply:
    run = _complete(ctx, run_id)
    figures = _published(ctx, run)
    flt = _filters(ctx)
    decision = ctx.query.get("decision") or None
    page = views.page_number(ctx.query.get("page"))
    listing, sort = views.lines(ctx.wh, kind, run_id, decision=decision, sort=ctx.query.get("sort"), page=page,
                                total=figures[f"{kind[:-1]}_lines"], **flt)
    return ctx.page("lines.html", status, run=run, kind=kind, listing=listing, sort=sort,
                    options=views.filters(ctx.wh), selected={**flt, "decision": decision},
                    released=views.released(ctx.wh, run_id),
                    counts=views.decision_counts(ctx.wh, kind, run_id, figures[f"{kind[:-1]}_lines"]),
                    error=error)


_LINE_TYPE = {"transfers": "TRANSFER", "orders": "ORDER"}
_KEEP = ("store", "category", "decision", "sort", "page")


@_html
def decide(ctx: _Context, run_id: str, kind: str) -> Reply:
    form = ctx.form()
    ctx.check_post(form)
    run = _complete(ctx, run_id)
    first = {k: (v[0] if v else "") for k, v in form.items()}
    # The page's filters come back in the form, so the planner returns to the same view.
    ctx.query = {k: first[f"keep_{k}"] for k in _KEEP if first.get(f"keep_{k}")}
    line_type = _LINE_TYPE[kind]
    if first.get("approve"):
        requests = [decisions.Request(line_type, first["approve"], "APPROVE")]
        done = "approved"
    elif first.get("reject"):
        line_id = first["reject"]
        requests = [decisions.Request(line_type, line_id, "REJECT", reason=first.get(f"reason-{line_id}"))]
        done = "rejected"
    elif first.get("edit"):
        line_id = first["edit"]
        requests = [decisions.Request(line_type, line_id, "EDIT", quantity=first.get(f"qty-{line_id}", ""))]
        done = "edited"
    elif first.get("bulk") == "approve":
        requests = [decisions.Request(line_type, line_id, "APPROVE") for line_id in form.get("line", [])]
        done = "approved"
        if not requests:
            return _lines_page(ctx, run_id, kind, "Select the lines to approve first.", 400)
    else:
        return _lines_page(ctx, run_id, kind, "No action given.", 400)
    try:
        made = decisions.decide(ctx.wh, run, ctx.identity, requests)
    except decisions.DecisionError as exc:
        return _lines_page(ctx, run_id, kind, exc.message, exc.status)
    return _redirect(f"/ui/runs/{run_id}/{kind}?" + urlencode({**ctx.query, "done": done, "n": len(made)}))


@_html
def release(ctx: _Context, run_id: str) -> Reply:
    form = ctx.form()
    ctx.check_post(form)
    run = _complete(ctx, run_id)
    decisions.release(ctx.runtime, run, ctx.identity)
    return _redirect(f"/ui/runs/{run_id}?done=released")


def _tasks_page(ctx: _Context, run_id: str, error: str | None = None, status: int = 200) -> Reply:
    from retailopt.dispatch import fleet

    run = _complete(ctx, run_id)
    names = ctx.wh.query("SELECT store_id AS id, name FROM `{dataset}.stores` UNION ALL "
                         "SELECT dc_id, name FROM `{dataset}.distribution_centers`")
    place = dict(zip(names.id.astype(str), names.name.astype(str)))
    tasks = [{**t, "place_name": place.get(t["location_id"], t["location_id"])}
             for t in fleet.tasks_of(ctx.wh, run_id)]
    return ctx.page("tasks.html", status=status, run=run, tasks=tasks, error=error,
                    driver=web.is_driver(ctx.runtime, ctx.caller))


@_html
def tasks(ctx: _Context, run_id: str) -> Reply:
    return _tasks_page(ctx, run_id)


@_html
def task_outcome(ctx: _Context, run_id: str) -> Reply:
    """A driver's form: mark a delivery task delivered, partly delivered or failed."""
    from retailopt.dispatch import fleet

    form = ctx.form()
    ctx.check_post(form, need_planner=False)
    if not web.is_driver(ctx.runtime, ctx.caller):
        raise ApiError(403, f"{ctx.identity} may not record deliveries (driver or planner role needed)")
    first = {k: (v[0] if v else "") for k, v in form.items()}
    units = first.get("units", "").strip()
    if first.get("outcome") == "PARTIAL" and not units.isdigit():
        return _tasks_page(ctx, run_id, "A partial delivery needs the whole number of units delivered.", 400)
    mine = {t["task_id"] for t in fleet.tasks_of(ctx.wh, run_id)}
    if first.get("task") not in mine:
        return _tasks_page(ctx, run_id, f"Run {run_id} has no task {first.get('task', '')[:70]!r}.", 404)
    try:
        fleet.close_task(ctx.wh, ctx.runtime.fleet(), parent=ctx.runtime.fleet_parent(), task=first["task"],
                         outcome=first.get("outcome", ""), units=int(units) if units.isdigit() else None,
                         note=first.get("note") or None, identity=ctx.identity)
    except fleet.DispatchError as exc:
        return _tasks_page(ctx, run_id, exc.message, exc.status)
    return _redirect(f"/ui/runs/{run_id}/tasks?done=recorded")


# --- JSON ------------------------------------------------------------------------------------

def _json_error(exc: StatusError) -> Reply:
    return json_reply({"error": exc.message}, exc.status)


def list_decisions(api: Any, call: HttpCall, run_id: str, caller: str | None) -> Reply:
    runtime = api.runtime()
    api._run(run_id, True)
    rows = views.decisions_log(runtime.warehouse, run_id, 1000)
    return json_reply({"run_id": run_id, "released": views.released(runtime.warehouse, run_id) is not None,
                       "count": len(rows), "rows": rows})


def post_decisions(api: Any, call: HttpCall, body: dict[str, Any], run_id: str, caller: str | None) -> Reply:
    runtime = api.runtime()
    identity = web.identity_of(runtime, caller)
    if not web.is_planner(runtime, caller):
        return json_reply({"error": f"{identity} may read the plan but not change it (planner role needed)"}, 403)
    run = api._run(run_id, True)
    requests = [decisions.Request(d["line_type"], d["line_id"], d["action"], d.get("quantity"), d.get("reason"))
                for d in body["decisions"]]
    try:
        rows = decisions.decide(runtime.warehouse, run, identity, requests)
    except decisions.DecisionError as exc:
        return _json_error(exc)
    return json_reply({"run_id": run_id, "count": len(rows), "rows": rows}, 201)


def post_dispatch(api: Any, call: HttpCall, run_id: str, caller: str | None) -> Reply:
    """Dispatch a released run (again): planners only; tasks created before are not created twice."""
    runtime = api.runtime()
    identity = web.identity_of(runtime, caller)
    if not web.is_planner(runtime, caller):
        return json_reply({"error": f"{identity} may read the plan but not dispatch it (planner role needed)"}, 403)
    out = decisions.dispatch(runtime, api._run(run_id, True))
    if "error" in out:
        return json_reply(out, 409)
    return json_reply({"run_id": run_id, **out})


def list_tasks(api: Any, call: HttpCall, run_id: str, caller: str | None) -> Reply:
    from retailopt.dispatch import fleet

    runtime = api.runtime()
    api._run(run_id, True)
    tasks = fleet.tasks_of(runtime.warehouse, run_id)
    return json_reply({"run_id": run_id, "count": len(tasks), "tasks": tasks})


def post_task_outcome(api: Any, call: HttpCall, body: dict[str, Any], task_id: str, caller: str | None) -> Reply:
    """A driver marks a task delivered, failed or partly delivered (drivers and planners)."""
    from retailopt.dispatch import fleet

    runtime = api.runtime()
    identity = web.identity_of(runtime, caller)
    if not web.is_driver(runtime, caller):
        return json_reply({"error": f"{identity} may not record deliveries (driver or planner role needed)"}, 403)
    try:
        out = fleet.close_task(runtime.warehouse, runtime.fleet(), parent=runtime.fleet_parent(), task=task_id,
                               outcome=body["outcome"], units=body.get("units"), note=body.get("note"),
                               identity=identity)
    except fleet.DispatchError as exc:
        return _json_error(exc)
    return json_reply(out)


def post_release(api: Any, call: HttpCall, run_id: str, caller: str | None) -> Reply:
    runtime = api.runtime()
    identity = web.identity_of(runtime, caller)
    if not web.is_planner(runtime, caller):
        return json_reply({"error": f"{identity} may read the plan but not release it (planner role needed)"}, 403)
    run = api._run(run_id, True)
    try:
        return json_reply(decisions.release(runtime, run, identity))
    except decisions.DecisionError as exc:
        return _json_error(exc)
