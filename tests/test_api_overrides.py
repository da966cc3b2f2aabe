"""What-if overrides of POST /runs: out-of-range, non-finite and ill-typed values are refused with
400 and a message naming the setting, before anything is published; the OpenAPI contract states
the same bounds as retailopt.config; a message that carries such overrides anyway (published by
an older client, or by hand) is rejected by the handler, not retried."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import functions_framework
import pytest
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from starlette.testclient import TestClient

from retailopt.config import SETTING_BOUNDS, Settings, load_settings
from retailopt.services import handlers, messages
from retailopt.services.api import openapi
from retailopt.services.local import main_source
from retailopt.services.runtime import Runtime, set_runtime
from retailopt.services.settings import ServiceSettings
from retailopt.services.storage import LocalStore

JSON = {"Content-Type": "application/json"}


class RecordingPublisher:
    """Stands in for Pub/Sub (no emulator runs here): keeps what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def publish(self, topic, message):
        return self.publish_many(topic, [message])[0]

    def publish_many(self, topic, batch):
        self.sent.extend((topic, dict(m)) for m in batch)
        return [str(len(self.sent))] * len(batch)


@pytest.fixture()
def runtime(tmp_path):
    from retailopt.warehouse import open_warehouse

    settings = load_settings({"data_dir": tmp_path / "data", "chain_id": "acme"}, environ={})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    rt = Runtime(settings, ServiceSettings(max_event_age_s=3600, max_attempts=3), warehouse, RecordingPublisher(),
                 LocalStore(tmp_path / "raw"), LocalStore(tmp_path / "artifacts"))
    set_runtime(rt)
    yield rt
    set_runtime(None)
    warehouse.close()


def _api() -> TestClient:
    return TestClient(functions_framework.create_app("api", str(main_source())), raise_server_exceptions=False)


def _post_runs(api: TestClient, overrides_json: str):
    body = '{"run_date": "2026-01-15", "overrides": {' + overrides_json + "}}"
    return api.post("/runs", content=body.encode(), headers=JSON)


def _message(name: str, shown: str) -> str:
    kind = "a whole number" if _integer(name) else "a finite number"
    return f"invalid setting {name}={shown}: expected {kind} in {SETTING_BOUNDS[name].text}"


def _integer(name: str) -> bool:
    return str(Settings.__dataclass_fields__[name].type).startswith("int")


@pytest.mark.parametrize("overrides_json, error", [
    # The probe's values: each answered with retailopt.config's own message.
    ('"history_days": 1e7', _message("history_days", "10000000")),
    ('"review_period_days": 1e9', _message("review_period_days", "1000000000")),
    ('"handling_cost_per_unit": -1e308', _message("handling_cost_per_unit", "-1e+308")),
    ('"speed_kmh": 200', _message("speed_kmh", "200.0")),
    ('"holding_cost_rate": -0.25', _message("holding_cost_rate", "-0.25")),
    ('"routing_time_limit_s": 1e6', _message("routing_time_limit_s", "1000000.0")),
    ('"seed": -1', _message("seed", "-1")),
    ('"seed": 4294967296', _message("seed", "4294967296")),
    ('"visit_minutes": 1e300', _message("visit_minutes", "1e+300")),
    ('"max_transfer_km": 0', _message("max_transfer_km", "0.0")),
    ('"fleet_max_vehicles": 0', _message("fleet_max_vehicles", "0") + " or unset"),
    ('"service_level_by_category": {"dairy": 1.5}', _message("service_level_by_category", "1.5").replace(
        "service_level_by_category=", "service_level_by_category[dairy]=")),
    # Not finite, or too large for a double: refused before or by retailopt.config, never a 500.
    ('"routing_time_limit_s": Infinity', None),
    ('"routing_time_limit_s": 1e400', None),
    ('"handling_cost_per_unit": NaN', None),
    ('"transport_cost_per_unit_km": NaN', None),
    ('"speed_kmh": -Infinity', None),
    ('"horizon_days": NaN', None),
    ('"seed": 1e400', None),
    ('"fleet_max_vehicles": 1' + "0" * 400, None),
    ('"visit_minutes": 1' + "0" * 400, None),
    ('"service_level_by_category": {"dairy": NaN}', None),
    ('"service_level_by_category": {"dairy": 1e400}', None),
    # Wrong types: the contract's JSON Schema answers, naming the field.
    ('"min_transfer_units": true', "min_transfer_units"),
    ('"horizon_days": 7.5', "horizon_days"),
])
def test_out_of_range_overrides_get_400_and_nothing_is_published(runtime, overrides_json, error):
    response = _post_runs(_api(), overrides_json)
    assert response.status_code == 400, response.text
    if error is not None and error.startswith("invalid setting"):
        assert response.json() == {"error": error}
    elif error is not None:
        assert error in response.json()["error"]
    assert runtime.publisher.sent == []


def test_edges_of_the_ranges_are_accepted(runtime):
    api = _api()
    fields = _override_schema()["properties"]
    tried = 0
    for name in sorted(set(SETTING_BOUNDS) & set(fields)):
        b = SETTING_BOUNDS[name]
        for value, excluded in ((b.min, b.min_exclusive), (b.max, b.max_exclusive)):
            if excluded:
                continue
            value = int(value) if _integer(name) else value
            override = {"dairy": value} if fields[name]["type"] == "object" else value
            response = api.post("/runs", json={"run_date": "2026-01-15", "overrides": {name: override}})
            assert response.status_code == 202, (name, value, response.text)
            tried += 1
    assert len(runtime.publisher.sent) == tried > 20


def _override_schema() -> dict:
    return openapi()["components"]["schemas"]["StartRunRequest"]["properties"]["overrides"]


def test_config_is_the_one_place_of_the_bounds():
    """The contract types each what-if setting as config.py does and leaves its range to config.py
    (which answers with the setting and its range), so the two can never disagree."""
    props = _override_schema()["properties"]
    assert set(props) == handlers.WHAT_IF_FIELDS - {"run_date"}, "the contract lists exactly the what-if settings"
    for name, spec in props.items():
        number = spec["additionalProperties"] if spec.get("type") == "object" else spec
        assert not {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(number), name
        if name in SETTING_BOUNDS:
            assert number["type"] == ("integer" if _integer(name) else "number"), name


def test_a_message_with_bad_overrides_is_rejected_not_retried(runtime):
    """Published without the API's check: the import service acknowledges it with the reason."""
    message = messages.make_message("start", chain_id="acme", run_id="acme-20260115-inf", run_date="2026-01-15",
                                    overrides={"speed_kmh": math.inf, "history_days": 10_000_000})
    now = datetime.now(timezone.utc)
    event = CloudEvent({"id": "bad-overrides", "source": "//pubsub.googleapis.com/projects/p/topics/retailopt-import",
                        "type": messages.PUBSUB_EVENT_TYPE, "time": now.isoformat()},
                       messages.pubsub_event_data(message, "bad-overrides", now, "projects/p/subscriptions/s"))
    headers, body = to_structured(event)
    client = functions_framework.create_app("import_files", str(main_source())).test_client()
    assert client.post("/", headers=headers, data=body).status_code == 200  # acknowledged: no redelivery
    record = runtime.ledger.get("event:" + event["source"] + "/bad-overrides")
    assert record["status"] == "REJECTED"
    assert "invalid setting" in record["outcome"] and ("speed_kmh" in record["outcome"]
                                                      or "history_days" in record["outcome"])
    assert runtime.publisher.sent == []
