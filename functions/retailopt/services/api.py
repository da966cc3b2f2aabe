"""The HTTP API: start runs (what-if overrides included), run status, results, latest plan.

Framework-neutral: `Api.handle` takes an `HttpCall` (method, path, headers, body) and returns a
`Reply`. The functions-framework target in `functions/main.py` is an ASGI function: answers
that are already in memory (a complete run's status and results, which never change; a run id
the index of runs does not hold; the latest complete plan; for a caller whose token was
verified before) are served on the event loop, everything else in a worker thread. JSON in and
out; the OpenAPI document in this package is the contract and its request schemas validate the
bodies. Errors say what is wrong with the request, never anything about the server.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import resources
from typing import Any, Callable, Mapping

import jsonschema
import numpy as np
import pandas as pd

from retailopt.loading import DateRange
from retailopt.services import handlers, messages
from retailopt.services.auth import AuthError
from retailopt.services.logs import log, trace_fields
from retailopt.services.messages import PermanentError
from retailopt.services.runtime import Runtime
from retailopt.warehouse.base import query_file

_RUN_ID = r"[A-Za-z0-9_.-]{1,128}"
# (path pattern, {method: endpoint}); a trailing slash is accepted everywhere.
_ROUTES: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = tuple(
    (re.compile(pattern + "/?"), methods) for pattern, methods in (
        (r"/healthz", {"GET": "health"}),
        (r"/openapi\.json", {"GET": "openapi"}),
        (r"/runs", {"POST": "start_run"}),
        (rf"/runs/(?P<run_id>{_RUN_ID})", {"GET": "get_run"}),
        (rf"/runs/(?P<run_id>{_RUN_ID})/(?P<resource>transfers|orders|routes)", {"GET": "get_results"}),
        (r"/plans/latest", {"GET": "latest_plan"}),
        (r"/retrain", {"POST": "retrain"}),
        (rf"/runs/(?P<run_id>{_RUN_ID})/decisions", {"GET": "list_decisions", "POST": "post_decisions"}),
        (rf"/runs/(?P<run_id>{_RUN_ID})/release", {"POST": "post_release"}),
        (rf"/runs/(?P<run_id>{_RUN_ID})/dispatch", {"POST": "post_dispatch"}),
        (rf"/runs/(?P<run_id>{_RUN_ID})/tasks", {"GET": "list_tasks"}),
        (r"/tasks/(?P<task_id>[A-Za-z0-9_.-]{1,64})/outcome", {"POST": "post_task_outcome"}),
        # The workbench (retailopt.workbench): HTML pages and their forms, its files, the API page.
        (r"", {"GET": "wb_runs"}),
        (r"/docs", {"GET": "wb_docs"}),
        (r"/static/(?P<name>[a-z0-9][a-z0-9._-]{0,80})", {"GET": "wb_static"}),
        (r"/ui/runs", {"POST": "wb_start_run"}),
        (r"/ui/compare", {"GET": "wb_compare"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})", {"GET": "wb_overview"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/worklist", {"GET": "wb_worklist"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/position", {"GET": "wb_position"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/routes", {"GET": "wb_routes"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/routes\.json", {"GET": "wb_routes_data"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/(?P<kind>transfers|orders)", {"GET": "wb_lines", "POST": "wb_decide"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/release", {"POST": "wb_release"}),
        (rf"/ui/runs/(?P<run_id>{_RUN_ID})/tasks", {"GET": "wb_tasks", "POST": "wb_task_outcome"}),
    ))

_RESULT_SQL = {
    "transfers": "SELECT * EXCEPT (run_id) FROM `{dataset}.transfers` WHERE run_id = @run_id ORDER BY transfer_id",
    "orders": "SELECT * EXCEPT (run_id) FROM `{dataset}.replenishment_orders` WHERE run_id = @run_id ORDER BY order_id",
    "routes": "SELECT * EXCEPT (run_id) FROM `{dataset}.routes` WHERE run_id = @run_id ORDER BY route_id",
    "stops": "SELECT * EXCEPT (run_id) FROM `{dataset}.route_stops` WHERE run_id = @run_id "
             "ORDER BY route_id, stop_sequence",
}


@dataclass(frozen=True)
class HttpCall:
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive lookups, as every framework's headers give
    body: bytes = b""
    query: str = ""  # the raw query string (workbench pages: filters, sort, page)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # besides Content-Type (workbench: CSP, cookies, Location)


# Request bodies are a few levels deep; anything deeper is refused before schema validation,
# whose recursion (and its error messages' reprs) would otherwise follow the nesting.
_MAX_BODY_DEPTH = 32
# Integers a body may carry: BigQuery's INT64, which every stored value must fit.
_MAX_INT = 2**63 - 1


class _WouldBlock(Exception):
    """The answer needs the warehouse, the publisher or a key fetch: not on the event loop."""


@functools.cache
def openapi() -> dict[str, Any]:
    return json.loads(resources.files("retailopt.services").joinpath("openapi.json").read_text("utf-8"))


@functools.cache
def _openapi_bytes() -> bytes:
    return json.dumps(openapi()).encode("utf-8")


@functools.cache
def _request_validator(name: str) -> jsonschema.Draft202012Validator:
    spec = openapi()
    # Resolve the components' $refs against the whole document.
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@dataclass(frozen=True)
class _RunIndex:
    """Which runs exist and the latest complete one, as one query saw them at `loaded_at`."""

    warehouse: Any  # the index describes this warehouse only (tests and `serve` swap runtimes)
    loaded_at: float  # clock time the query started: every run written before it is in `run_ids`
    run_ids: frozenset[str]
    latest: str | None


class _BadNumber(ValueError):
    pass


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _dumps(body: Any) -> bytes:
    return json.dumps(body, default=_jsonable, allow_nan=False).encode("utf-8")


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, _dumps(body))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(path)
        if match is not None:
            if method not in methods:
                raise ApiError(405, "method not allowed")
            return methods[method], match.groupdict()
    raise ApiError(404, "not found")


class Api:
    """Holds the cache of complete runs' results (they never change) and answers calls."""

    def __init__(self, runtime_getter: Callable[[], Runtime], cache_size: int = 256,
                 runtime_peek: Callable[[], Runtime | None] | None = None, *, index_ttl_s: float = 1.0,
                 index_max_stale_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime_getter
        self._peek = runtime_peek or runtime_getter
        # The index of runs (ids, latest complete run) answers unknown ids and /plans/latest
        # without a query per request. It is trusted for `index_ttl_s`: a run started elsewhere
        # answers 404 for at most that long (plus one index query). Past the TTL the event loop
        # keeps answering from it while one thread refreshes it, up to `index_max_stale_s`;
        # older than that (an instance idle for a while) it is refreshed before it is used.
        self._index: _RunIndex | None = None
        self._index_ttl = index_ttl_s
        self._index_max_stale = max(index_max_stale_s, index_ttl_s)
        self._index_flight: tuple[Any, "Future[_RunIndex]"] | None = None
        self._index_lock = threading.Lock()
        self._clock = clock
        self._cache: "OrderedDict[tuple[str, str], Any]" = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        # Single flight: concurrent readers of the same missing answer wait for one query.
        self._flights: dict[tuple[str, str], "Future[Any]"] = {}
        self._flights_lock = threading.Lock()

    def handle(self, call: HttpCall, *, blocking: bool = True) -> Reply | None:
        """The reply; with `blocking=False`, None when it cannot be given without waiting."""
        try:
            endpoint, args = _route(call.method, call.path)
            if endpoint != "health":
                args["_caller"] = self._authenticate(call, blocking)
            return getattr(self, endpoint)(call, blocking=blocking, **args)
        except _WouldBlock:
            return None
        except AuthError as exc:
            log(logging.WARNING, "request refused", status=exc.status, reason=exc.reason, path=call.path,
                **trace_fields(call.headers))
            return json_reply({"error": "unauthenticated" if exc.status == 401 else "forbidden"}, exc.status)
        except ApiError as exc:
            return json_reply({"error": exc.message}, exc.status)
        except Exception as exc:  # the detail goes to the log only
            log(logging.ERROR, "request failed", path=call.path, error=f"{type(exc).__name__}: {exc}",
                **trace_fields(call.headers))
            return json_reply({"error": "internal error"}, 500)

    def _authenticate(self, call: HttpCall, blocking: bool) -> str | None:
        runtime = self.runtime() if blocking else self._peek()
        if runtime is None:
            raise _WouldBlock
        if runtime.verifier is None:
            return None
        caller = runtime.verifier.verify_header(call.headers.get("Authorization"), cached_only=not blocking)
        if caller is None:
            raise _WouldBlock
        return caller.email

    # --- endpoints ---------------------------------------------------------------------------

    def health(self, call: HttpCall, blocking: bool) -> Reply:
        return json_reply({"status": "ok"})

    def openapi(self, call: HttpCall, blocking: bool, _caller: str | None = None) -> Reply:
        return Reply(200, _openapi_bytes())

    def start_run(self, call: HttpCall, blocking: bool, _caller: str | None = None) -> Reply:
        if not blocking:
            raise _WouldBlock
        return self.start_validated(call, self._body(call, "StartRunRequest"), _caller)

    def start_validated(self, call: HttpCall, body: dict[str, Any], _caller: str | None) -> Reply:
        """Start a run from a StartRunRequest already checked against the schema (the JSON API
        and the workbench's what-if form both come here)."""
        from retailopt import pipeline

        runtime = self.runtime()
        chain_id = body.get("chain_id") or runtime.settings.chain_id
        run_date = body.get("run_date")
        overrides = body.get("overrides") or {}
        try:
            handlers.run_settings(runtime, overrides, run_date)  # the same check the handlers make
        except PermanentError as exc:
            raise ApiError(400, exc.reason) from exc
        replace = body.get("replace_sales")
        if replace is not None:
            try:
                DateRange(date.fromisoformat(replace["first"]), date.fromisoformat(replace["last"]))
            except ValueError as exc:
                raise ApiError(400, f"invalid field replace_sales: {exc}") from exc
        key_date = date.fromisoformat(run_date) if run_date else datetime.now(timezone.utc).date()
        base_id = messages.run_id_for(chain_id, key_date, overrides, body.get("request_key"))
        try:
            # The same request is the same run while it is alive; after a failure, a new attempt.
            run_id, existing = pipeline.current_attempt(runtime.warehouse, base_id)
        except pipeline.RunClosed as exc:
            raise ApiError(409, str(exc)) from exc
        links = {"run": f"/runs/{run_id}", "transfers": f"/runs/{run_id}/transfers",
                 "orders": f"/runs/{run_id}/orders", "routes": f"/runs/{run_id}/routes"}
        if existing is not None:
            return json_reply({"run_id": run_id, "status": existing.get("status"), "duplicate": True,
                               "links": links}, 200)
        source = {"prefix": body["source_prefix"]} if body.get("source_prefix") is not None else None
        if source is not None and replace is not None:
            source["replace_sales"] = {"first": replace["first"], "last": replace["last"]}
        message = messages.make_message("start", chain_id=chain_id, run_id=run_id, run_date=run_date,
                                        overrides=overrides, source=source)
        runtime.publisher.publish("import", message)
        log(logging.INFO, "run requested", run_id=run_id, caller=_caller, step="api", outcome="ok",
            **trace_fields(call.headers))
        out = {"run_id": run_id, "status": "ACCEPTED", "duplicate": False, "links": links}
        if run_id != base_id:
            out["retry_of"] = base_id
        return json_reply(out, 202)

    # --- plan decisions and release (JSON) and the workbench (HTML) --------------------------

    def list_decisions(self, call: HttpCall, blocking: bool, run_id: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import pages

        if not blocking:
            raise _WouldBlock
        return pages.list_decisions(self, call, run_id, _caller)

    def post_decisions(self, call: HttpCall, blocking: bool, run_id: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import pages

        if not blocking:
            raise _WouldBlock
        return pages.post_decisions(self, call, self._body(call, "DecisionsRequest"), run_id, _caller)

    def post_release(self, call: HttpCall, blocking: bool, run_id: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import pages

        if not blocking:
            raise _WouldBlock
        return pages.post_release(self, call, run_id, _caller)

    def post_dispatch(self, call: HttpCall, blocking: bool, run_id: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import pages

        if not blocking:
            raise _WouldBlock
        return pages.post_dispatch(self, call, run_id, _caller)

    def list_tasks(self, call: HttpCall, blocking: bool, run_id: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import pages

        if not blocking:
            raise _WouldBlock
        return pages.list_tasks(self, call, run_id, _caller)

    def post_task_outcome(self, call: HttpCall, blocking: bool, task_id: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import pages

        if not blocking:
            raise _WouldBlock
        return pages.post_task_outcome(self, call, self._body(call, "TaskOutcome"), task_id, _caller)

    def wb_static(self, call: HttpCall, blocking: bool, name: str, _caller: str | None = None) -> Reply:
        from retailopt.workbench import web

        found = web.static_file(name)
        if found is None:
            raise ApiError(404, "not found")
        return Reply(200, found[0], found[1], (("Cache-Control", "private, max-age=3600"),
                                               ("X-Content-Type-Options", "nosniff")))

    def __getattr__(self, name: str) -> Any:
        # wb_<page>: a workbench page, rendered in a worker thread (it queries the warehouse).
        if not name.startswith("wb_"):
            raise AttributeError(name)

        def page(call: HttpCall, blocking: bool, _caller: str | None = None, **args: str) -> Reply:
            from retailopt.workbench import pages

            if not blocking:
                raise _WouldBlock
            return getattr(pages, name[3:])(self, call, _caller, **args)
        return page

    def retrain(self, call: HttpCall, blocking: bool, _caller: str | None = None) -> Reply:
        if not blocking:
            raise _WouldBlock
        runtime = self.runtime()
        body = self._body(call, "RetrainRequest")
        chain_id = body.get("chain_id") or runtime.settings.chain_id
        today = datetime.now(timezone.utc).date()
        run_id = "retrain-" + messages.run_id_for(chain_id, today, None, body.get("request_key"))
        message = messages.make_message("retrain", chain_id=chain_id, run_id=run_id, run_date=today)
        runtime.publisher.publish("retrain", message)
        return json_reply({"run_id": run_id, "status": "ACCEPTED", "duplicate": False, "links": {}}, 202)

    def get_run(self, call: HttpCall, blocking: bool, run_id: str, _caller: str | None = None) -> Reply:
        body = self._cached((run_id, "run.json"))
        if body is None:
            run = self._run(run_id, blocking)
            body = _dumps(run)
            if run.get("status") in ("COMPLETE", "FAILED"):
                self._remember((run_id, "run.json"), body)
        return Reply(200, body)

    def get_results(self, call: HttpCall, blocking: bool, run_id: str, resource: str,
                    _caller: str | None = None) -> Reply:
        run = self._run(run_id, blocking)
        if run["status"] != "COMPLETE":
            raise ApiError(409, f"run {run_id} is {run['status']}: results are visible once it is COMPLETE")
        body = self._cached((run_id, f"{resource}.json"))
        if body is None:
            if not blocking:
                raise _WouldBlock
            body = self._once((run_id, f"{resource}.json"), lambda: self._results_body(run_id, resource))
        return Reply(200, body)

    def latest_plan(self, call: HttpCall, blocking: bool, _caller: str | None = None) -> Reply:
        run_id = self._runs_index(blocking).latest
        if run_id is None:
            raise ApiError(404, "no complete plan yet")
        body = self._cached((run_id, "plan.json"))
        if body is None:
            if not blocking:
                raise _WouldBlock
            body = self._once((run_id, "plan.json"), lambda: self._plan_body(run_id))
        return Reply(200, body)

    def runs_changed(self) -> None:
        """A step in this process wrote runs: refresh the index now if this process serves reads.

        Locally (`serve`) the API and the steps share a process, so a new or finished run shows
        at once instead of after the TTL; a Cloud Run event service never loads an index.
        """
        runtime, index = self._peek(), self._index
        if runtime is None or index is None or index.warehouse is not runtime.warehouse:
            return
        try:
            self._refresh_index(runtime, wait=True)
        except Exception as exc:  # the step itself succeeded; readers fall back to the TTL
            log(logging.WARNING, "run index refresh failed", error=f"{type(exc).__name__}: {exc}")

    # --- helpers -----------------------------------------------------------------------------

    def _body(self, call: HttpCall, schema_name: str) -> dict[str, Any]:
        limit = self.runtime().service.max_body_bytes
        if len(call.body) > limit:
            raise ApiError(413, f"body larger than {limit} bytes")
        if not call.body.strip():
            body: Any = {}
        else:
            mimetype = (call.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if mimetype != "application/json":
                raise ApiError(415, "send JSON with Content-Type: application/json")
            try:
                body = json.loads(call.body, parse_constant=_refuse_constant, parse_float=_finite_float,
                                  parse_int=_int64)
            except _BadNumber as exc:
                raise ApiError(400, f"body is not valid JSON: {exc}") from exc
            except RecursionError as exc:
                raise ApiError(400, f"body is not valid JSON: nested deeper than {_MAX_BODY_DEPTH} levels") from exc
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(400, "body is not valid JSON") from exc
            if _depth(body) > _MAX_BODY_DEPTH:
                raise ApiError(400, f"body is not valid JSON: nested deeper than {_MAX_BODY_DEPTH} levels")
        return validate_body(schema_name, body)

    def _cached(self, key: tuple[str, str]) -> Any:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _kept(self, key: tuple[str, str], value: Any) -> Any:
        self._remember(key, value)
        return value

    def _remember(self, key: tuple[str, str], value: Any) -> None:
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _results_body(self, run_id: str, resource: str) -> bytes:
        rows = self._results(run_id, resource)
        return self._kept((run_id, f"{resource}.json"), _dumps({"run_id": run_id, "count": len(rows), "rows": rows}))

    def _plan_body(self, run_id: str) -> bytes:
        plan = {"run": self._run(run_id, True),
                **{r: self._results(run_id, r) for r in ("transfers", "orders", "routes")}}
        return self._kept((run_id, "plan.json"), _dumps(plan))

    def _once(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        """`compute()`, or the result of the call already computing `key` in another thread.

        A burst of readers of the same missing answer then costs one query, not one per reader
        queued behind the warehouse's lock. `compute` keeps what never changes in the cache.
        """
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = Future()
        if not leader:
            return flight.result()
        try:
            value = compute()
            flight.set_result(value)
            return value
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            with self._flights_lock:
                del self._flights[key]

    def _runs_index(self, blocking: bool) -> _RunIndex:
        runtime = self.runtime() if blocking else self._peek()
        if runtime is None:
            raise _WouldBlock
        index = self._index
        if index is not None and index.warehouse is runtime.warehouse:
            age = self._clock() - index.loaded_at
            if age <= self._index_ttl:
                return index
            if not blocking and age <= self._index_max_stale:
                self._refresh_index(runtime, wait=False)  # the loop never waits for a query
                return index
        if not blocking:
            raise _WouldBlock
        return self._refresh_index(runtime, wait=True)

    def _refresh_index(self, runtime: Runtime, wait: bool) -> _RunIndex:
        """Load the index once however many callers ask: they share the one query in flight."""
        warehouse = runtime.warehouse
        with self._index_lock:
            current = self._index_flight
            leader = current is None or current[0] is not warehouse
            flight: "Future[_RunIndex]" = Future() if leader else current[1]
            if leader:
                self._index_flight = (warehouse, flight)
        if not leader:
            return flight.result() if wait else self._index
        if wait:
            return self._load_index(warehouse, flight)
        threading.Thread(target=self._load_index, args=(warehouse, flight, False), daemon=True,
                         name="retailopt-api-index").start()
        return self._index

    def _load_index(self, warehouse: Any, flight: "Future[_RunIndex]", raise_errors: bool = True) -> _RunIndex:
        try:
            started = self._clock()
            rows = query_file(warehouse, "run_index")
            complete = rows[rows.status == "COMPLETE"].sort_values(["finished_at", "run_id"], ascending=False,
                                                                    na_position="last")
            index = _RunIndex(warehouse, started, frozenset(rows.run_id.astype(str)),
                              str(complete.run_id.iloc[0]) if len(complete) else None)
            with self._index_lock:
                if self._index is None or self._index.warehouse is not warehouse or (
                        self._index.loaded_at <= started):
                    self._index = index
            flight.set_result(index)
            return index
        except BaseException as exc:
            flight.set_exception(exc)
            if raise_errors:
                raise
            # A background refresh: readers go on with the old index, and past its limit the
            # next reader queries itself (and answers the error).
            log(logging.WARNING, "run index refresh failed", error=f"{type(exc).__name__}: {exc}")
            return self._index
        finally:
            with self._index_lock:
                if self._index_flight is not None and self._index_flight[1] is flight:
                    self._index_flight = None

    def _run(self, run_id: str, blocking: bool) -> dict[str, Any]:
        cached = self._cached((run_id, "run"))
        if cached is not None:
            return cached
        if run_id not in self._runs_index(blocking).run_ids:
            raise ApiError(404, f"no run {run_id}")
        if not blocking:
            raise _WouldBlock
        return self._once((run_id, "run"), lambda: self._read_run(run_id))

    def _read_run(self, run_id: str) -> dict[str, Any]:
        rows = query_file(self.runtime().warehouse, "run_by_id", {"run_id": run_id})
        if rows.empty:
            raise ApiError(404, f"no run {run_id}")
        row = rows.iloc[0].to_dict()
        row["run_date"] = pd.Timestamp(row["run_date"]).date()  # a DATE, shown without a time
        out = {k: _clean(v) for k, v in row.items()}
        for name in ("parameters", "timings", "kpis"):
            out[name] = _stored_json(out.get(name))
        if out.get("status") in ("COMPLETE", "FAILED"):  # final: never changes again
            self._remember((run_id, "run"), out)
        return out

    def _results(self, run_id: str, resource: str) -> list[dict[str, Any]]:
        cached = self._cached((run_id, resource))
        if cached is not None:
            return cached
        return self._once((run_id, resource), lambda: self._read_results(run_id, resource))

    def _read_results(self, run_id: str, resource: str) -> list[dict[str, Any]]:
        warehouse = self.runtime().warehouse
        rows = _records(warehouse.query(_RESULT_SQL[resource], {"run_id": run_id}))
        if resource == "routes":
            stops = _records(warehouse.query(_RESULT_SQL["stops"], {"run_id": run_id}))
            by_route: dict[str, list[dict[str, Any]]] = {}
            for stop in stops:
                by_route.setdefault(stop["route_id"], []).append(stop)
            for route in rows:
                route["stops"] = by_route.get(route["route_id"], [])
        return self._kept((run_id, resource), rows)  # only a COMPLETE run's results are read


def validate_body(schema_name: str, body: Any) -> dict[str, Any]:
    """`body` if it matches the OpenAPI request schema, else ApiError 400 naming the field."""
    errors = sorted(_request_validator(schema_name).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(body)"
        raise ApiError(400, f"invalid field {where}: {errors[0].message[:200]}")
    return body


def _clean(value: Any) -> Any:
    """A warehouse value as JSON can carry it: NaN, infinities and NULLs are null."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _stored_json(text: Any) -> Any:
    """A JSON column of `runs` as it is shown: parsed, with NaN and infinities as null.

    Older rows hold `Infinity`/`NaN` (once accepted from overrides), which Python's json reads
    but no JSON reader of the API's answers would; text that is not JSON is shown as stored.
    """
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text, parse_constant=lambda _: None, parse_float=_float_or_none)
    except (ValueError, RecursionError):
        return text


def _float_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _refuse_constant(text: str) -> Any:
    raise _BadNumber(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"number {text[:40]} is out of range")
    return value


def _int64(text: str) -> int:
    if len(text) > 20 or abs(value := int(text)) > _MAX_INT:
        raise _BadNumber(f"number {text[:40]} is out of range")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth <= _MAX_BODY_DEPTH:
                stack.extend((child, depth + 1) for child in item)
    return deepest


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

