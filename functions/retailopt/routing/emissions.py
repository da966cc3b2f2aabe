"""CO2e of routes: kg per km driven, per vehicle.

A vehicle's `co2_kg_per_km` comes from the `vehicles` file; where it is empty (or the column is
left out) the default is the UK government's greenhouse-gas conversion factor for a diesel heavy
goods vehicle, all HGVs, average laden: 0.89061 kg CO2e per km (DESNZ/DEFRA "Greenhouse gas
reporting: conversion factors 2024", Delivery vehicles, HGV (all diesel)). Vans emit less (the
same tables give about a quarter to a third of that per km): give them their own factor.

With `carbon_price_per_kg` > 0 each vehicle's cost per km in the route request includes
co2_kg_per_km x that price, so the solver minimises cost plus carbon (a what-if); the routes
table reports `co2_kg` and the `carbon_cost` part of `cost`.
"""

from __future__ import annotations

import math

import pandas as pd

DEFAULT_CO2_KG_PER_KM = 0.89061
SOURCE = ("DESNZ/DEFRA Greenhouse gas reporting: conversion factors 2024, Delivery vehicles, "
          "HGV (all diesel), all HGVs, average laden")


def co2_kg_per_km(value: object) -> float:
    """The vehicle's factor, or the default when it has none."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return DEFAULT_CO2_KG_PER_KM
    return float(value)


def factors(vehicles: pd.DataFrame) -> dict[str, float]:
    """vehicle_id -> kg CO2e per km."""
    column = vehicles["co2_kg_per_km"] if "co2_kg_per_km" in vehicles else pd.Series(None, index=vehicles.index)
    return {str(v): co2_kg_per_km(f) for v, f in zip(vehicles["vehicle_id"], column)}


def with_emissions(routes: pd.DataFrame, vehicles: pd.DataFrame, carbon_price_per_kg: float) -> pd.DataFrame:
    """Routes with `co2_kg` (distance x the vehicle's factor) and `carbon_cost` (co2 x the price)."""
    per_km = factors(vehicles)
    if routes.empty:
        return routes.assign(co2_kg=pd.Series(dtype=float), carbon_cost=pd.Series(dtype=float))
    co2 = routes["distance_km"].astype(float) * routes["vehicle_id"].astype(str).map(per_km).astype(float)
    return routes.assign(co2_kg=co2.round(3), carbon_cost=(co2 * carbon_price_per_kg).round(4))
