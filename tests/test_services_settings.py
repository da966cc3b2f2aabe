import re
from pathlib import Path

import pytest

from retailopt.config import ConfigError
from retailopt.services import settings as service_settings
from retailopt.services.bus import LocalBus
from retailopt.services import messages


def test_every_variable_read_is_in_the_one_list():
    source = Path(service_settings.__file__).read_text()
    read = set(re.findall(r'"(RETAILOPT_[A-Z_]+)"', source.split("SERVICE_ENV_VARS: list[str] = [")[0]
                          + source.split("def load_service_settings")[1]))
    # RETAILOPT_PROJECT belongs to the planning settings (retailopt.config), read here as a fallback.
    assert read - {"RETAILOPT_PROJECT"} == set(service_settings.SERVICE_ENV_VARS)
    assert service_settings.SERVICE_ENV_VARS == sorted(service_settings.SERVICE_ENV_VARS)


def test_load_and_validate():
    loaded = service_settings.load_service_settings({
        "RETAILOPT_RAW_BUCKET": "acme-raw", "RETAILOPT_TOPIC_PREFIX": "ro", "RETAILOPT_AUTH_AUDIENCE": "https://x",
        "RETAILOPT_ALLOWED_CALLERS": "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com",
        "RETAILOPT_MAX_EVENT_AGE_S": "600"})
    assert loaded.raw_bucket == "acme-raw" and loaded.max_event_age_s == 600
    assert loaded.allowed_callers == ("a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com")
    assert loaded.topic("reorders") == "ro-reorders" and loaded.auth_run_service is None
    receiver = service_settings.load_service_settings({
        "RETAILOPT_AUTH_AUDIENCE": "https://x", "RETAILOPT_AUTH_RUN_SERVICE": "ro-import",
        "RETAILOPT_ALLOWED_CALLERS": "a@p.iam.gserviceaccount.com"})
    assert receiver.auth_run_service == "ro-import"
    for env, fragment in [({"RETAILOPT_RAW_BUCKET": "Bad Bucket"}, "raw_bucket"),
                          ({"RETAILOPT_AUTH_AUDIENCE": "https://x"}, "allowed_callers"),
                          ({"RETAILOPT_AUTH_RUN_SERVICE": "retailopt-import"}, "auth_run_service"),
                          ({"RETAILOPT_AUTH_AUDIENCE": "https://x", "RETAILOPT_AUTH_RUN_SERVICE": "a.run.app",
                            "RETAILOPT_ALLOWED_CALLERS": "a@p.iam.gserviceaccount.com"}, "auth_run_service"),
                          ({"RETAILOPT_MAX_EVENT_AGE_S": "soon"}, "MAX_EVENT_AGE_S"),
                          ({"RETAILOPT_EVENT_BUS": "kafka"}, "event_bus")]:
        with pytest.raises(ConfigError, match=fragment):
            service_settings.load_service_settings(env)


def test_local_bus_retries_then_dead_letters():
    calls = []

    def deliver(target, headers, body):
        calls.append(target)
        return 500 if target == "forecast" else 200

    bus = LocalBus(deliver=deliver, max_attempts=3, backoff_s=0.001)
    bus.publish("forecast", messages.make_message("forecast", chain_id="a", run_id="r"))
    bus.publish("plan", messages.make_message("plan", chain_id="a", run_id="r"))
    bus.publish("published", messages.make_message("published", chain_id="a", run_id="r", summary={}))
    assert bus.wait_idle(10)
    assert calls.count("forecast") == 3 and calls.count("plan") == 1
    assert [(d.target, status) for d, status in bus.dead_letters] == [("forecast", 500)]
    assert [t for t, _ in bus.published] == ["forecast", "plan", "published"]
    bus.close()


@pytest.mark.parametrize("env, fragment", [
    # max_attempts=1 would give up on the first delivery, before the step ever ran.
    ({"RETAILOPT_MAX_ATTEMPTS": "1"}, r"max_attempts=1: expected a whole number in 2\.\.100"),
    ({"RETAILOPT_MAX_ATTEMPTS": "101"}, r"max_attempts=101: expected a whole number in 2\.\.100"),
    ({"RETAILOPT_MAX_ATTEMPTS": "4.5"}, "MAX_ATTEMPTS"),
    ({"RETAILOPT_MAX_EVENT_AGE_S": "nan"}, r"max_event_age_s=nan: expected a finite number in 1\.\.604800"),
    ({"RETAILOPT_MAX_EVENT_AGE_S": "inf"}, r"max_event_age_s=inf: expected a finite number in 1\.\.604800"),
    ({"RETAILOPT_MAX_EVENT_AGE_S": "0"}, "max_event_age_s"),
])
def test_service_numbers_are_finite_and_bounded(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        service_settings.load_service_settings(env)


def test_max_attempts_bounds():
    assert service_settings.load_service_settings({"RETAILOPT_MAX_ATTEMPTS": "2"}).max_attempts == 2
    assert service_settings.load_service_settings({"RETAILOPT_MAX_ATTEMPTS": "100"}).max_attempts == 100
    for bad in (1, 0, True, 2.5):
        with pytest.raises(ConfigError, match="max_attempts"):
            service_settings.ServiceSettings(max_attempts=bad)
