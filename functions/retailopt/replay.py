"""Replay held-out demand day by day to compare planning policies (`retailopt replay`).

The last `weeks` weeks of sales are held out as the demand to replay. Every strategy starts from
the same stock snapshot, re-plans every `cadence` days with forecasts made only from the demand
before that day, receives distribution-centre orders after the store's lead time and transfers
after transfer_lead_days, and loses the sales it cannot serve from stock. Strategies:

- `dc_only`: this policy, distribution-centre orders only (no rebalancing);
- `min_max`: the planners' days-of-cover rule: below `min_days` of trailing average sales,
  order up to `max_days`, in whole cases;
- `policy_rebalance`: this policy with store-to-store transfers, then DC orders.

The forecasts at each re-planning day are shared by all strategies (made from the recorded
demand, not from each strategy's censored sales) so the comparison isolates the decisions.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from retailopt.config import Settings, load_settings
from retailopt.demand_model import QUANTILE_COLUMNS
from retailopt.policy import compute_policy
from retailopt.rebalance import TRANSFER_COLUMNS, assign_dcs, plan_orders, plan_transfers

STRATEGIES = ("dc_only", "min_max", "policy_rebalance")
RESULT_COLUMNS = [
    "replay_id", "created_at", "strategy", "start_date", "end_date", "days", "positions",
    "replan_every_days", "forecaster", "demand_units", "sold_units", "lost_units", "fill_rate",
    "cycle_service_level", "avg_on_hand_units", "avg_on_hand_value", "units_moved", "transfers", "trips",
    "transfer_cost", "order_lines", "units_ordered", "ordering_cost", "holding_cost", "lost_sales_cost",
    "operating_cost", "total_cost", "parameters",
]


@dataclass(frozen=True)
class Chain:
    stores: pd.DataFrame
    dcs: pd.DataFrame
    products: pd.DataFrame
    inventory: pd.DataFrame
    sales: pd.DataFrame


def load_chain(data_dir: Path) -> Chain:
    """The files a user brings (or the sample chain writes)."""
    data_dir = Path(data_dir)
    ids = {"store_id": str, "product_id": str, "dc_id": str}
    sales = pd.read_parquet(data_dir / "sales.parquet")
    sales["sale_date"] = pd.to_datetime(sales["sale_date"])
    sales["store_id"] = sales["store_id"].astype(str)
    sales["product_id"] = sales["product_id"].astype(str)
    return Chain(stores=pd.read_csv(data_dir / "stores.csv", dtype=ids),
                 dcs=pd.read_csv(data_dir / "distribution_centers.csv", dtype=ids),
                 products=pd.read_csv(data_dir / "products.csv", dtype=ids),
                 inventory=pd.read_csv(data_dir / "inventory.csv", dtype=ids), sales=sales)


# ---------------------------------------------------------------------------------------------
# Forecasts inside the replay
# ---------------------------------------------------------------------------------------------
def empirical_quantile_forecast(history: np.ndarray, window: np.ndarray, keys: pd.DataFrame,
                                start: date, horizon: int, lookback: int = 56) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simple stand-in forecaster: the empirical distribution of the last `lookback` days'
    rolling window sums (history is positions x days, last column = the day before `start`)."""
    h = history[:, -lookback:].astype(np.float64)
    csum = np.concatenate([np.zeros((len(h), 1)), np.cumsum(h, axis=1)], axis=1)
    levels = [0.5, 0.8, 0.9, 0.95, 0.99]
    out = np.zeros((len(h), 7))
    for w in np.unique(window):
        rows = np.flatnonzero(window == w)
        sums = csum[rows, w:] - csum[rows, :-w]
        out[rows, 0] = sums.mean(axis=1)
        out[rows, 1] = sums.std(axis=1)
        out[rows, 2:] = np.quantile(sums, levels, axis=1).T
    prot = keys.assign(window_days=window, demand_mean=out[:, 0], demand_std=out[:, 1],
                       **{c: out[:, 2 + i] for i, c in enumerate(QUANTILE_COLUMNS)}, model="empirical")
    mean_daily = h.mean(axis=1)
    days = pd.date_range(start, periods=horizon, freq="D")
    daily = pd.DataFrame({
        "store_id": np.repeat(keys["store_id"].to_numpy(), horizon),
        "product_id": np.repeat(keys["product_id"].to_numpy(), horizon),
        "forecast_date": np.tile(days, len(keys)),
        "forecast_mean": np.repeat(mean_daily, horizon)})
    return daily, prot


