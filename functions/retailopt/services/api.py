"""The HTTP API: start runs (what-if overrides included), run status, results, latest plan.

Framework-neutral: `Api.handle` takes an `HttpCall` (method, path, headers, body) and returns a
`Reply`. The functions-framework target in `functions/main.py` is an ASGI function: answers
that are already in memory (a complete run's status and results, which never change, for a
caller whose token was verified before) are served on the event loop, everything else in a
worker thread. JSON in and out; the OpenAPI document in this package is the contract and its
request schemas validate the bodies. Errors say what is wrong with the request, never anything
about the server.
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
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import resources
from typing import Any, Callable, Mapping

import jsonschema
import pandas as pd

from retailopt.services import handlers, messages
from retailopt.services.auth import AuthError
from retailopt.services.logs import log, trace_fields
from retailopt.services.messages import PermanentError
from retailopt.services.runtime import Runtime

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


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


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
                 latest_ttl_s: float = 2.0, runtime_peek: Callable[[], Runtime | None] | None = None) -> None:
        self.runtime = runtime_getter
        self._peek = runtime_peek or runtime_getter
        # Which run is the latest complete one is looked up at most every `latest_ttl_s`: a new
        # plan shows up within that delay, and a burst of readers costs one query.
        self._latest: tuple[float, str | None] = (float("-inf"), None)
        self._latest_ttl = latest_ttl_s
        self._cache: "OrderedDict[tuple[str, str], Any]" = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size

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
        from retailopt import pipeline

        if not blocking:
            raise _WouldBlock
        runtime = self.runtime()
        body = self._body(call, "StartRunRequest")
        chain_id = body.get("chain_id") or runtime.settings.chain_id
        run_date = body.get("run_date")
        overrides = body.get("overrides") or {}
        try:
            handlers.run_settings(runtime, overrides, run_date)  # the same check the handlers make
        except PermanentError as exc:
            raise ApiError(400, exc.reason) from exc
        key_date = date.fromisoformat(run_date) if run_date else datetime.now(timezone.utc).date()
        run_id = messages.run_id_for(chain_id, key_date, overrides, body.get("request_key"))
        links = {"run": f"/runs/{run_id}", "transfers": f"/runs/{run_id}/transfers",
                 "orders": f"/runs/{run_id}/orders", "routes": f"/runs/{run_id}/routes"}
        existing = pipeline.get_run(runtime.warehouse, run_id)
        if existing is not None:
            return json_reply({"run_id": run_id, "status": existing.get("status"), "duplicate": True,
                               "links": links}, 200)
        source = {"prefix": body["source_prefix"]} if body.get("source_prefix") is not None else None
        message = messages.make_message("start", chain_id=chain_id, run_id=run_id, run_date=run_date,
                                        overrides=overrides, source=source)
        runtime.publisher.publish("import", message)
        log(logging.INFO, "run requested", run_id=run_id, caller=_caller, step="api", outcome="ok",
            **trace_fields(call.headers))
        return json_reply({"run_id": run_id, "status": "ACCEPTED", "duplicate": False, "links": links}, 202)

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
            rows = self._results(run_id, resource, blocking)
            body = _dumps({"run_id": run_id, "count": len(rows), "rows": rows})
            self._remember((run_id, f"{resource}.json"), body)
        return Reply(200, body)

    def latest_plan(self, call: HttpCall, blocking: bool, _caller: str | None = None) -> Reply:
        from retailopt import pipeline

        checked_at, run_id = self._latest
        if time.monotonic() - checked_at > self._latest_ttl:
            if not blocking:
                raise _WouldBlock
            run_id = pipeline.latest_complete_run(self.runtime().warehouse)
            self._latest = (time.monotonic(), run_id)
        if run_id is None:
            raise ApiError(404, "no complete plan yet")
        body = self._cached((run_id, "plan.json"))
        if body is None:
            body = _dumps({"run": self._run(run_id, blocking),
                           **{r: self._results(run_id, r, blocking) for r in ("transfers", "orders", "routes")}})
            self._remember((run_id, "plan.json"), body)
        return Reply(200, body)

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
                body = json.loads(call.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(400, "body is not valid JSON") from exc
        errors = sorted(_request_validator(schema_name).iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(body)"
            raise ApiError(400, f"invalid field {where}: {errors[0].message[:200]}")
        return body

    def _cached(self, key: tuple[str, str]) -> Any:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _remember(self, key: tuple[str, str], value: Any) -> None:
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _run(self, run_id: str, blocking: bool) -> dict[str, Any]:
        from retailopt import pipeline

        cached = self._cached((run_id, "run"))
        if cached is not None:
            return cached
        if not blocking:
            raise _WouldBlock
        run = pipeline.get_run(self.runtime().warehouse, run_id)
        if run is None:
            raise ApiError(404, f"no run {run_id}")
        out = {k: _clean(v) for k, v in run.items()}
        for name in ("parameters", "timings", "kpis"):
            if isinstance(out.get(name), str):
                try:
                    out[name] = json.loads(out[name])
                except ValueError:
                    pass
        if out.get("status") in ("COMPLETE", "FAILED"):  # final: never changes again
            self._remember((run_id, "run"), out)
        return out

    def _results(self, run_id: str, resource: str, blocking: bool) -> list[dict[str, Any]]:
        cached = self._cached((run_id, resource))
        if cached is not None:
            return cached
        if not blocking:
            raise _WouldBlock
        warehouse = self.runtime().warehouse
        rows = _records(warehouse.query(_RESULT_SQL[resource], {"run_id": run_id}))
        if resource == "routes":
            stops = _records(warehouse.query(_RESULT_SQL["stops"], {"run_id": run_id}))
            by_route: dict[str, list[dict[str, Any]]] = {}
            for stop in stops:
                by_route.setdefault(stop["route_id"], []).append(stop)
            for route in rows:
                route["stops"] = by_route.get(route["route_id"], [])
        self._remember((run_id, resource), rows)
        return rows


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

