"""What the functions-framework targets in `functions/main.py` call: decode, check, dispatch.

Every event is acknowledged (HTTP 2xx) unless a transient failure should make the platform
retry: malformed or unprocessable events are logged with their reason and end on the
dead-letter path instead of looping.
"""

from __future__ import annotations

import functools
import hmac
import logging
from typing import Any, Callable

import flask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from retailopt.services import handlers, logs, messages
from retailopt.services.api import Api, HttpCall, Reply, json_reply
from retailopt.services.auth import AuthError
from retailopt.services.messages import EventInfo, PermanentError
from retailopt.services.runtime import Runtime, get_runtime, peek_runtime
from retailopt.services.settings import ServiceSettings

logs.configure()
LOCAL_BUS_HEADER = "X-Retailopt-Local-Bus"


def _headers() -> dict[str, str]:
    return dict(flask.request.headers) if flask.has_request_context() else {}


def _check_caller(runtime: Runtime, headers: dict[str, str], step: str) -> None:
    if runtime.verifier is None:
        return
    secret = headers.get(LOCAL_BUS_HEADER)
    if runtime.local_bus_secret and secret and hmac.compare_digest(secret, runtime.local_bus_secret):
        return
    try:
        runtime.verifier.verify_header(headers.get("Authorization"))
    except AuthError as exc:
        logs.log(logging.WARNING, "event refused", step=step, status=exc.status, reason=exc.reason,
                 **logs.trace_fields(headers))
        flask.abort(exc.status)


def _oversized(runtime: Runtime) -> int | None:
    size = flask.request.content_length if flask.has_request_context() else None
    return size if size is not None and size > runtime.service.max_body_bytes else None


def _event(step: str, dispatch: Callable[[Runtime, Any, dict[str, str]], str]) -> Callable[[Any], str]:
    def run(event: Any) -> str:
        runtime = get_runtime()
        headers = _headers()
        _check_caller(runtime, headers, step)
        try:
            size = _oversized(runtime)
            if size is not None:
                raise PermanentError(f"event body of {size} bytes exceeds {runtime.service.max_body_bytes}")
            return dispatch(runtime, event, headers)
        except PermanentError as exc:
            # Acknowledge: a retry would fail the same way. The reason stays in the log.
            event_id = event.get("id") if hasattr(event, "get") else None
            logs.log(logging.ERROR, f"{step} rejected: {exc.reason}", step=step, outcome="rejected",
                     reason=exc.reason, event_id=event_id, **logs.trace_fields(headers))
            return "rejected"
        finally:
            API.runs_changed()  # `serve`: the API in this process sees the step's runs at once
    run.__name__ = step
    return run


def _pubsub(handler: Callable[[Runtime, dict, EventInfo, dict], str]) -> Callable[[Runtime, Any, dict], str]:
    @functools.wraps(handler)
    def dispatch(runtime: Runtime, event: Any, headers: dict[str, str]) -> str:
        message, info = messages.decode_pubsub_event(event)
        return handler(runtime, message, info, headers)
    return dispatch


def _import_dispatch(runtime: Runtime, event: Any, headers: dict[str, str]) -> str:
    if event.get("type") == messages.STORAGE_FINALIZED_TYPE:
        obj, info = messages.decode_storage_event(event)
        return handlers.storage_object(runtime, obj, info, headers)
    message, info = messages.decode_pubsub_event(event)
    return handlers.start(runtime, message, info, headers)


import_files = _event("import", _import_dispatch)
forecast = _event("forecast", _pubsub(handlers.forecast))
plan = _event("plan", _pubsub(handlers.plan))
retrain = _event("retrain", _pubsub(handlers.retrain))
dispatch = _event("dispatch", _pubsub(handlers.dispatch))


def check_trainings(request: flask.Request) -> flask.Response:
    """Cloud Scheduler's POST (OIDC token of its own identity): record how the BigQuery ML
    trainings the retrain service started have ended. 200 with the counts; an exception is a 500,
    and the next scheduled check (or Scheduler's retry) looks again."""
    runtime = get_runtime()
    headers = _headers()
    _check_caller(runtime, headers, "check_trainings")
    if request.method != "POST":
        return flask.make_response(flask.jsonify({"error": "method not allowed"}), 405, {"Allow": "POST"})
    return flask.make_response(flask.jsonify(handlers.check_trainings(runtime, headers)), 200)
API = Api(get_runtime, runtime_peek=peek_runtime)
_JSON_HEADERS = {"Cache-Control": "no-store"}


async def api(request: Request) -> Response:
    """Answer on the event loop when the reply is in memory, else in a worker thread.

    Hundreds of concurrent readers of a finished plan then cost no thread hand-offs, and a
    slow query never holds up the answers that need none.
    """
    runtime = peek_runtime()
    limit = runtime.service.max_body_bytes if runtime else ServiceSettings().max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _reply(json_reply({"error": f"body larger than {limit} bytes"}, 413))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _reply(json_reply({"error": f"body larger than {limit} bytes"}, 413))
    # The scope's path is what `request.url.path` holds, without building the whole URL (a
    # noticeable share of a cached answer's cost).
    call = HttpCall(request.method, request.scope["path"], request.headers, bytes(body),
                    request.scope.get("query_string", b"").decode("latin-1"))
    reply = API.handle(call, blocking=False)
    if reply is None:
        reply = await run_in_threadpool(API.handle, call)
    return _reply(reply)


def _reply(reply: Reply | None) -> Response:
    assert reply is not None  # a blocking call always answers
    if not reply.headers:
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type, headers=_JSON_HEADERS)
    # Workbench pages and files carry their own headers (CSP, cookies, caching, redirects).
    response = Response(reply.body, status_code=reply.status, media_type=reply.content_type)
    for name, value in reply.headers:
        response.headers.append(name, value)
    return response
