"""`retailopt bench-workbench`: page latency of the planner workbench on a chain-sized plan.

Builds the tables of two complete runs of N stores × M products (default 1,000 × 20,000 = 20
million positions each) directly in a DuckDB warehouse file: synthetic rows shaped like the
planner's (inventory_policy, plan_exceptions, transfers, replenishment_orders, routes,
route_stops, runs; stores, products, distribution_centers, vehicles and the stock snapshot),
drawn with numpy in the proportions of the sample chain's plan (about 16 % of positions at risk
after the plan, 7 % overstocked, 29 % with a DC order line, 1 % with a transfer), not by running
the planner. The second run is a what-if of the first (a tenth of the order lines change). The
drill-down's sales (13 weeks, loaded day by day) and forecasts (28 days) are built for the
positions of the first 20 stores only: at the full size those tables would hold billions of rows.
Each run's workbench tables are then written by the same code the publish step runs
(`retailopt.workbench.store.publish`), timed.

Then `retailopt serve` starts on a free loopback port on that warehouse (the same Api and DuckDB
runtime, open local mode) and every workbench page is requested `--repeats` times, one request
at a time, each time with other filters, sort keys or pages drawn at random, so no answer is a
repeat of the one before: runs, overview, the worklist's first page, filtered by store, category
and reason, a deep page, transfers and DC orders sorted, filtered and deep, a position's
drill-down, a page of routes (timeline) and its map's data, and the comparison of the two runs. Prints p50/p95/max per page, the server's peak memory and the machine's load,
and writes them as JSON. Target: every page's p95 at most `--target-p95-ms` (1,000 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from retailopt.benchmarks.api import wait_until_serving

RUN_DATE = date(2026, 1, 15)
CATEGORIES = ("bakery", "beverages", "canned goods", "cereal", "cleaning", "dairy", "deli", "frozen", "grocery",
              "health", "household", "meat", "paper goods", "personal care", "pet", "produce", "seafood",
              "snacks", "spices", "baby")
TOWNS = ("Aurora", "Bolingbrook", "Cicero", "Des Plaines", "Elgin", "Evanston", "Gary", "Hammond", "Joliet",
         "Kenosha", "Naperville", "Oak Park", "Peoria", "Rockford", "Schaumburg", "Skokie", "Waukegan",
         "Wheaton", "Champaign", "Kankakee")
NEIGHBOURS = np.array([1, 2, 3, 5, 8, 13, 21, 34])  # a transfer goes to one of these store offsets
STATUS = ("OK", "STOCKOUT_RISK", "OVERSTOCK")
CHUNK_POSITIONS = 1_000_000


def _peak_rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --- the synthetic plan ------------------------------------------------------------------------

def _dimensions(con: Any, n_stores: int, n_products: int, rng: np.random.Generator) -> dict[str, Any]:
    n_dcs = max(1, n_stores // 100)
    dcs = pd.DataFrame({
        "dc_id": [f"DC{i + 1:02d}" for i in range(n_dcs)],
        "name": [f"{TOWNS[i % len(TOWNS)]} DC {i + 1}" for i in range(n_dcs)],
        "latitude": rng.uniform(40.5, 43.0, n_dcs), "longitude": rng.uniform(-90.0, -86.0, n_dcs),
        "region": [f"R{i + 1:02d}" for i in range(n_dcs)],
        "open_time": "04:00:00", "close_time": "22:00:00", "lead_time_days": 2})
    store_dc = np.arange(n_stores) % n_dcs
    stores = pd.DataFrame({
        "store_id": [f"S{i:05d}" for i in range(n_stores)],
        "name": [f"{TOWNS[i % len(TOWNS)]} Market {i // len(TOWNS) + 1}" for i in range(n_stores)],
        "latitude": dcs.latitude.to_numpy()[store_dc] + rng.normal(0, 0.3, n_stores),
        "longitude": dcs.longitude.to_numpy()[store_dc] + rng.normal(0, 0.4, n_stores),
        "region": dcs.region.to_numpy()[store_dc],
        "receiving_open": rng.choice(["05:00:00", "05:30:00", "06:00:00", "07:00:00"], n_stores),
        "receiving_close": rng.choice(["11:00:00", "12:00:00", "14:00:00", "16:00:00"], n_stores),
        "capacity_units": 0})
    price = np.round(rng.lognormal(1.3, 0.8, n_products).clip(0.49, 400.0), 2)
    products = pd.DataFrame({
        "product_id": [f"P{j:06d}" for j in range(n_products)],
        "name": [f"{CATEGORIES[j % len(CATEGORIES)].title()} item {j:06d}" for j in range(n_products)],
        "category": [CATEGORIES[j % len(CATEGORIES)] for j in range(n_products)],
        "unit_cost": np.round(price * rng.uniform(0.45, 0.75, n_products), 2), "price": price,
        "case_pack": rng.choice([6, 12, 24], n_products),
        "unit_weight_kg": np.round(rng.uniform(0.1, 3.0, n_products), 3),
        "unit_volume_l": np.round(rng.uniform(0.1, 4.0, n_products), 3)})
    n_vehicles = max(2, n_stores // 4)
    vehicles = pd.DataFrame({
        "vehicle_id": [f"V{i + 1:04d}" for i in range(n_vehicles)],
        "depot_id": [dcs.dc_id.iat[i % n_dcs] for i in range(n_vehicles)],
        "capacity_units": 2400, "capacity_kg": 12000.0, "cost_per_km": 1.1, "cost_per_hour": 32.0,
        "fixed_cost": 120.0, "shift_start": "05:00:00", "shift_end": "17:00:00"})
    for table, frame in (("distribution_centers", dcs), ("stores", stores), ("products", products),
                         ("vehicles", vehicles)):
        con.register("_frame", frame)
        con.execute(f"INSERT INTO retailopt.{table} BY NAME SELECT * FROM _frame")
        con.unregister("_frame")
    return {"stores": stores, "products": products, "dcs": dcs, "store_dc": store_dc, "vehicles": vehicles}


def _positions(con: Any, dims: dict[str, Any], run_id: str, rng: np.random.Generator) -> dict[str, int]:
    """inventory, inventory_policy, plan_exceptions, replenishment_orders and transfers of one run,
    a block of stores at a time; ids and texts are formatted by DuckDB from integer codes."""
    stores, products = dims["stores"], dims["products"]
    n_stores, n_products = len(stores), len(products)
    popularity = rng.gamma(0.7, 1.0, n_products).astype(np.float32) * 4
    size = rng.uniform(0.4, 2.0, n_stores).astype(np.float32)
    pack = products.case_pack.to_numpy().astype(np.int32)
    block = max(1, CHUNK_POSITIONS // n_products)
    counts = {"positions": 0, "orders": 0, "transfers": 0, "exceptions": 0}
    order_seq = transfer_seq = 0
    store_stock = np.zeros(n_stores, dtype=np.int64)
    for first in range(0, n_stores, block):
        s = np.repeat(np.arange(first, min(first + block, n_stores), dtype=np.int32), n_products)
        p = np.tile(np.arange(n_products, dtype=np.int32), len(s) // n_products)
        n = len(s)
        mean = (popularity[p] * size[s]).astype(np.float32)
        std = np.sqrt(mean * 1.4, dtype=np.float32)
        lead = np.full(n, 2, dtype=np.int32)
        safety = (1.65 * std * np.sqrt(9)).astype(np.float32)
        reorder = np.ceil(mean * 2 + safety).astype(np.float32)
        up_to = reorder + np.ceil(mean * 7).astype(np.float32)
        u = rng.random(n, dtype=np.float32)
        # before -> after the plan: risk -> risk 15.7 %, risk -> ok 28 %, risk -> overstock 0.2 %,
        # overstock -> overstock 7.3 %, ok 48.8 % (the sample chain's plan).
        before = np.where(u < 0.439, 1, np.where(u < 0.512, 2, 0)).astype(np.int8)
        after = np.where(u < 0.157, 1, np.where(u < 0.437, 0, np.where(u < 0.512, 2, 0))).astype(np.int8)
        on_hand = (reorder * rng.uniform(1.0, 1.6, n)).astype(np.int32)
        at_risk = before == 1
        on_hand[at_risk] = (reorder[at_risk] * rng.uniform(0.0, 0.9, int(at_risk.sum()))).astype(np.int32)
        over = before == 2
        on_hand[over] = (up_to[over] + mean[over] * rng.uniform(60, 200, int(over.sum()))).astype(np.int32)
        on_order = np.where(rng.random(n, dtype=np.float32) < 0.1, pack[p], 0).astype(np.int32)
        shortfall = np.maximum(reorder - on_hand, 0)
        lost = np.where(at_risk, shortfall * rng.uniform(0.2, 1.0, n), 0).astype(np.float32)
        capacity = np.maximum(up_to * 1.5, on_hand + on_order + pack[p]).astype(np.int32)
        shelf_bound = after == 1  # the plan could not lift these: most for shelf room at delivery
        capacity[shelf_bound] = (on_hand[shelf_bound] + on_order[shelf_bound]
                                 + rng.integers(0, 3, int(shelf_bound.sum())))
        np.add.at(store_stock, s - 0, on_hand.astype(np.int64) + on_order)
        frame = pd.DataFrame({
            "s": s, "p": p, "on_hand": on_hand, "on_order": on_order, "mean_daily_demand": mean,
            "lead_time_days": lead, "safety_stock": safety, "reorder_point": reorder, "order_up_to": up_to,
            "days_of_cover": np.where(mean > 0, on_hand / np.maximum(mean, 1e-3), np.nan).astype(np.float32),
            "expected_lost_units": lost, "status": before, "status_after_plan": after, "max_capacity": capacity,
        }, copy=False)
        con.register("_pos", frame)
        con.execute(f"""
            INSERT INTO retailopt.inventory_policy BY NAME
            SELECT $run AS run_id, DATE '{RUN_DATE}' AS run_date, 'S' || lpad(s::VARCHAR, 5, '0') AS store_id,
              'P' || lpad(p::VARCHAR, 6, '0') AS product_id, on_hand, on_order, mean_daily_demand, lead_time_days,
              7 AS review_period_days, 0.95 AS service_level, safety_stock, reorder_point, order_up_to,
              days_of_cover, expected_lost_units,
              ['OK', 'STOCKOUT_RISK', 'OVERSTOCK'][status + 1] AS status,
              ['OK', 'STOCKOUT_RISK', 'OVERSTOCK'][status_after_plan + 1] AS status_after_plan
            FROM _pos""", {"run": run_id})
        if run_id == dims["first_run"]:  # one stock snapshot for the chain
            con.execute(f"""
                INSERT INTO retailopt.inventory BY NAME
                SELECT DATE '{RUN_DATE - timedelta(days=1)}' AS snapshot_date,
                  'S' || lpad(s::VARCHAR, 5, '0') AS store_id, 'P' || lpad(p::VARCHAR, 6, '0') AS product_id,
                  on_hand, on_order, max_capacity
                FROM _pos""")
        con.unregister("_pos")
        # Exceptions: shelf room at delivery for the positions still at risk, capacity below target for 2.4 %.
        cap_below = rng.random(n, dtype=np.float32) < 0.024
        ex = pd.DataFrame({"s": np.concatenate([s[shelf_bound], s[cap_below]]),
                           "p": np.concatenate([p[shelf_bound], p[cap_below]]),
                           "code": np.concatenate([np.zeros(int(shelf_bound.sum()), np.int8),
                                                   np.ones(int(cap_below.sum()), np.int8)]),
                           "cap": np.concatenate([capacity[shelf_bound], capacity[cap_below]]),
                           "rop": np.concatenate([reorder[shelf_bound], reorder[cap_below]])})
        con.register("_ex", ex)
        con.execute(f"""
            INSERT INTO retailopt.plan_exceptions BY NAME
            SELECT $run AS run_id, DATE '{RUN_DATE}' AS run_date, 'S' || lpad(s::VARCHAR, 5, '0') AS store_id,
              'P' || lpad(p::VARCHAR, 6, '0') AS product_id,
              CASE code WHEN 0 THEN 'SHELF_ROOM_AT_DELIVERY' ELSE 'CAPACITY_BELOW_TARGET' END AS reason_code,
              CASE code WHEN 0 THEN 'one case does not fit the shelf room on the delivery day (max_capacity='
                  || cap || ')'
                ELSE 'max_capacity=' || cap || ' < reorder point ' || rop::INT END AS reason,
              CASE code WHEN 0 THEN 'order cut to the shelf room: none ordered'
                ELSE 'reorder point and order-up-to capped at what the shelf holds' END AS action
            FROM _ex""", {"run": run_id})
        con.unregister("_ex")
        counts["exceptions"] += len(ex)
        # DC orders: every position lifted out of risk, and a tenth of those still at risk.
        ordered = ((before == 1) & (after != 1)) | (shelf_bound & (rng.random(n, dtype=np.float32) < 0.1))
        cases = np.maximum(1, np.ceil(np.maximum(up_to - on_hand - on_order, 1) / pack[p])).astype(np.int32)
        k = int(ordered.sum())
        orders = pd.DataFrame({"seq": np.arange(order_seq + 1, order_seq + k + 1), "s": s[ordered], "p": p[ordered],
                               "dc": dims["store_dc"][s[ordered]] + 1, "cases": cases[ordered],
                               "pack": pack[p[ordered]], "cost": products.unit_cost.to_numpy()[p[ordered]],
                               "load": 1 + (p[ordered] % 2)})
        order_seq += k
        con.register("_orders", orders)
        con.execute(f"""
            INSERT INTO retailopt.replenishment_orders BY NAME
            SELECT $run AS run_id, DATE '{RUN_DATE}' AS run_date,
              'O{RUN_DATE:%Y%m%d}-' || lpad(seq::VARCHAR, 8, '0') AS order_id, 'DC' || lpad(dc::VARCHAR, 2, '0') AS dc_id,
              'S' || lpad(s::VARCHAR, 5, '0') AS store_id, 'P' || lpad(p::VARCHAR, 6, '0') AS product_id,
              cases * pack AS quantity, cases, round(cases * pack * cost, 2) AS order_value,
              DATE '{RUN_DATE + timedelta(days=2)}' AS expected_arrival,
              'O-DC' || lpad(dc::VARCHAR, 2, '0') || '-S' || lpad(s::VARCHAR, 5, '0') || '-' || load AS shipment_id
            FROM _orders""", {"run": run_id})
        con.unregister("_orders")
        counts["orders"] += k
        # Transfers: a twentieth of the positions lifted out of risk got theirs from a neighbour.
        moved = (before == 1) & (after == 0) & (rng.random(n, dtype=np.float32) < 0.035)
        k = int(moved.sum())
        to_store = s[moved]
        from_store = (to_store + rng.choice(NEIGHBOURS, k)) % n_stores
        quantity = np.maximum(1, shortfall[moved]).astype(np.int32)
        price = products.price.to_numpy()[p[moved]]
        transfers = pd.DataFrame({"seq": np.arange(transfer_seq + 1, transfer_seq + k + 1), "p": p[moved],
                                  "f": from_store, "t": to_store, "quantity": quantity,
                                  "value": quantity * price * 0.4, "cost": 0.3 * quantity + 2.0,
                                  "km": rng.uniform(3, 60, k)})
        transfer_seq += k
        con.register("_transfers", transfers)
        con.execute(f"""
            INSERT INTO retailopt.transfers BY NAME
            SELECT $run AS run_id, DATE '{RUN_DATE}' AS run_date,
              'T{RUN_DATE:%Y%m%d}-' || lpad(seq::VARCHAR, 8, '0') AS transfer_id, 'P' || lpad(p::VARCHAR, 6, '0') AS product_id,
              'S' || lpad(f::VARCHAR, 5, '0') AS from_store_id, 'S' || lpad(t::VARCHAR, 5, '0') AS to_store_id,
              quantity, value, cost, km AS distance_km,
              'T-S' || lpad(f::VARCHAR, 5, '0') || '-S' || lpad(t::VARCHAR, 5, '0') || '-1' AS shipment_id
            FROM _transfers""", {"run": run_id})
        con.unregister("_transfers")
        counts["transfers"] += k
        counts["positions"] += n
    if run_id == dims["first_run"]:
        # Stores' room: half as much again as their stock and stock on order.
        room = pd.DataFrame({"store_id": stores.store_id, "capacity_units": (store_stock * 1.5).astype(np.int64)})
        con.register("_room", room)
        con.execute("UPDATE retailopt.stores AS s SET capacity_units = r.capacity_units FROM _room AS r "
                    "WHERE r.store_id = s.store_id")
        con.unregister("_room")
    return counts


SERIES_STORES = 20  # stores whose sales history and forecasts are built (the drill-down's)


def _series(con: Any, dims: dict[str, Any], run_id: str, rng: np.random.Generator) -> dict[str, int]:
    """13 weeks of daily sales (loaded day by day, as imports do) and the run's 28-day forecast of
    the positions of the first SERIES_STORES stores: the drill-down reads these two tables."""
    n_stores = min(SERIES_STORES, len(dims["stores"]))
    n_products = len(dims["products"])
    s = np.repeat(np.arange(n_stores, dtype=np.int32), n_products)
    p = np.tile(np.arange(n_products, dtype=np.int32), n_stores)
    mean = (rng.gamma(0.7, 1.0, n_products).astype(np.float32) * 4)[p] * rng.uniform(0.4, 2.0, n_stores)[s]
    price = dims["products"].price.to_numpy()[p]
    for day in range(91, 0, -1):
        units = rng.poisson(mean)
        sold = units > 0
        frame = pd.DataFrame({"s": s[sold], "p": p[sold], "units": units[sold], "price": price[sold]})
        con.register("_sales", frame)
        con.execute(f"""
            INSERT INTO retailopt.sales BY NAME
            SELECT DATE '{RUN_DATE}' - INTERVAL {day} DAY AS sale_date, 'S' || lpad(s::VARCHAR, 5, '0') AS store_id,
              'P' || lpad(p::VARCHAR, 6, '0') AS product_id, units, price, FALSE AS on_promotion
            FROM _sales""")
        con.unregister("_sales")
    frame = pd.DataFrame({"s": s, "p": p, "mean": mean})
    con.register("_mean", frame)
    con.execute(f"""
        INSERT INTO retailopt.forecasts BY NAME
        SELECT $run AS run_id, 'S' || lpad(s::VARCHAR, 5, '0') AS store_id, 'P' || lpad(p::VARCHAR, 6, '0') AS product_id,
          DATE '{RUN_DATE}' + INTERVAL (d) DAY AS forecast_date, mean AS forecast_mean, sqrt(mean) AS standard_error,
          0.9 AS confidence_level, greatest(mean - 1.64 * sqrt(mean), 0) AS lower_bound,
          mean + 1.64 * sqrt(mean) AS upper_bound, 'bench' AS model
        FROM _mean, range(28) AS t(d)""", {"run": run_id})
    con.unregister("_mean")
    return {"series_stores": n_stores, "series": n_stores * n_products}


def _routes(con: Any, dims: dict[str, Any], run_id: str, rng: np.random.Generator) -> int:
    """Vehicle routes carrying 85 % of the run's loads (the rest are unrouted): pickup at the
    sender or centre, delivery at the store, stops in time order."""
    loads = con.execute("""
        SELECT shipment_id, MIN(dc_id) AS origin, MIN(store_id) AS store_id, CAST(SUM(quantity) AS BIGINT) AS units
        FROM retailopt.replenishment_orders WHERE run_id = $run GROUP BY shipment_id
        UNION ALL
        SELECT shipment_id, MIN(from_store_id), MIN(to_store_id), CAST(SUM(quantity) AS BIGINT)
        FROM retailopt.transfers WHERE run_id = $run GROUP BY shipment_id
        ORDER BY shipment_id""", {"run": run_id}).df()
    loads = loads[rng.random(len(loads)) < 0.85].reset_index(drop=True)
    vehicles = dims["vehicles"]
    loads["vehicle"] = rng.integers(0, len(vehicles), len(loads))
    coords = pd.concat([dims["stores"].rename(columns={"store_id": "location_id"}),
                        dims["dcs"].rename(columns={"dc_id": "location_id"})])[["location_id", "latitude", "longitude"]]
    coords = coords.set_index("location_id")
    stops, routes = [], []
    day = datetime(RUN_DATE.year, RUN_DATE.month, RUN_DATE.day, 11, 0, tzinfo=timezone.utc)
    for v, group in loads.groupby("vehicle"):
        vehicle = vehicles.iloc[int(v)]
        route_id = f"{RUN_DATE}-{vehicle.vehicle_id}"
        clock = day + timedelta(minutes=int(rng.integers(0, 60)))
        seq = 0
        for row in group.itertuples():
            for location, kind in ((row.origin, "PICKUP"), (row.store_id, "DELIVERY")):
                seq += 1
                clock += timedelta(minutes=float(rng.uniform(8, 35)))
                stops.append((route_id, vehicle.vehicle_id, seq, location, float(coords.latitude[location]),
                              float(coords.longitude[location]), kind, row.shipment_id, int(row.units), clock))
        routes.append((route_id, vehicle.vehicle_id, vehicle.depot_id, day, clock + timedelta(minutes=30),
                       float(rng.uniform(80, 400)), (clock - day).total_seconds() / 60 + 30, seq,
                       int(group.units.sum()), float(rng.uniform(300, 900))))
    stop_frame = pd.DataFrame(stops, columns=["route_id", "vehicle_id", "stop_sequence", "location_id", "latitude",
                                              "longitude", "visit_type", "shipment_id", "units", "arrival_time"])
    route_frame = pd.DataFrame(routes, columns=["route_id", "vehicle_id", "depot_id", "start_time", "end_time",
                                                "distance_km", "duration_minutes", "stop_count", "units_carried",
                                                "cost"])
    for table, frame in (("routes", route_frame), ("route_stops", stop_frame)):
        con.register("_frame", frame)
        con.execute(f"INSERT INTO retailopt.{table} BY NAME SELECT $run AS run_id, DATE '{RUN_DATE}' AS run_date, * "
                    "FROM _frame", {"run": run_id})
        con.unregister("_frame")
    return len(route_frame)


def _what_if(con: Any, base: str, run_id: str) -> None:
    """A what-if of `base`: the same positions, a tenth of the order lines one case larger, one
    in fifty dropped, and a routing of its own."""
    for table in ("inventory_policy", "plan_exceptions", "transfers"):
        con.execute(f"INSERT INTO retailopt.{table} SELECT * REPLACE ($run AS run_id) FROM retailopt.{table} "
                    "WHERE run_id = $base", {"run": run_id, "base": base})
    con.execute("""
        INSERT INTO retailopt.replenishment_orders
        SELECT * REPLACE ($run AS run_id,
          quantity + IF(hash(order_id) % 10 = 0, quantity // cases, 0) AS quantity,
          cases + IF(hash(order_id) % 10 = 0, 1, 0) AS cases)
        FROM retailopt.replenishment_orders WHERE run_id = $base AND hash(order_id) % 50 <> 7""",
                {"run": run_id, "base": base})


def _kpis(con: Any, run_id: str) -> dict[str, Any]:
    row = con.execute("""
        SELECT COUNT(*) AS positions,
          COUNT(*) FILTER (WHERE status = 'STOCKOUT_RISK') AS positions_at_risk_before,
          COUNT(*) FILTER (WHERE status_after_plan = 'STOCKOUT_RISK') AS positions_at_risk_after,
          COUNT(*) FILTER (WHERE status = 'OVERSTOCK') AS positions_overstocked_before,
          COUNT(*) FILTER (WHERE status_after_plan = 'OVERSTOCK') AS positions_overstocked_after,
          COUNT(DISTINCT store_id) FILTER (WHERE status = 'STOCKOUT_RISK') AS stores_at_risk_before,
          COUNT(DISTINCT store_id) FILTER (WHERE status_after_plan = 'STOCKOUT_RISK') AS stores_at_risk_after,
          ROUND(SUM(expected_lost_units), 1) AS expected_lost_units
        FROM retailopt.inventory_policy WHERE run_id = $run""", {"run": run_id}).df().iloc[0].to_dict()
    t = con.execute("SELECT COUNT(DISTINCT transfer_id), SUM(quantity), SUM(value), SUM(cost) FROM retailopt.transfers "
                    "WHERE run_id = $run", {"run": run_id}).fetchone()
    o = con.execute("SELECT COUNT(DISTINCT order_id), SUM(quantity), SUM(order_value) FROM retailopt.replenishment_orders "
                    "WHERE run_id = $run", {"run": run_id}).fetchone()
    r = con.execute("SELECT COUNT(DISTINCT vehicle_id), SUM(distance_km), SUM(cost), SUM(units_carried) "
                    "FROM retailopt.routes WHERE run_id = $run", {"run": run_id}).fetchone()
    shipments = con.execute("""
        SELECT COUNT(*), COUNT(*) FILTER (WHERE shipment_id NOT IN (
          SELECT shipment_id FROM retailopt.route_stops WHERE run_id = $run))
        FROM (SELECT shipment_id FROM retailopt.replenishment_orders WHERE run_id = $run
              UNION SELECT shipment_id FROM retailopt.transfers WHERE run_id = $run)""", {"run": run_id}).fetchone()
    kpis = {k: (int(v) if k != "expected_lost_units" else float(v)) for k, v in row.items()}
    kpis.update({"transfers": int(t[0]), "units_moved": int(t[1] or 0), "transfer_value": round(float(t[2] or 0), 2),
                 "transfer_cost": round(float(t[3] or 0), 2), "orders": int(o[0]), "units_ordered": int(o[1] or 0),
                 "order_value": round(float(o[2] or 0), 2), "vehicles_used": int(r[0]),
                 "route_km": round(float(r[1] or 0), 1), "route_cost": round(float(r[2] or 0), 2),
                 "shipments": int(shipments[0]), "shipments_unrouted": int(shipments[1]),
                 "units_routed": int(r[3] or 0), "units_unrouted": 0, "quarantined_rows": 0})
    return kpis


def build_warehouse(data_dir: Path, n_stores: int, n_products: int, seed: int = 7,
                    progress: Callable[[str], None] = lambda _: None, publish: bool = True) -> dict[str, Any]:
    """The warehouse file `data_dir/warehouse.duckdb` with two complete runs; what was built."""
    import duckdb

    from retailopt.config import load_settings
    from retailopt.warehouse.duck import DuckDBWarehouse

    settings = load_settings({"data_dir": data_dir}, environ={})
    wh = DuckDBWarehouse(data_dir / "warehouse.duckdb", settings.dataset)
    wh.ensure_schema()
    wh.close()
    rng = np.random.default_rng(seed)
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), config={"memory_limit": "2GB"})
    con.execute("SET enable_progress_bar = false")
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        dims = _dimensions(con, n_stores, n_products, rng)
        base, what_if = f"{RUN_DATE:%Y%m%d}-bench00000", f"{RUN_DATE:%Y%m%d}-bench00001"
        dims["first_run"] = base
        progress(f"positions of run {base}")
        counts = _positions(con, dims, base, rng)
        progress(f"what-if run {what_if}")
        _what_if(con, base, what_if)
        progress("routes")
        for run_id in (base, what_if):
            _routes(con, dims, run_id, rng)
        progress(f"sales and forecasts of the first {SERIES_STORES} stores")
        counts.update(_series(con, dims, base, rng))
        parameters = settings.as_json()
        for run_id, overrides in ((base, {}), (what_if, {"service_level": 0.97})):
            started_at = datetime.now(timezone.utc) - timedelta(minutes=30 if run_id == base else 10)
            con.execute("INSERT INTO retailopt.runs BY NAME SELECT $run AS run_id, $date AS run_date, 'COMPLETE' AS status, "
                        "$started AS started_at, $finished AS finished_at, $params AS parameters, $timings AS timings, "
                        "$kpis AS kpis", {
                            "run": run_id, "date": RUN_DATE, "started": started_at,
                            "finished": started_at + timedelta(minutes=8),
                            "params": json.dumps({**parameters, "run_date": RUN_DATE.isoformat(), **overrides},
                                                 sort_keys=True),
                            "timings": json.dumps({"import": 120.0, "forecast": 300.0, "plan": 60.0}),
                            "kpis": json.dumps(_kpis(con, run_id))})
        # Some planner decisions on the first run: approvals, edits and rejections.
        con.execute("""
            INSERT INTO retailopt.plan_decisions BY NAME
            SELECT lpad(row_number() OVER ()::VARCHAR, 20, '0') || '-bench' AS decision_id, run_id, run_date,
              'ORDER' AS line_type, order_id AS line_id,
              CASE hash(order_id) % 5 WHEN 0 THEN 'REJECT' WHEN 1 THEN 'EDIT' ELSE 'APPROVE' END AS action,
              quantity AS old_quantity, quantity AS new_quantity,
              IF(hash(order_id) % 5 = 0, 'no room', NULL) AS reason, 'bench@example.com' AS decided_by,
              now() AS decided_at
            FROM retailopt.replenishment_orders WHERE run_id = $run AND hash(order_id) % 500 = 0""", {"run": base})
        timings["tables_s"] = round(time.perf_counter() - started, 1)
    finally:
        con.close()
    # The workbench's own tables, written by the code the publish step runs.
    from retailopt.warehouse import open_warehouse

    wh = open_warehouse(settings)
    try:
        for run_id in (base, what_if) if publish else ():
            from retailopt.workbench import store

            progress(f"workbench tables of {run_id}")
            started = time.perf_counter()
            store.publish(wh, run_id)
            timings[f"publish_{run_id}_s"] = round(time.perf_counter() - started, 1)
    finally:
        wh.close()
    counts["products"] = n_products
    return {"runs": [base, what_if], "stores": list(dims["stores"].store_id), "categories": list(CATEGORIES),
            "counts": counts, "timings": timings}


# --- timing the pages --------------------------------------------------------------------------

def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def page_paths(built: dict[str, Any], rng: random.Random, pages: dict[str, int]) -> dict[str, Callable[[], str]]:
    """Each page's path maker: another filter, sort key or page at each call."""
    a, b = built["runs"]
    stores, categories = built["stores"], built["categories"]
    reasons = ["SHELF_ROOM_AT_DELIVERY", "CAPACITY_BELOW_TARGET", "SLOW_MOVER", "NO_WORTHWHILE_TRANSFER",
               "CASE_PACK", "NO_SHORTAGE_ELSEWHERE", "STOCK_ON_ORDER", "UNROUTED_LOAD"]
    transfer_sorts = ["value", "-value", "quantity", "-quantity", "product", "from", "-to", "km", "decision"]
    order_sorts = ["value", "-value", "-quantity", "product", "-store", "arrival", "decision", "line"]

    def deep(kind: str) -> int:
        last = max(1, pages.get(kind, 1))
        return rng.randint(max(1, last // 2), last)

    return {
        "runs": lambda: "/",
        "overview": lambda: f"/ui/runs/{rng.choice([a, b])}",
        "worklist": lambda: f"/ui/runs/{rng.choice([a, b])}/worklist",
        "worklist by store": lambda: f"/ui/runs/{a}/worklist?store={rng.choice(stores)}",
        "worklist by category": lambda: f"/ui/runs/{a}/worklist?category={rng.choice(categories)}",
        "worklist by reason": lambda: f"/ui/runs/{a}/worklist?reason={rng.choice(reasons)}",
        "worklist deep page": lambda: f"/ui/runs/{a}/worklist?page={deep('worklist')}",
        "transfers sorted": lambda: f"/ui/runs/{a}/transfers?sort={rng.choice(transfer_sorts)}",
        "transfers filtered": lambda: (f"/ui/runs/{a}/transfers?store={rng.choice(stores)}"
                                       f"&category={rng.choice(categories)}&sort={rng.choice(transfer_sorts)}"),
        "orders sorted": lambda: f"/ui/runs/{a}/orders?sort={rng.choice(order_sorts)}",
        "orders filtered": lambda: (f"/ui/runs/{a}/orders?store={rng.choice(stores)}&decision="
                                    f"{rng.choice(['PENDING', 'APPROVED', 'REJECTED'])}&sort={rng.choice(order_sorts)}"),
        "orders by category": lambda: f"/ui/runs/{a}/orders?category={rng.choice(categories)}&sort=-value",
        "orders deep page": lambda: f"/ui/runs/{a}/orders?sort={rng.choice(order_sorts)}&page={deep('orders')}",
        "position": lambda: (f"/ui/runs/{a}/position?store={rng.choice(stores[:built['counts'].get('series_stores', 1)])}"
                             f"&product=P{rng.randrange(built['counts'].get('products', 1)):06d}"),
        "routes": lambda: f"/ui/runs/{a}/routes?page={rng.randint(1, max(1, pages.get('routes', 1)))}",
        "routes map data": lambda: f"/ui/runs/{a}/routes.json?page={rng.randint(1, max(1, pages.get('routes', 1)))}",
        "compare": lambda: f"/ui/compare?a={a}&b={b}&page={rng.choice([1, 1, 2, 3, deep('compare')])}",
    }


def _get(session: Any, url: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    answer = session.get(url, timeout=120)
    body = answer.content
    return time.perf_counter() - started, answer.status_code, body


# A comparison's first requests show how far the matching of the two plans' lines got.
_IN_PROGRESS = b"blocks of stores done"


def time_pages(base: str, paths: dict[str, Callable[[], str]], repeats: int) -> dict[str, dict[str, Any]]:
    import requests

    session = requests.Session()
    figures: dict[str, dict[str, Any]] = {}
    for name, make in paths.items():
        # The first request of each page is measured too: nothing is warmed up for it.
        seconds, errors, sizes, examples, pending = [], [], [], [], []
        for _ in range(repeats):
            path = make()
            took, status, body = _get(session, base + path)
            seconds.append(took)
            sizes.append(len(body))
            if _IN_PROGRESS in body:
                pending.append(took)
            if status != 200:
                errors.append(f"{status} {path}")
            if len(examples) < 3 and path not in examples:
                examples.append(path)
        figures[name] = {"requests": repeats, "p50_ms": round(1000 * statistics.median(seconds), 1),
                         "p95_ms": round(1000 * _percentile(seconds, 0.95), 1),
                         "max_ms": round(1000 * max(seconds), 1), "kb_p50": round(statistics.median(sizes) / 1024, 1),
                         "errors": errors[:5], "error_count": len(errors), "examples": examples}
        if pending:
            figures[name]["requests_in_progress"] = len(pending)
            figures[name]["seconds_until_complete"] = round(sum(pending), 2)
    session.close()
    return figures


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _page_counts(data_dir: Path, built: dict[str, Any]) -> dict[str, int]:
    """How many pages the unfiltered worklist, orders and comparison have (for the deep pages)."""
    from retailopt.config import load_settings
    from retailopt.warehouse import open_warehouse
    from retailopt.workbench import views

    wh = open_warehouse(load_settings({"data_dir": data_dir}, environ={}))
    try:
        wh.ensure_schema()  # a reused warehouse gains the tables added since it was built
        a, b = built["runs"]
        worklist = sum(s["positions"] for s in views.worklist_summary(wh, a, store_id=None, category=None))
        orders = int(wh.query("SELECT COUNT(DISTINCT order_id) AS n FROM `{dataset}.replenishment_orders` "
                              "WHERE run_id = @r", {"r": a}).n.iloc[0])
        changed = views.changed_lines(wh, a, b, 1).total
        routes = views.routes(wh, a, 1).total
    finally:
        wh.close()
    size = views.PAGE_SIZE
    return {"worklist": -(-worklist // size), "orders": -(-orders // size), "compare": -(-changed // size),
            "routes": -(-routes // views.ROUTES_PAGE)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt bench-workbench", description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--products", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=20, help="measured requests per page (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path,
                        help="build the warehouse here and keep it (default: a temporary folder, removed); "
                             "a folder holding one from an earlier run with the same sizes is reused")
    parser.add_argument("--out", type=Path, default=Path("bench-workbench.json"))
    parser.add_argument("--target-p95-ms", type=float, default=1000.0)
    args = parser.parse_args(argv)
    if not 2 <= args.stores <= 5000 or not 10 <= args.products <= 100_000 or not 1 <= args.repeats <= 1000:
        parser.error("--stores 2..5000, --products 10..100000, --repeats 1..1000")
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        return _bench(args, args.data_dir)
    with tempfile.TemporaryDirectory(prefix="retailopt-bench-workbench-") as tmp:
        return _bench(args, Path(tmp))


def _bench(args: argparse.Namespace, data_dir: Path) -> int:
    def progress(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    marker = data_dir / "bench-workbench-built.json"
    load_before = os.getloadavg()
    if marker.exists() and json.loads(marker.read_text()).get("size") == [args.stores, args.products, args.seed]:
        built = json.loads(marker.read_text())
        progress(f"reusing the warehouse in {data_dir}")
    else:
        if (data_dir / "warehouse.duckdb").exists():
            (data_dir / "warehouse.duckdb").unlink()
        progress(f"building {args.stores} stores x {args.products} products x 2 runs in {data_dir}")
        built = build_warehouse(data_dir, args.stores, args.products, args.seed, progress)
        built["size"] = [args.stores, args.products, args.seed]
        marker.write_text(json.dumps(built))
    pages = _page_counts(data_dir, built)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = data_dir / "bench-workbench-server.log"
    progress(f"starting retailopt serve on {base}")
    server = subprocess.Popen([sys.executable, "-m", "retailopt.services.serve", "--port", str(port),
                               "--data-dir", str(data_dir)], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                              env={**os.environ, "RETAILOPT_PLANNERS": ""})
    try:
        wait_until_serving(base, server, log)
        rss_idle = _peak_rss_mb(server.pid)
        progress(f"timing {args.repeats} requests per page")
        figures = time_pages(base, page_paths(built, random.Random(args.seed), pages), args.repeats)
        rss_peak = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    load_after = os.getloadavg()
    ok = all(f["p95_ms"] <= args.target_p95_ms and not f["error_count"] for f in figures.values())
    result = {"benchmark": "bench-workbench", "stores": args.stores, "products": args.products,
              "positions_per_run": args.stores * args.products, "runs": built["runs"], "rows": built["counts"],
              "build_timings_s": built["timings"], "pages_in_listing": pages, "repeats": args.repeats,
              "pages": figures, "server_peak_rss_mb": round(rss_peak, 1), "server_rss_after_start_mb": round(rss_idle, 1),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(),
              "target_p95_ms": args.target_p95_ms, "meets_target": ok}
    print(f"\n{args.stores} stores x {args.products} products ({args.stores * args.products:,} positions a run), "
          f"{args.repeats} requests per page, loopback")
    print(f"{'page':<24}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'KiB':>8}{'errors':>8}")
    for name, row in figures.items():
        note = (f"  ({row['requests_in_progress']} answers showed the matching in progress, "
                f"{row['seconds_until_complete']} s in all)" if row.get("requests_in_progress") else "")
        print(f"{name:<24}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['max_ms']:>10}{row['kb_p50']:>8}"
              f"{row['error_count']:>8}{note}")
    print(f"server peak memory {rss_peak:,.0f} MB; load average {result['load_average_before']} before, "
          f"{result['load_average_after']} after, {os.cpu_count()} CPUs")
    print("build and publish: " + ", ".join(
        f"{k} {v} s" for k, v in built["timings"].items()))
    print(f"meets the target (p95 <= {args.target_p95_ms:g} ms on every page, no errors): {ok}")
    args.out.write_text(json.dumps(result, indent=2))
    print(f"figures written to {args.out.resolve()}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
