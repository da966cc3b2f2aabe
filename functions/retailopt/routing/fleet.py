"""The fleet a run routes with: the `vehicles` table, narrowed by a what-if run's settings."""

from __future__ import annotations

import pandas as pd

from retailopt.config import ConfigError, Settings


def select_fleet(vehicles: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The vehicles named by `fleet_vehicle_ids`, at most `fleet_max_vehicles` of them.

    A smaller fleet keeps the largest capacities (then the cheapest per kilometre): the what-if
    asks how the plan changes with fewer trucks, not which small van survives. Naming a vehicle
    the fleet does not have is a configuration error, not a silently smaller fleet.
    """
    fleet = vehicles
    if settings.fleet_vehicle_ids:
        wanted = list(dict.fromkeys(settings.fleet_vehicle_ids.split(",")))
        unknown = sorted(set(wanted) - set(vehicles.vehicle_id.astype(str)))
        if unknown:
            raise ConfigError(f"invalid setting fleet_vehicle_ids: no vehicles {unknown} in the fleet")
        fleet = fleet[fleet.vehicle_id.astype(str).isin(wanted)]
    if settings.fleet_max_vehicles is not None and len(fleet) > settings.fleet_max_vehicles:
        ranked = fleet.sort_values(["capacity_units", "cost_per_km", "vehicle_id"], ascending=[False, True, True])
        fleet = ranked.head(settings.fleet_max_vehicles).sort_index()
    return fleet.reset_index(drop=True)
