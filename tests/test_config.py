"""Planning settings: every number finite, of its type and within its documented bounds, whichever
way it arrives (Python, environment variable, `--set` on the command line)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from retailopt import cli, config
from retailopt.config import SETTING_BOUNDS, ConfigError, Settings, load_settings

FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
NUMERIC = sorted(n for n, t in FIELD_TYPES.items() if t.split(" |")[0] in ("int", "float") or "float]" in t)
MAPPINGS = sorted(n for n, t in FIELD_TYPES.items() if t.startswith("Mapping"))


def _is_int(name: str) -> bool:
    return FIELD_TYPES[name].startswith("int")


def _inside(name: str) -> list[float]:
    """Values at and just inside both ends of the range."""
    b = SETTING_BOUNDS[name]
    step = 1 if _is_int(name) else max(abs(b.max - b.min) * 1e-6, 1e-9)
    low = b.min + step if b.min_exclusive else b.min
    high = b.max - step if b.max_exclusive else b.max
    return [low, high]


def _outside(name: str) -> list[float]:
    """Values just outside the range, the exclusive ends themselves, and the non-finite ones."""
    b = SETTING_BOUNDS[name]
    step = 1 if _is_int(name) else max(abs(b.max - b.min) * 1e-6, 1e-9)
    out = [b.min if b.min_exclusive else b.min - step, b.max if b.max_exclusive else b.max + step]
    return out + [math.inf, -math.inf, math.nan]


def _override(name: str, value):
    return {name: {"k": value}} if name in MAPPINGS else {name: value}


def test_every_numeric_setting_has_bounds_and_its_default_is_inside():
    assert set(SETTING_BOUNDS) == set(NUMERIC), "every numeric setting (and only those) needs bounds"
    for name, b in SETTING_BOUNDS.items():
        assert math.isfinite(b.min) and math.isfinite(b.max) and b.min < b.max, name
        default = getattr(Settings(), name)
        values = default.values() if name in MAPPINGS else [default]
        for value in values:
            assert value is None or b.contains(value), f"default {name}={value} outside {b.text}"


@pytest.mark.parametrize("name", sorted(SETTING_BOUNDS))
def test_each_bound_is_enforced_on_every_path(name, monkeypatch):
    b = SETTING_BOUNDS[name]
    kind = "a whole number" if _is_int(name) else "a finite number"
    for value in _inside(name):
        loaded = load_settings(_override(name, value), environ={})
        assert (getattr(loaded, name)["k"] if name in MAPPINGS else getattr(loaded, name)) == value
        env = {config.ENV_PREFIX + name.upper(): (f'{{"k": {value!r}}}' if name in MAPPINGS else repr(value))}
        assert load_settings(environ=env) == loaded
    for value in _outside(name):
        label = f"{name}[k]" if name in MAPPINGS else name
        expected = f"invalid setting {label}=.*: expected {kind} in {b.text}"
        with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            load_settings(_override(name, value), environ={})
        text = repr(value) if math.isfinite(value) else str(value)  # "inf", "nan": what a shell passes
        env = {config.ENV_PREFIX + name.upper(): (f'{{"k": {text}}}' if name in MAPPINGS else text)}
        if name in MAPPINGS and not math.isfinite(value):
            env = {config.ENV_PREFIX + name.upper(): f'{{"k": "{text}"}}'}
        with pytest.raises(ConfigError, match=rf"invalid setting {name}"):
            load_settings(environ=env)
        with pytest.raises(ConfigError, match=rf"invalid setting {name}"):
            Settings(**_override(name, value))


@pytest.mark.parametrize("name, value", [
    ("history_days", 1e7), ("review_period_days", 1e9), ("routing_time_limit_s", math.inf),
    ("order_cost_per_line", math.nan), ("transport_cost_per_unit_km", math.nan),
    ("handling_cost_per_unit", -1e308), ("speed_kmh", math.inf), ("holding_cost_rate", -0.25),
    ("seed", -1), ("seed", 2**32), ("fleet_max_vehicles", 10**6), ("visit_minutes", 1e6),
    ("max_transfer_km", 0.0), ("horizon_days", 10**400), ("speed_kmh", 10**400),
])
def test_the_probe_values_are_refused_with_a_message_naming_the_setting_and_range(name, value):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, environ={})
    message = str(caught.value)
    assert message.startswith(f"invalid setting {name}=") and SETTING_BOUNDS[name].text in message


def test_the_message_reads_as_documented():
    with pytest.raises(ConfigError, match=r"^invalid setting speed_kmh=inf: expected a finite number in 1\.\.130$"):
        load_settings({"speed_kmh": "inf"}, environ={})
    with pytest.raises(ConfigError, match=r"^invalid setting max_transfer_km=0.0: expected a finite number in 0<\.\.2000$"):
        load_settings({"max_transfer_km": 0}, environ={})
    with pytest.raises(ConfigError, match=r"^invalid setting service_level=1.0: expected a finite number in 0\.5\.\.<1 or unset$"):
        load_settings({"service_level": 1}, environ={})
    with pytest.raises(ConfigError, match=r"^invalid setting fleet_max_vehicles=0: expected a whole number in "
                                          r"1\.\.10000 or unset$"):
        load_settings({"fleet_max_vehicles": 0}, environ={})


@pytest.mark.parametrize("name, value", [
    ("horizon_days", 7.5), ("horizon_days", "7.5"), ("seed", "abc"), ("seed", True), ("speed_kmh", False),
    ("horizon_days", "nan"), ("history_days", math.inf), ("speed_kmh", "fast"), ("speed_kmh", [35]),
    ("service_level_by_category", {"dairy": True}), ("service_level_by_category", {"dairy": "high"}),
    ("service_level_by_category", "[0.9]"), ("fill_rate_by_class", {"C": None}),
])
def test_wrong_types_are_refused(name, value):
    with pytest.raises(ConfigError, match=rf"invalid setting {name}"):
        load_settings({name: value}, environ={})


def test_whole_numbers_may_be_written_as_floats_and_numbers_as_strings():
    loaded = load_settings({"horizon_days": 35.0, "history_days": "1e3", "seed": " 7 ", "speed_kmh": "40",
                            "service_level_by_category": '{"dairy": "0.97"}'}, environ={})
    assert (loaded.horizon_days, loaded.history_days, loaded.seed, loaded.speed_kmh) == (35, 1000, 7, 40.0)
    assert type(loaded.horizon_days) is int and type(loaded.history_days) is int
    assert loaded.service_level_by_category == {"dairy": 0.97}
    # Python code may hand numpy scalars straight to the dataclass.
    np = pytest.importorskip("numpy")
    assert Settings(horizon_days=np.int64(14), speed_kmh=np.float32(30)).horizon_days == 14
    with pytest.raises(ConfigError, match="horizon_days"):
        Settings(horizon_days=14.0)  # the dataclass itself takes an int for an int setting


@pytest.mark.parametrize("make", [lambda: 10**5000, lambda: -(10**5000), lambda: "9" * 5000, lambda: 10.0**300],
                         ids=["int", "negative int", "text", "float"])
def test_huge_numbers_get_a_short_config_error(make):
    value = make()  # built here: pytest would print a 5000-digit id otherwise, which Python refuses
    for name in ("horizon_days", "speed_kmh"):
        with pytest.raises(ConfigError, match=rf"^invalid setting {name}=") as caught:
            load_settings({name: value}, environ={})
        assert len(str(caught.value)) < 120
        with pytest.raises(ConfigError, match=rf"^invalid setting {name}="):
            Settings(**{name: value})


def test_optional_numbers_may_be_unset():
    for name in ("fleet_max_vehicles", "transfer_sender_reserve_days", "transfer_sender_min_daily_demand"):
        assert getattr(load_settings({name: None}, environ={}), name) is None
        assert getattr(load_settings(environ={config.ENV_PREFIX + name.upper(): ""}), name) is None


def test_cli_set_is_checked_before_anything_runs(tmp_path, capsys):
    code = cli.main(["run", "--data-dir", str(tmp_path), "--quiet", "--set", "speed_kmh=inf"])
    assert code == 2
    assert "invalid setting speed_kmh=inf: expected a finite number in 1..130" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing may be written for a refused setting"


def test_environment_variables_are_checked(monkeypatch):
    monkeypatch.setenv("RETAILOPT_REVIEW_PERIOD_DAYS", "1e9")
    with pytest.raises(ConfigError, match=r"review_period_days=1000000000: expected a whole number in 1\.\.90"):
        load_settings()


@hypothesis_settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(set(SETTING_BOUNDS) - set(MAPPINGS))),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30),
                       st.text(max_size=12), st.booleans()))
def test_any_value_is_either_loaded_within_bounds_or_refused_with_a_config_error(name, value):
    try:
        loaded = load_settings({name: value}, environ={})
    except ConfigError as exc:
        assert str(exc).startswith(f"invalid setting {name}=")
        return
    number = getattr(loaded, name)
    assert not isinstance(number, bool) and math.isfinite(number) and SETTING_BOUNDS[name].contains(number)
    assert isinstance(number, int) if _is_int(name) else isinstance(number, float)


def test_release_mode_is_review_or_auto():
    """A plan waits for review unless the deployment says there is no review step."""
    from retailopt.config import ConfigError, load_settings

    assert load_settings({}, environ={}).release_mode == "review"
    assert load_settings({}, environ={"RETAILOPT_RELEASE_MODE": "auto"}).release_mode == "auto"
    with pytest.raises(ConfigError, match="release_mode='later'"):
        load_settings({"release_mode": "later"}, environ={})
