"""CO2e per route and the carbon price of the what-if: vehicle factors, the request, the solver."""

from __future__ import annotations

import pandas as pd
import pytest

from retailopt.config import ConfigError, Settings, load_settings
from retailopt.routing import build_request, response_to_tables, solve_local
from retailopt.routing.emissions import DEFAULT_CO2_KG_PER_KM, factors, with_emissions
from retailopt.routing.tables import locations_frame
from test_routing import RUN, _dcs, _orders, _products, _stores, _transfers, _vehicles


def _fleet() -> pd.DataFrame:
    """Two identical vehicles but for their emissions: V0 a clean one, V1 a dirty one that is cheaper."""
    fleet = _vehicles(2, capacity=300)
    fleet["co2_kg_per_km"] = [0.2, 1.5]
    fleet["cost_per_km"] = [0.9, 0.8]
    return fleet


def test_a_vehicle_without_a_factor_gets_the_cited_default():
    fleet = _vehicles(3)
    fleet["co2_kg_per_km"] = [0.25, None, float("nan")]
    assert factors(fleet) == {"V0": 0.25, "V1": DEFAULT_CO2_KG_PER_KM, "V2": DEFAULT_CO2_KG_PER_KM}
    assert factors(_vehicles(1)) == {"V0": DEFAULT_CO2_KG_PER_KM}  # the column left out
    routes = pd.DataFrame({"vehicle_id": ["V0", "V1"], "distance_km": [100.0, 10.0]})
    out = with_emissions(routes, fleet, carbon_price_per_kg=0.1)
    assert out.co2_kg.tolist() == [25.0, round(10 * DEFAULT_CO2_KG_PER_KM, 3)]
    assert out.carbon_cost.tolist() == pytest.approx([2.5, 10 * DEFAULT_CO2_KG_PER_KM * 0.1], abs=1e-4)


def test_the_carbon_price_is_part_of_the_cost_per_km():
    frames = dict(transfers=_transfers(), orders=_orders(), stores=_stores(), dcs=_dcs(), vehicles=_fleet(),
                  products=_products(), run_date=RUN)
    plain = build_request(**frames, settings=Settings(routing_time_limit_s=2))
    priced = build_request(**frames, settings=Settings(routing_time_limit_s=2, carbon_price_per_kg=0.5))
    assert [v.cost_per_kilometer for v in plain.model.vehicles] == pytest.approx([0.9, 0.8])
    assert [v.cost_per_kilometer for v in priced.model.vehicles] == pytest.approx([0.9 + 0.1, 0.8 + 0.75])


def _solved(price: float) -> pd.DataFrame:
    settings = Settings(routing_time_limit_s=2, carbon_price_per_kg=price)
    fleet = _fleet()
    request = build_request(_transfers(), _orders(), _stores(), _dcs(), fleet, _products(), run_date=RUN,
                            settings=settings)
    routes, _ = response_to_tables(request, solve_local(request, time_limit_s=2), run_date=RUN,
                                   locations=locations_frame(_stores(), _dcs()))
    return with_emissions(routes, fleet, price)


def test_a_carbon_price_moves_the_work_to_the_cleaner_vehicle():
    cheap, green = _solved(0.0), _solved(1.0)
    # One vehicle carries the day either way: the cheaper one without a price, the cleaner one with it.
    assert set(cheap.vehicle_id) == {"V1"} and set(green.vehicle_id) == {"V0"}
    assert green.co2_kg.sum() < cheap.co2_kg.sum()
    assert cheap.carbon_cost.sum() == 0 and green.carbon_cost.sum() == pytest.approx(green.co2_kg.sum(), rel=1e-3)


def test_the_carbon_price_is_bounded_like_every_setting():
    assert load_settings({"carbon_price_per_kg": 0.08}, environ={}).carbon_price_per_kg == 0.08
    for bad in (-1, 101, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="carbon_price_per_kg"):
            load_settings({"carbon_price_per_kg": bad}, environ={})
