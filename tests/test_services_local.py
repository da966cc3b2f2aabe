"""`services.local.mount_events`: the one ASGI app `retailopt serve` answers with."""

from __future__ import annotations

from starlette.testclient import TestClient

from retailopt.services.local import mount_events


def _recording_app(seen: list[dict]):
    async def app(scope, receive, send):
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def test_every_request_reaches_the_api_with_an_execution_id_and_a_given_one_is_kept():
    seen: list[dict] = []
    client = TestClient(mount_events(_recording_app(seen), {}))
    client.get("/runs/a")
    client.get("/runs/b")
    client.get("/runs/c", headers={"Function-Execution-Id": "given-id"})
    ids = [dict(scope["headers"]).get(b"function-execution-id") for scope in seen]
    assert all(len(i) == 12 for i in ids[:2]) and ids[0] != ids[1]
    assert ids[2] == b"given-id"
    assert sum(name == b"function-execution-id" for name, _ in seen[2]["headers"]) == 1


def test_event_prefixes_go_to_their_handler_with_the_path_below_the_prefix():
    api_seen: list[dict] = []
    handler_seen: list[dict] = []

    def wsgi(environ, start_response):
        handler_seen.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = TestClient(mount_events(_recording_app(api_seen), {"/events/plan": wsgi}))
    assert client.post("/events/plan", content=b"{}").text == "ok"
    assert client.get("/events/planner").status_code == 204  # a longer name is not the prefix
    assert handler_seen[0]["PATH_INFO"] == "/" and [s["path"] for s in api_seen] == ["/events/planner"]