def _forecast_at(forecaster: str, demand_all: np.ndarray, all_days: pd.DatetimeIndex, upto: int,
                 keys: pd.DataFrame, window: np.ndarray, price: np.ndarray, day: date,
                 settings: Settings, promo_all: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(daily, protection) forecasts made on `day` from the demand of the days before it only.

    With `promo_all` (series × day promotion flags) the engine also gets the promotions of the
    days ahead as the plan: a planner knows their own promotions in advance."""
    if forecaster == "empirical":
        return empirical_quantile_forecast(demand_all[:, :upto], window, keys, day, int(window.max()))
    if forecaster != "engine":
        raise ValueError(f"forecaster={forecaster!r}: expected 'engine' or 'empirical'")
    from retailopt.forecasting import forecast as engine

    hist = demand_all[:, :upto]
    r, c = np.nonzero(hist)
    history = pd.DataFrame({"store_id": keys["store_id"].to_numpy()[r], "product_id": keys["product_id"].to_numpy()[r],
                            "sale_date": all_days[:upto][c], "units": hist[r, c], "price": price[r],
                            "on_promotion": False if promo_all is None else promo_all[r, c]})
    horizon = int(window.max())
    plan = None
    if promo_all is not None:
        pr, pc = np.nonzero(promo_all[:, upto:upto + horizon])
        plan = pd.DataFrame({"store_id": keys["store_id"].to_numpy()[pr], "product_id": keys["product_id"].to_numpy()[pr],
                             "sale_date": all_days[upto:upto + horizon][pc], "on_promotion": True})
    res = engine(history, keys, forecast_start=day, horizon=horizon,
                 window_days=keys.assign(window_days=window), confidence_level=settings.confidence_level,
                 holiday_country=settings.holiday_country, seed=settings.seed, future_promotions=plan)
    return res.daily, res.protection


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------
@dataclass
class _Book:
    sold: float = 0.0
    lost: float = 0.0
    demand: float = 0.0
    on_hand_units: float = 0.0
    on_hand_value: float = 0.0
    holding_cost: float = 0.0
    units_moved: int = 0
    transfers: int = 0
    trips: int = 0
    transfer_cost: float = 0.0
    order_lines: int = 0
    units_ordered: int = 0
    cycles: int = 0
    cycles_short: int = 0


def _index_of(keys: pd.DataFrame, store: pd.Series, product: pd.Series) -> np.ndarray:
    lookup = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["store_id", "product_id"]]))
    return lookup.reindex(pd.MultiIndex.from_arrays([store.astype(str), product.astype(str)])).to_numpy()


def run_replay(chain: Chain, *, settings: Settings, weeks: int = 6, cadence: int | None = None,
               forecaster: str = "engine", strategies: tuple[str, ...] = STRATEGIES,
               min_days: float | None = None, max_days: float | None = None,
               replay_id: str | None = None, value_horizon: str = "lead_time", log=print,
               forecasts: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
               positions_out: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Replay the last `weeks` weeks of demand under each strategy; one replay_results row each.

    `forecasts` (re-planning day offset -> (daily, protection)) is filled in place, so a second
    call with the same dict reuses them; `positions_out`, when given, receives each strategy's
    per-position demand, lost units and lost margin (for diagnosis)."""
    cadence = cadence or settings.review_period_days
    keys = chain.inventory[["store_id", "product_id"]].astype(str).drop_duplicates().reset_index(drop=True)
    n = len(keys)
    sales = chain.sales
    end = sales["sale_date"].max().normalize()
    n_days = weeks * 7
    start = end - pd.Timedelta(days=n_days - 1)
    first = sales["sale_date"].min().normalize()
    all_days = pd.date_range(first, end, freq="D")
    idx = _index_of(keys, sales["store_id"], sales["product_id"])
    ok = ~np.isnan(idx)
    demand_all = np.zeros((n, len(all_days)))
    day_i = ((sales["sale_date"].dt.normalize() - first).dt.days).to_numpy()
    np.add.at(demand_all, (idx[ok].astype(np.int64), day_i[ok]), sales["units"].to_numpy(dtype=float)[ok])
    # Promotion flags come with the sale rows; a day without a sale row counts as not promoted.
    promo_all = None
    if "on_promotion" in sales.columns:
        promo_all = np.zeros((n, len(all_days)), dtype=bool)
        flagged = ok & sales["on_promotion"].fillna(False).to_numpy(dtype=bool)
        promo_all[idx[flagged].astype(np.int64), day_i[flagged]] = True
    t0 = len(all_days) - n_days
    demand = demand_all[:, t0:]

    dc_of = assign_dcs(chain.stores, chain.dcs).set_index("store_id")
    store_lead = pd.to_numeric(dc_of["lead_time_days"], errors="coerce").fillna(1).clip(lower=1).astype(int)
    lead = keys["store_id"].map(store_lead).fillna(1).to_numpy(dtype=np.int64)
    window = lead + settings.review_period_days
    prods = chain.products.set_index("product_id")
    unit_cost = keys["product_id"].map(prods["unit_cost"]).fillna(0).to_numpy(dtype=float)
    price = keys["product_id"].map(prods["price"]).fillna(0).to_numpy(dtype=float)
    pack = keys["product_id"].map(prods["case_pack"]).fillna(1).clip(lower=1).to_numpy(dtype=float)
    inv0 = chain.inventory.assign(store_id=chain.inventory["store_id"].astype(str),
                                  product_id=chain.inventory["product_id"].astype(str)) \
        .drop_duplicates(["store_id", "product_id"], keep="last")
    inv0 = keys.merge(inv0, on=["store_id", "product_id"], how="left")
    cap = inv0["max_capacity"].fillna(np.inf).to_numpy(dtype=float)

    # Forecasts per re-planning day, shared by the strategies.
    replan = list(range(0, n_days, cadence))
    need_fc = any(s != "min_max" for s in strategies)
    if forecasts is None:
        forecasts = {}
    for t in replan if need_fc else []:
        if t in forecasts:
            continue
        day = (start + pd.Timedelta(days=t)).date()
        started = time.perf_counter()
        forecasts[t] = _forecast_at(forecaster, demand_all, all_days, t0 + t, keys, window, price, day, settings,
                                    promo_all)
        log(f"forecast for {day}: {time.perf_counter() - started:.1f}s")

    rows = []
    created = datetime.now(timezone.utc)
    replay_id = replay_id or f"replay-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    min_days = float(min_days if min_days is not None else settings.review_period_days + 3)
    max_days = float(max_days if max_days is not None else min_days + 14)
    for strategy in strategies:
        started = time.perf_counter()
        on_hand = np.maximum(inv0["on_hand"].fillna(0).to_numpy(dtype=np.int64), 0)
        pipeline = np.zeros((n_days + int(lead.max()) + settings.transfer_lead_days + 2, n), dtype=np.int64)
        on_order0 = np.maximum(inv0["on_order"].fillna(0).to_numpy(dtype=np.int64), 0)
        pipeline[lead, np.arange(n)] += on_order0  # open orders arrive after one lead time
        book = _Book()
        cycle_lost = np.zeros(n)
        cycle_dem = np.zeros(n)
        lost_units = np.zeros(n)
        moved_in, moved_out, ordered = (np.zeros(n, dtype=np.int64) for _ in range(3))
        for t in range(n_days):
            on_hand += pipeline[t]
            if t in replan:
                if t > 0:
                    book.cycles += int((cycle_dem > 0).sum())
                    book.cycles_short += int(((cycle_dem > 0) & (cycle_lost > 0)).sum())
                    cycle_lost[:] = 0
                    cycle_dem[:] = 0
                day = (start + pd.Timedelta(days=t)).date()
                on_order = pipeline[t + 1:].sum(axis=0)
                inv = keys.assign(on_hand=on_hand, on_order=on_order, max_capacity=inv0["max_capacity"].to_numpy())
                if strategy == "min_max":
                    avg = demand_all[:, t0 + t - 28: t0 + t].mean(axis=1)
                    position = on_hand + on_order
                    lo, hi = np.ceil(avg * min_days), np.ceil(avg * max_days)
                    want = np.where(position < lo, hi - position, 0)
                    cases = np.ceil(want / pack)
                    room = cap - position
                    cases = np.where(cases * pack > room, np.floor(np.maximum(room, 0) / pack), cases)
                    q = (cases * pack).astype(np.int64)
                    sel = np.flatnonzero(q > 0)
                    pipeline[t + lead[sel], sel] += q[sel]
                    ordered[sel] += q[sel]
                    book.order_lines += len(sel)
                    book.units_ordered += int(q.sum())
                else:
                    daily, prot = forecasts[t]
                    policy, _ = compute_policy(inv, chain.products, prot, daily, run_date=day,
                                               lead_time_days=store_lead, settings=settings)
                    if strategy == "policy_rebalance":
                        tr = plan_transfers(policy, prot, chain.products, chain.stores, settings=settings,
                                            run_date=day, inventory=inv, value_horizon=value_horizon)
                    else:
                        tr = pd.DataFrame(columns=TRANSFER_COLUMNS)
                    orders = plan_orders(policy, tr, chain.products, chain.dcs, chain.stores, settings=settings,
                                         run_date=day, inventory=inv)
                    if len(tr):
                        src = _index_of(keys, tr["from_store_id"], tr["product_id"]).astype(np.int64)
                        dst = _index_of(keys, tr["to_store_id"], tr["product_id"]).astype(np.int64)
                        q = tr["quantity"].to_numpy(dtype=np.int64)
                        np.subtract.at(on_hand, src, q)
                        np.add.at(moved_out, src, q)
                        np.add.at(moved_in, dst, q)
                        if (on_hand < 0).any():
                            raise AssertionError("a transfer shipped more than the sender had")
                        if settings.transfer_lead_days == 0:
                            np.add.at(on_hand, dst, q)
                        else:
                            np.add.at(pipeline[t + settings.transfer_lead_days], dst, q)
                        book.units_moved += int(q.sum())
                        book.transfers += len(tr)
                        book.trips += int(tr[["from_store_id", "to_store_id"]].drop_duplicates().shape[0])
                        book.transfer_cost += float(tr["cost"].sum())
                    if len(orders):
                        oi = _index_of(keys, orders["store_id"], orders["product_id"]).astype(np.int64)
                        arrive = (pd.to_datetime(orders["expected_arrival"]) - pd.Timestamp(day)).dt.days.to_numpy()
                        q = orders["quantity"].to_numpy(dtype=np.int64)
                        np.add.at(pipeline, (t + arrive, oi), q)
                        np.add.at(ordered, oi, q)
                        book.order_lines += len(orders)
                        book.units_ordered += int(q.sum())
            d = demand[:, t]
            sold = np.minimum(on_hand, d)
            lost = d - sold
            on_hand = on_hand - sold.astype(np.int64)
            cycle_lost += lost
            lost_units += lost
            cycle_dem += d
            book.sold += float(sold.sum())
            book.lost += float(lost.sum())
            book.demand += float(d.sum())
            book.on_hand_units += float(on_hand.sum())
            value = float((on_hand * unit_cost).sum())
            book.on_hand_value += value
            book.holding_cost += value * settings.holding_cost_rate / 365.0
        book.cycles += int((cycle_dem > 0).sum())
        book.cycles_short += int(((cycle_dem > 0) & (cycle_lost > 0)).sum())
        ordering_cost = book.order_lines * settings.order_cost_per_line
        # A lost sale costs its margin (the unit stays in stock for a later sale).
        lost_margin = float((lost_units * np.maximum(price - unit_cost, 0.0)).sum())
        if positions_out is not None:
            positions_out[strategy] = keys.assign(
                demand=demand.sum(axis=1), lost_units=lost_units,
                lost_margin=lost_units * np.maximum(price - unit_cost, 0.0), moved_in=moved_in,
                moved_out=moved_out, ordered=ordered, end_on_hand=on_hand.copy())
        operating = book.holding_cost + ordering_cost + book.transfer_cost
        rows.append({
            "replay_id": replay_id, "created_at": created, "strategy": strategy,
            "start_date": start.date(), "end_date": end.date(), "days": n_days, "positions": n,
            "replan_every_days": cadence, "forecaster": forecaster if strategy != "min_max" else "trailing_28d",
            "demand_units": book.demand, "sold_units": book.sold, "lost_units": book.lost,
            "fill_rate": book.sold / book.demand if book.demand else 1.0,
            "cycle_service_level": 1 - book.cycles_short / book.cycles if book.cycles else 1.0,
            "avg_on_hand_units": book.on_hand_units / n_days, "avg_on_hand_value": book.on_hand_value / n_days,
            "units_moved": book.units_moved, "transfers": book.transfers, "trips": book.trips,
            "transfer_cost": book.transfer_cost, "order_lines": book.order_lines,
            "units_ordered": book.units_ordered, "ordering_cost": ordering_cost,
            "holding_cost": book.holding_cost, "lost_sales_cost": lost_margin,
            "operating_cost": operating, "total_cost": operating + lost_margin,
            "parameters": json.dumps({"weeks": weeks, "cadence": cadence, "min_days": min_days,
                                      "max_days": max_days, "settings": settings.as_json()}, default=str),
        })
        log(f"{strategy}: {time.perf_counter() - started:.1f}s")
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------
def save_results(results: pd.DataFrame, settings: Settings) -> int:
    """Replace this replay's rows in the warehouse table replay_results."""
    from retailopt.warehouse import open_warehouse

    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        with wh.transaction():
            for rid in results["replay_id"].unique():
                wh.execute("DELETE FROM `{dataset}.replay_results` WHERE replay_id = @replay_id",
                           {"replay_id": str(rid)})
            return wh.insert("replay_results", results)
    finally:
        wh.close()


class ReplayInBackground:
    """A replay of a chain's files in a separate process (the demo runs it beside the planning
    run, so the two share the machine's cores). Only the parent writes to the warehouse: DuckDB
    allows one writer."""

    def __init__(self, data_dir: Path, settings: Settings, *, weeks: int, forecaster: str = "engine") -> None:
        import multiprocessing
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="retailopt-replay-")
        self._out = Path(self._dir.name) / "results.pkl"
        # spawn: a clean interpreter, no fork of a parent holding solver threads or a warehouse file.
        ctx = multiprocessing.get_context("spawn")
        self._proc = ctx.Process(target=_replay_child, args=(Path(data_dir), settings, weeks, forecaster, self._out),
                                 name="retailopt-replay", daemon=True)
        self._proc.start()

    def result(self) -> pd.DataFrame:
        """Wait for the replay; its results, or ReplayError with the child's message."""
        import pickle

        try:
            self._proc.join()
            if not self._out.exists():
                raise ReplayError(f"replay process ended with exit code {self._proc.exitcode} and no result")
            status, payload = pickle.loads(self._out.read_bytes())
            if status != "ok":
                raise ReplayError(payload)
            return payload
        finally:
            self._dir.cleanup()

    def cancel(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()
        self._dir.cleanup()


class ReplayError(RuntimeError):
    """The background replay failed; the message says why."""


def _replay_child(data_dir: Path, settings: Settings, weeks: int, forecaster: str, out: Path) -> None:
    import pickle
    import traceback

    try:
        results = run_replay(load_chain(data_dir), settings=settings, weeks=weeks, forecaster=forecaster,
                             log=lambda *a: None)
        payload = ("ok", results)
    except Exception as exc:  # reported to the parent, which decides what the user sees
        payload = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    out.write_bytes(pickle.dumps(payload))


def summary_lines(results: pd.DataFrame) -> list[str]:
    """A few lines comparing the strategies (lost units and total cost), for the demo's output."""
    r = results.set_index("strategy")
    first = results.iloc[0]
    lines = [f"replay of {first['start_date']}..{first['end_date']} ({int(first['days'])} held-out days, "
             f"re-planning every {int(first['replan_every_days'])} days):"]
    for name, label in (("dc_only", "(a) no rebalancing"), ("min_max", "(b) min/max rule"),
                        ("policy_rebalance", "(c) policy + rebalancing")):
        if name in r.index:
            lines.append(f"    {label:<26} lost units {r.at[name, 'lost_units']:>9,.0f}   fill rate "
                         f"{r.at[name, 'fill_rate']:.3f}   total cost {r.at[name, 'total_cost']:>11,.0f}")
    return lines


def format_table(results: pd.DataFrame) -> str:
    cols = ["strategy", "fill_rate", "cycle_service_level", "lost_units", "avg_on_hand_units",
            "avg_on_hand_value", "units_moved", "trips", "transfer_cost", "order_lines", "ordering_cost",
            "holding_cost", "lost_sales_cost", "operating_cost", "total_cost"]
    t = results[cols].copy()
    return t.to_string(index=False, float_format=lambda v: f"{v:,.3f}" if abs(v) < 1 else f"{v:,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt replay", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="chain files (stores.csv, ..., sales.parquet); default: generate the sample chain")
    parser.add_argument("--weeks", type=int, default=6, help="held-out weeks to replay (default 6)")
    parser.add_argument("--cadence", type=int, default=None, help="days between re-plans (default: review period)")
    parser.add_argument("--forecaster", choices=("engine", "empirical"), default="engine",
                        help="retailopt.forecasting (default) or the empirical window-quantile stand-in")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--min-days", type=float, default=None, help="min/max rule: reorder below this cover")
    parser.add_argument("--max-days", type=float, default=None, help="min/max rule: order up to this cover")
    parser.add_argument("--out", type=Path, default=Path("replay_results.json"))
    parser.add_argument("--no-warehouse", action="store_true", help="do not write the replay_results table")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    settings = load_settings({"seed": args.seed} if args.seed is not None else {})
    data_dir = args.data_dir
    if data_dir is None:
        from retailopt.sample import generate_sample_chain

        data_dir = settings.data_dir / "sample_chain"
        if not (data_dir / "sales.parquet").exists():
            generate_sample_chain(data_dir, seed=settings.seed)
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies {sorted(unknown)}; choose from {', '.join(STRATEGIES)}")
    results = run_replay(load_chain(data_dir), settings=settings, weeks=args.weeks, cadence=args.cadence,
                         forecaster=args.forecaster, strategies=strategies, min_days=args.min_days,
                         max_days=args.max_days)
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(results.to_json(orient="records", date_format="iso", indent=2), encoding="utf-8")
    print(f"results: {args.out}")
    if not args.no_warehouse:
        save_results(results, settings)
        print(f"table: {settings.dataset}.replay_results (replay_id {results['replay_id'].iat[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
