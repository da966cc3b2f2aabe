"""The fleet a what-if run routes with."""

from __future__ import annotations

import pandas as pd
import pytest

from retailopt.config import ConfigError, Settings, load_settings
from retailopt.routing.fleet import select_fleet


def _fleet() -> pd.DataFrame:
    return pd.DataFrame({
        "vehicle_id": ["VAN-1", "VAN-2", "TRUCK-1", "TRUCK-2"],
        "depot_id": ["DC1"] * 4,
        "capacity_units": [2000, 3000, 12000, 12000],
        "cost_per_km": [0.6, 0.7, 1.2, 1.1],
    })


def test_whole_fleet_by_default():
    assert select_fleet(_fleet(), Settings()).vehicle_id.tolist() == ["VAN-1", "VAN-2", "TRUCK-1", "TRUCK-2"]


def test_named_vehicles_only():
    chosen = select_fleet(_fleet(), Settings(fleet_vehicle_ids="VAN-2,TRUCK-1"))
    assert chosen.vehicle_id.tolist() == ["VAN-2", "TRUCK-1"]


def test_at_most_n_vehicles_keeps_the_largest_then_cheapest():
    assert select_fleet(_fleet(), Settings(fleet_max_vehicles=1)).vehicle_id.tolist() == ["TRUCK-2"]
    assert select_fleet(_fleet(), Settings(fleet_max_vehicles=3)).vehicle_id.tolist() == ["VAN-2", "TRUCK-1",
                                                                                           "TRUCK-2"]
    both = Settings(fleet_vehicle_ids="VAN-1,VAN-2", fleet_max_vehicles=1)
    assert select_fleet(_fleet(), both).vehicle_id.tolist() == ["VAN-2"]


def test_unknown_vehicle_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="TRUCK-9"):
        select_fleet(_fleet(), Settings(fleet_vehicle_ids="VAN-1,TRUCK-9"))


@pytest.mark.parametrize("overrides", [{"fleet_max_vehicles": 0}, {"fleet_vehicle_ids": "VAN 1"},
                                       {"fleet_vehicle_ids": ",VAN-1"}, {"fleet_max_vehicles": 1.5}])
def test_bad_fleet_settings_are_refused(overrides):
    with pytest.raises(ConfigError, match=next(iter(overrides))):
        load_settings(overrides, environ={})
