"""Stores, the distribution centre, the fleet and the current stock snapshot."""

from __future__ import annotations

from datetime import date

import math

import numpy as np
import pandas as pd

from .places import DC_PLACE, METRO_BBOX, PLACES


def make_stores(rng: np.random.Generator, n_stores: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The stores table without capacity, plus per-store size and weekly-profile tilt."""
    if n_stores <= len(PLACES):
        picks = rng.choice(len(PLACES), n_stores, replace=False)
    else:
        picks = np.concatenate([rng.permutation(len(PLACES)) for _ in range(-(-n_stores // len(PLACES)))])[:n_stores]
    chosen = sorted((PLACES[i] for i in picks), key=lambda p: (p.region, p.name))
    counts: dict[str, int] = {}
    names, lat, lon = [], np.empty(n_stores), np.empty(n_stores)
    for i, place in enumerate(chosen):
        counts[place.name] = counts.get(place.name, 0) + 1
        names.append(f"{place.name} Market" + (f" {counts[place.name]}" if counts[place.name] > 1 else ""))
        spread = 0.006 * counts[place.name]
        lat[i] = place.latitude + rng.uniform(-spread, spread)
        # Shift only westwards: several places sit on the Lake Michigan shore.
        lon[i] = place.longitude - rng.uniform(0.0, 1.5 * spread)
    south, west, north, east = METRO_BBOX
    lat, lon = np.clip(lat, south, north), np.clip(lon, west, east)
    region = np.array([p.region for p in chosen])
    city = region == "City"
    # City stores are smaller formats with early delivery windows (curb rules, traffic).
    size = np.clip(rng.lognormal(0.0, 0.35, n_stores) * np.where(city, 0.8, 1.1), 0.4, 2.5)
    tilt = np.where(city, rng.uniform(0.5, 0.9, n_stores), rng.uniform(0.9, 1.4, n_stores))
    open_h = np.where(city, rng.choice([5, 6], n_stores), rng.choice([6, 6, 7], n_stores))
    close_h = np.where(city, rng.choice([11, 12], n_stores), rng.choice([13, 14, 14, 15], n_stores))
    open_m = rng.choice([0, 0, 30], n_stores)
    stores = pd.DataFrame({
        "store_id": [f"S{i + 1:03d}" for i in range(n_stores)],
        "name": names,
        "latitude": np.round(lat, 6),
        "longitude": np.round(lon, 6),
        "region": region,
        "receiving_open": [f"{h:02d}:{m:02d}:00" for h, m in zip(open_h, open_m)],
        "receiving_close": [f"{h:02d}:00:00" for h in close_h],
        "capacity_units": np.zeros(n_stores, dtype=np.int64),  # set from the stock snapshot
    })
    return stores, size, tilt


def make_distribution_centers() -> pd.DataFrame:
    return pd.DataFrame({
        "dc_id": ["DC01"],
        "name": [DC_PLACE.name],
        "latitude": [DC_PLACE.latitude],
        "longitude": [DC_PLACE.longitude],
        "region": [DC_PLACE.region],
        "open_time": ["04:00:00"],
        "close_time": ["22:00:00"],
        "lead_time_days": [2],
    })


# A box truck's load, and the shift every sample vehicle works.
TRUCK_UNITS = 12000
SHIFT_START_S, SHIFT_END_S = 6 * 3600, 16 * 3600
_EARTH_RADIUS_M = 6_371_008.8


def _round_trips_s(stores: pd.DataFrame, dc_latitude: float, dc_longitude: float) -> np.ndarray:
    """Seconds of a round trip from the centre to each store and back with a load: straight-line
    kilometres at the default routing speed, a visit at each end (the local solver's own view of
    a trip, `Settings.speed_kmh` and `visit_minutes`)."""
    from retailopt.config import Settings

    lat1, lng1 = math.radians(dc_latitude), math.radians(dc_longitude)
    lat2, lng2 = np.radians(stores["latitude"].to_numpy()), np.radians(stores["longitude"].to_numpy())
    h = np.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    meters = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return 2 * meters / (Settings.speed_kmh / 3.6) + 2 * Settings.visit_minutes * 60.0


def trucks_needed(stores: pd.DataFrame, weekly_units: np.ndarray, dc_latitude: float, dc_longitude: float) -> int:
    """Box trucks enough to carry a week of each store's sales from the centre in one day.

    A chain orders for its review period (a week) at once, so an order day carries a week of
    sales. Each store's week is `ceil(units / TRUCK_UNITS)` full loads, each a round trip; the
    trucks' driving hours must hold them all. A truck's useful day runs from its shift start until
    it is back from the last delivery a store still receives (stores close receiving between 11:00
    and 15:00), weighted by the driving each store needs. Counting loads per shift (five, before
    issue 17) ignored distance and receiving windows: at 100 stores x 1,000 products it gave 80
    trucks where the drives take about 105, and half the loads went unrouted.
    """
    trips = _round_trips_s(stores, dc_latitude, dc_longitude)
    loads = np.ceil(np.asarray(weekly_units, dtype=float) / TRUCK_UNITS)
    driving = loads * trips
    if driving.sum() <= 0:
        return 0
    close = pd.to_timedelta(stores["receiving_close"].astype(str)).dt.total_seconds().to_numpy()
    useful = np.clip(np.minimum(close + trips / 2, SHIFT_END_S) - SHIFT_START_S, trips, None)
    per_truck = float((useful * driving).sum() / driving.sum())
    return math.ceil(float(driving.sum()) / per_truck)


def make_vehicles(rng: np.random.Generator, stores: pd.DataFrame, dc: pd.Series,
                  weekly_units: np.ndarray | None = None) -> pd.DataFrame:
    """A fleet sized for the chain: box trucks enough to deliver a week of its sales in one day
    (`trucks_needed`; `weekly_units` per store, in the stores' order)."""
    dc_id = str(dc["dc_id"])
    # A van for about six stores: transfers between stores grow with the chain (capped at six
    # before issue 17, when a 100-store chain's day held 946 store-to-store loads for 6 vans).
    n_vans = max(2, round(len(stores) / 6))
    # Box trucks carry the distribution centre's replenishment; vans mostly carry transfers.
    weekly = np.zeros(len(stores)) if weekly_units is None else weekly_units
    n_trucks = max(1, len(stores) // 12,
                   trucks_needed(stores, weekly, float(dc["latitude"]), float(dc["longitude"])))
    depots = [dc_id] * (n_vans + n_trucks)
    if len(stores) >= 10:
        # The largest store keeps its own van for transfers in its neighbourhood.
        depots.append(str(stores.loc[stores["capacity_units"].idxmax(), "store_id"]))
    n = len(depots)
    cap = rng.choice(np.array([2000, 2500, 3000]), n)
    cap[n_vans:n_vans + n_trucks] = TRUCK_UNITS
    return pd.DataFrame({
        "vehicle_id": [f"V{i + 1:02d}" for i in range(n)],
        "depot_id": depots,
        "capacity_units": cap,
        "capacity_kg": np.round(cap * rng.uniform(1.1, 1.4, n), -1),
        "cost_per_km": np.round(rng.uniform(0.55, 0.90, n), 2),
        "cost_per_hour": np.round(rng.uniform(30.0, 40.0, n), 2),
        "fixed_cost": np.round(rng.uniform(60.0, 120.0, n), 0),
        # Left empty: the cited default factor (retailopt.routing.emissions) stands for every vehicle.
        "co2_kg_per_km": pd.Series([None] * n, dtype="float64"),
        "shift_start": [f"{SHIFT_START_S // 3600:02d}:00:00"] * n,
        "shift_end": [f"{SHIFT_END_S // 3600:02d}:00:00"] * n,
    })


# Shares of store x product cells that start short or overstocked (the rest is healthy).
SHORT_SHARE, OVER_SHARE = 0.05, 0.05


def make_inventory(rng: np.random.Generator, stores: pd.DataFrame, products: pd.DataFrame,
                   recent_units: np.ndarray, expected: np.ndarray, snapshot: date) -> pd.DataFrame:
    """Stock snapshot with real imbalances; also sets stores.capacity_units in place.

    recent_units and expected are (S, P) mean daily units over the last weeks (observed and
    latent). Cover is judged on observed sales, as a planner would.
    """
    n_store, n_prod = recent_units.shape
    demand = np.where(recent_units > 0, recent_units, expected)
    pack = products["case_pack"].to_numpy()[None, :].repeat(n_store, axis=0)
    u = rng.random((n_store, n_prod))
    state = np.where(u < SHORT_SHARE, 0, np.where(u > 1 - OVER_SHARE, 2, 1))
    # Guarantee that for many products one store runs short while another sits on stock,
    # the situation store-to-store transfers exist for.
    if n_store >= 2:
        paired = rng.random(n_prod) < 0.15
        active = (demand > 0).sum(axis=0) >= 2
        if not (paired & active).any() and active.any():
            paired[np.argmax(np.where(active, demand.sum(axis=0), -1))] = True
        for p in np.flatnonzero(paired & active):
            s_short, s_over = rng.choice(np.flatnonzero(demand[:, p] > 0), 2, replace=False)
            state[s_short, p], state[s_over, p] = 0, 2
    short = np.floor(demand * rng.uniform(0.0, 2.5, demand.shape)) * (rng.random(demand.shape) > 0.5)
    healthy = np.maximum(np.round(demand * rng.uniform(6.0, 21.0, demand.shape)),
                         rng.integers(1, 4, demand.shape))
    over = np.ceil(demand * rng.uniform(65.0, 150.0, demand.shape)) + rng.integers(1, 4, demand.shape) + np.floor(
        pack * rng.random(demand.shape))
    on_hand = np.select([state == 0, state == 1], [short, healthy], over)
    # Discontinued items: no demand left, some dead stock on the shelves.
    on_hand = np.where(demand > 0, on_hand, rng.integers(0, 6, demand.shape)).astype(np.int64)
    # Open distribution-centre orders, more likely where stock is low.
    p_order = np.where(state == 0, 0.25, 0.06) * (demand > 0)
    on_order = ((rng.random(demand.shape) < p_order) * pack * rng.integers(1, 3, demand.shape)).astype(np.int64)
    shelf = np.maximum(np.ceil(demand * rng.uniform(21.0, 42.0, demand.shape)), np.maximum(pack, 4))
    max_capacity = np.maximum(shelf, on_hand + on_order + 1 + np.floor(pack * rng.random(demand.shape))).astype(np.int64)
    stores["capacity_units"] = (np.ceil(max_capacity.sum(axis=1) * rng.uniform(1.0, 1.25, n_store) / 100.0)
                                * 100).astype(np.int64)
    s_idx, p_idx = np.divmod(np.arange(n_store * n_prod), n_prod)
    return pd.DataFrame({
        "snapshot_date": snapshot.isoformat(),
        "store_id": stores["store_id"].to_numpy()[s_idx],
        "product_id": products["product_id"].to_numpy()[p_idx],
        "on_hand": on_hand.ravel(),
        "on_order": on_order.ravel(),
        "max_capacity": max_capacity.ravel(),
    })
