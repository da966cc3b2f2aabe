"""Property tests of the HTTP API: whatever a caller sends, the answer is 2xx or 4xx with a JSON
error, never a 5xx or a traceback.

The API is the real one (functions-framework's Starlette app, a DuckDB warehouse holding a
running run, a complete run and one whose stored settings carry NaN/Infinity); only the
publisher records instead of sending, so an accepted POST /runs starts nothing.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailopt.services.runtime import set_runtime
from api_support import api_client, duck_runtime, insert_run

RUNS = ("acme-prop-running", "acme-prop-complete", "acme-prop-nonfinite")
PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    rt = duck_runtime(tmp_path_factory.mktemp("api-properties"), max_body_bytes=1_000_000)  # the default
    insert_run(rt, RUNS[0])
    insert_run(rt, RUNS[1], parameters='{"service_level": 0.95}', status="COMPLETE")
    insert_run(rt, RUNS[2], parameters='{"service_level": Infinity, "speed_kmh": NaN, "x": -1e400}',
               status="FAILED", kpis='{"fill": NaN}')
    set_runtime(rt)
    yield api_client()
    set_runtime(None)
    rt.warehouse.close()


# JSON values of every kind, floats included NaN and the infinities (written as the literals
# Python's json emits), text with any unicode.
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
FIELDS = ["chain_id", "run_date", "overrides", "source_prefix", "request_key"]
OVERRIDES = ["service_level", "horizon_days", "routing_time_limit_s", "fleet_vehicle_ids", "fleet_max_vehicles",
             "service_level_by_category", "speed_kmh", "min_transfer_units", "dataset"]
# Bodies shaped like the API's requests, with right or wrong types in their fields.
request_like = st.fixed_dictionaries({}, optional={
    **{name: values for name in FIELDS},
    "run_date": st.sampled_from(["2026-01-15", "2026-02-30", "9999-99-99", ""]) | values,
    "overrides": st.dictionaries(st.sampled_from(OVERRIDES), values, max_size=3) | values,
})


def _text(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8")


@st.composite
def deep(draw) -> bytes:
    """Nesting past what Python's parser (about 1,000 levels) or the schema checker follow."""
    depth = draw(st.sampled_from([40, 500, 990, 1200, 100_000]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a": ', b"}")]))
    closed = draw(st.booleans())
    inner = opener * depth + b"1" + (closer * depth if closed else b"")
    return draw(st.sampled_from([inner, b'{"overrides": ' + inner + b"}",
                                 b'{"overrides": {"service_level": ' + inner + b"}}"]))


# Numbers JSON requests cannot carry (not JSON, or beyond a double or an INT64), and some that fit.
bad_numbers = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"9" * 30,
                               b"-" + b"9" * 5000, b"1" + b"0" * 19])
numbers = bad_numbers | st.sampled_from([b"1e-400", b"0.5", b"3", b"-0", b"1E2"])


def _override(key: str, number: bytes) -> bytes:
    return b'{"overrides": {"%s": %s}}' % (key.encode(), number)


bodies = (request_like.map(_text) | values.map(_text) | deep()
          | st.builds(_override, st.sampled_from(OVERRIDES), numbers)
          | st.binary(max_size=64) | st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")))
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "APPLICATION/JSON", None])


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert isinstance(response.json().get("error"), str)
    elif response.text and response.headers.get("content-type", "").startswith("application/json"):
        # Every JSON answer is strict JSON: no NaN or Infinity a JSON reader would refuse (the
        # workbench's pages, "/" included, answer HTML).
        json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in an answer"))


@PROPERTY_SETTINGS
@given(path=st.sampled_from(["/runs", "/runs/", "/retrain"]), body=bodies, content_type=content_types)
def test_any_post_body_is_answered_2xx_or_4xx(client, path, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    _check(client.post(path, content=body, headers=headers))


@PROPERTY_SETTINGS
@given(path=st.sampled_from(["/runs", "/retrain"]),
       body=deep() | st.builds(_override, st.sampled_from(OVERRIDES), bad_numbers))
def test_deep_bodies_and_numbers_json_cannot_carry_are_400(client, path, body):
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    _check(response)
    assert response.status_code == 400, response.text


run_ids = st.sampled_from(RUNS) | st.from_regex(r"[A-Za-z0-9_.-]{1,140}", fullmatch=True) | st.text(max_size=40)
paths = (st.builds(lambda run_id, tail: f"/runs/{quote(run_id, safe='')}{tail}", run_ids,
                   st.sampled_from(["", "/", "/orders", "/transfers", "/routes/", "/stops", "/orders/x"]))
         | st.sampled_from(["/plans/latest", "/healthz", "/openapi.json", "/runs", "/retrain", "/", "/plans"])
         | st.text(max_size=40).map(lambda t: "/" + quote(t, safe="/")))


@PROPERTY_SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]), path=paths,
       body=st.just(b"") | bodies)
def test_any_method_and_path_is_answered_2xx_or_4xx(client, method, path, body):
    _check(client.request(method, path, content=body, headers={"Content-Type": "application/json"}))


@PROPERTY_SETTINGS
@given(run_id=st.sampled_from(RUNS), tail=st.sampled_from(["", "/orders", "/transfers", "/routes"]))
def test_stored_runs_are_answered_as_strict_json(client, run_id, tail):
    response = client.get(f"/runs/{run_id}{tail}")
    _check(response)
    if not tail:
        assert response.status_code == 200
        parameters = response.json()["parameters"]
        assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in parameters.values())
