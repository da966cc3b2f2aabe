"""Replay held-out demand day by day to compare planning policies (`retailopt replay`).

The last `weeks` weeks of sales are held out as the demand to replay. Every strategy starts from
the same stock (the inventory snapshot, or with `opening="neutral"` the same cover everywhere),
re-plans every `cadence` days with forecasts made only from the demand before that day, receives
distribution-centre orders after the store's lead time and transfers after transfer_lead_days,
puts on the shelf only what it holds (the rest of a delivery is refused: DC cases whole), and
loses the sales it cannot serve from stock. Strategies:

- `dc_only`: this policy, distribution-centre orders only (no rebalancing);
- `min_max`: the planners' days-of-cover rule: below `min_days` of trailing average sales,
  order up to `max_days`, in whole cases, with its shipped defaults;
- `min_max_tuned`: the same rule with the (min_days, max_days) of a small grid that cost least
  over the weeks before the replay window (never tuned on the window itself);
- `policy_rebalance`: this policy with store-to-store transfers, then DC orders;
- `hindsight`: the best plan under the same rules with the real demand known in advance
  (`retailopt.hindsight`): a bound, not a strategy anyone could run.

Forecasters: the engine (default), an empirical stand-in, and two diagnostics that no planner
has: `oracle` (the demand that happened) and `truth` (the generator's demand model, for sample
chains written with --truth-days: what noise alone costs). The forecasts at each re-planning
day are shared by all strategies (made from the recorded
demand, not from each strategy's censored sales) so the comparison isolates the decisions.
Every measure is also given without the first `warmup_days` (steady_*), where the opening stock
still decides more than the strategy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from retailopt.config import Settings, load_settings
from retailopt.demand_model import QUANTILE_COLUMNS, QUANTILE_LEVELS
from retailopt.policy import compute_policy
from retailopt.rebalance import TRANSFER_COLUMNS, assign_dcs, plan_orders, projected_stock
from retailopt.sample.demand import NOISE_LUMPY, NOISE_NEGATIVE_BINOMIAL
from retailopt.sample.truth import TRUTH_FILE, TruthModel, read_truth

FORECASTERS = ("engine", "empirical", "oracle", "truth")
TRUTH_DRAWS = 2000  # samples of each window's demand under the true model (q99 within about ±0.2 points)

STRATEGIES = ("dc_only", "min_max", "min_max_tuned", "policy_rebalance", "hindsight")
HINDSIGHT_TIME_LIMIT_S = 300.0
# The demo replays beside a planning run and should not keep its user waiting: past this, the
# bound is the LP relaxation's for the products not reached (still a true bound, only looser).
DEMO_HINDSIGHT_TIME_LIMIT_S = 30.0
RESULT_COLUMNS = [
    "replay_id", "created_at", "strategy", "start_date", "end_date", "days", "positions",
    "replan_every_days", "forecaster", "demand_units", "sold_units", "lost_units", "fill_rate",
    "cycle_service_level", "avg_on_hand_units", "avg_on_hand_value", "units_moved", "transfers", "trips",
    "transfer_cost", "order_lines", "units_ordered", "ordering_cost", "holding_cost", "lost_sales_cost",
    "operating_cost", "total_cost", "parameters",
    # Added for a fair comparison (issue 15): the measures without the first days, what shelves
    # refused, and the hindsight bound's proven lower bound on the total cost.
    "warmup_days", "steady_demand_units", "steady_lost_units", "steady_fill_rate", "steady_lost_sales_cost",
    "steady_operating_cost", "steady_total_cost", "refused_units", "cost_lower_bound",
    # Where the regret comes from (issue 15): the steady state's operating cost by component, its
    # average stock, and the stock left when the window ends (bought, held, but not yet sold).
    "steady_holding_cost", "steady_ordering_cost", "steady_transfer_cost", "steady_avg_on_hand_value",
    "end_on_hand_value",
]


@dataclass(frozen=True)
class Chain:
    stores: pd.DataFrame
    dcs: pd.DataFrame
    products: pd.DataFrame
    inventory: pd.DataFrame
    sales: pd.DataFrame
    # The fleet (vehicles.csv): transfers are priced by, and charged, the routes solved for them.
    vehicles: pd.DataFrame | None = None
    # The generator's demand model (sample/truth.py), for the diagnostic `truth` forecaster only.
    truth_path: Path | None = None


def load_chain(data_dir: Path) -> Chain:
    """The files a user brings (or the sample chain writes)."""
    data_dir = Path(data_dir)
    ids = {"store_id": str, "product_id": str, "dc_id": str}
    sales = pd.read_parquet(data_dir / "sales.parquet")
    sales["sale_date"] = pd.to_datetime(sales["sale_date"])
    sales["store_id"] = sales["store_id"].astype(str)
    sales["product_id"] = sales["product_id"].astype(str)
    vehicles = data_dir / "vehicles.csv"
    truth = data_dir / TRUTH_FILE
    return Chain(stores=pd.read_csv(data_dir / "stores.csv", dtype=ids),
                 dcs=pd.read_csv(data_dir / "distribution_centers.csv", dtype=ids),
                 products=pd.read_csv(data_dir / "products.csv", dtype=ids),
                 inventory=pd.read_csv(data_dir / "inventory.csv", dtype=ids), sales=sales,
                 vehicles=pd.read_csv(vehicles, dtype={"vehicle_id": str, "depot_id": str})
                 if vehicles.exists() else None,
                 truth_path=truth if truth.exists() else None)


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


def oracle_forecast(demand_all: np.ndarray, upto: int, window: np.ndarray, keys: pd.DataFrame, start: date,
                    horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A diagnostic, not a forecaster: the demand that did happen from column `upto` on, as a
    forecast without error (every window quantile equal to the actual window sum; days past the
    recorded ones at the trailing 28-day mean). Replaying the policy with it separates what
    forecast error costs from what the policy's own rules cost: the gap that remains to the
    hindsight plan is the rules'. Planned as a point mass only with slow_mover_daily_demand=0
    (a slow mover is otherwise given a Poisson demand around the actual window sum)."""
    future = demand_all[:, upto:upto + horizon].astype(np.float64)
    if future.shape[1] < horizon:
        trailing = demand_all[:, max(upto - 28, 0):upto].mean(axis=1) if upto > 0 else np.zeros(len(demand_all))
        future = np.concatenate([future, np.repeat(trailing[:, None], horizon - future.shape[1], axis=1)], axis=1)
    csum = np.concatenate([np.zeros((len(future), 1)), np.cumsum(future, axis=1)], axis=1)
    sums = csum[np.arange(len(future)), np.minimum(window, horizon)]
    prot = keys.assign(window_days=window, demand_mean=sums, demand_std=0.0,
                       **{c: sums for c in QUANTILE_COLUMNS}, model="oracle")
    return _daily(keys, start, future), prot


def _daily(keys: pd.DataFrame, start: date, means: np.ndarray) -> pd.DataFrame:
    """Daily forecast rows (store_id, product_id, forecast_date, forecast_mean) from a positions x
    days array of means, the days counted from `start`."""
    horizon = means.shape[1]
    return pd.DataFrame({
        "store_id": np.repeat(keys["store_id"].to_numpy(), horizon),
        "product_id": np.repeat(keys["product_id"].to_numpy(), horizon),
        "forecast_date": np.tile(pd.date_range(start, periods=horizon, freq="D"), len(keys)),
        "forecast_mean": means.ravel()})


def truth_forecast(truth: TruthModel, window: np.ndarray, keys: pd.DataFrame, start: date, horizon: int,
                   seed: int, draws: int = TRUTH_DRAWS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A diagnostic, not a forecaster: the generator's own demand model (sample/truth.py), the
    best forecast anyone not knowing the future could make. Daily means are the true expected
    units; each window's mean and standard deviation are exact, its quantiles those of `draws`
    samples drawn like the generator draws demand (from their own random stream: the demand that
    happened is not used). Replaying the policy with it shows the regret that the noise alone
    forces on a policy that does not know the future; what remains between the engine's
    forecasts and it is what the forecast could still gain."""
    mean = truth.expected(pd.Timestamp(start), horizon)
    w = np.minimum(window, horizon)
    in_window = np.arange(horizon)[None, :] < w[:, None]
    m = np.where(in_window, mean, 0.0)
    occ = truth.noise != NOISE_NEGATIVE_BINOMIAL
    # Exact variance per day: NB(k, m) has m + m^2/k; an occurrence B*S has p E[S^2] - (p E[S])^2.
    k = np.where(truth.dispersion > 0, truth.dispersion, np.inf)[:, None]
    size_mean = truth.size_mean[:, None]
    size_var = np.where((truth.noise == NOISE_LUMPY)[:, None], size_mean + size_mean ** 2 / k, size_mean)
    p_occ = np.clip(m / (1.0 + size_mean), 0.0, 1.0)
    var_day = np.where(occ[:, None], p_occ * (size_var + (1.0 + size_mean) ** 2) - m ** 2, m + m ** 2 / k)
    rng = np.random.default_rng([seed, pd.Timestamp(start).toordinal()])
    q = np.zeros((len(keys), len(QUANTILE_COLUMNS)))
    for lo in range(0, len(keys), 500):  # bounded memory: 500 rows x draws x one day at a time
        rows = slice(lo, lo + 500)
        sub = TruthModel(mean=truth.mean[rows], first_day=truth.first_day, noise=truth.noise[rows],
                         dispersion=truth.dispersion[rows], size_mean=truth.size_mean[rows])
        sums = sub.draw_window_sums(np.where(in_window[rows], mean[rows], np.nan), draws, rng)
        q[rows] = np.quantile(sums, QUANTILE_LEVELS, axis=1).T
    prot = keys.assign(window_days=window, demand_mean=m.sum(axis=1), demand_std=np.sqrt(np.maximum(var_day, 0).sum(axis=1)),
                       **{c: q[:, i] for i, c in enumerate(QUANTILE_COLUMNS)}, model="truth")
    return _daily(keys, start, mean), prot


def _forecast_at(forecaster: str, demand_all: np.ndarray, all_days: pd.DatetimeIndex, upto: int,
                 keys: pd.DataFrame, window: np.ndarray, price: np.ndarray, day: date,
                 settings: Settings, promo_all: np.ndarray | None = None,
                 truth: TruthModel | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(daily, protection) forecasts made on `day` from the demand of the days before it only.

    With `promo_all` (series × day promotion flags) the engine also gets the promotions of the
    days ahead as the plan: a planner knows their own promotions in advance."""
    if forecaster == "empirical":
        return empirical_quantile_forecast(demand_all[:, :upto], window, keys, day, int(window.max()))
    if forecaster == "oracle":
        return oracle_forecast(demand_all, upto, window, keys, day, int(window.max()))
    if forecaster == "truth":
        if truth is None:
            raise ValueError("forecaster 'truth' needs the chain's demand model (demand_truth.parquet)")
        return truth_forecast(truth, window, keys, day, int(window.max()), settings.seed)
    if forecaster != "engine":
        raise ValueError(f"forecaster={forecaster!r}: expected one of {', '.join(FORECASTERS)}")
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
    from retailopt.forecasting.frequency import history_frequency

    # Several weekly grids are forecast grid by grid; daily sales on some days only stay daily.
    freq = history_frequency(settings.data_frequency, history)[0]
    if not freq.daily:  # weekly or monthly sales: forecast in periods, windows restated in days
        from retailopt.forecasting.periodic import forecast_for_days

        res = forecast_for_days(history, keys, freq, forecast_start=day, horizon_days=horizon,
                                window_days=keys.assign(window_days=window),
                                confidence_level=settings.confidence_level,
                                holiday_country=settings.holiday_country, seed=settings.seed)
        return res.daily, res.protection
    res = engine(history, keys, forecast_start=day, horizon=horizon,
                 window_days=keys.assign(window_days=window), confidence_level=settings.confidence_level,
                 holiday_country=settings.holiday_country, seed=settings.seed, future_promotions=plan,
                 frequency=freq)
    return res.daily, res.protection


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------
@dataclass
class _World:
    """What every strategy of one replay shares: positions, demand, costs, the opening stock."""
    keys: pd.DataFrame
    demand: np.ndarray  # (n, days) the replayed demand
    demand_all: np.ndarray  # (n, all days) every recorded day, for trailing averages
    t0: int  # column of demand_all where the replay starts
    start: pd.Timestamp
    lead: np.ndarray  # (n,) DC lead time in days
    store_lead: pd.Series  # store_id -> lead time
    unit_cost: np.ndarray
    price: np.ndarray
    pack: np.ndarray
    max_capacity: np.ndarray  # (n,) the shelf as the data has it (NaN: none)
    shelf: np.ndarray  # (n,) what the shelf physically holds: max_capacity, or the opening stock if larger
    on_hand: np.ndarray  # (n,) opening stock
    on_order: np.ndarray  # (n,) opening open orders, arriving after one lead time
    replan: list[int]
    cadence: int
    settings: Settings

    @property
    def n_days(self) -> int:
        return self.demand.shape[1]

    @property
    def margin(self) -> np.ndarray:
        return np.maximum(self.price - self.unit_cost, 0.0)


@dataclass
class _Decision:
    """What a strategy does on a re-planning day."""
    order_units: np.ndarray  # (n,) units ordered from the DC (whole cases)
    order_arrival: np.ndarray  # (n,) days until they arrive
    src: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # transfers: position out
    dst: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # position in
    qty: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cost: float = 0.0
    trips: int = 0
    each_cost: np.ndarray | None = None  # cost of each transfer (sums to cost)
    # Days until each transfer arrives (the plan's expected_arrival); None: transfer_lead_days.
    arrive_in: np.ndarray | None = None


@dataclass
class _Outcome:
    days: dict[str, np.ndarray]  # per-day totals over positions
    cycles: int
    cycles_short: int
    lost_units: np.ndarray  # (n,)
    moved_in: np.ndarray
    moved_out: np.ndarray
    ordered: np.ndarray
    end_on_hand: np.ndarray
    cost_by_position: np.ndarray  # holding + lost margin + order lines + transfers sent (total cost, split)
    decisions: dict[int, _Decision]  # what was done on each re-planning day


_BIG = 10 ** 15  # "no limit" for a shelf, within int64 once rounded


def _simulate(world: _World, decide, demand: np.ndarray | None = None, on_hand0: np.ndarray | None = None,
              on_order0: np.ndarray | None = None) -> _Outcome:
    """Day by day: morning arrivals (what the shelf cannot hold is refused: open orders unit by
    unit, then DC cases whole; transfers, planned against their own room, are put away after them
    and never refused), re-planning (`decide(t, on_hand, on_order)`), then the day's demand, lost
    where the shelf is empty; holding on the evening stock."""
    s = world.settings
    demand = world.demand if demand is None else demand
    n, n_days = demand.shape
    on_hand = (world.on_hand if on_hand0 is None else on_hand0).astype(np.int64).copy()
    on_order0 = world.on_order if on_order0 is None else on_order0
    horizon = n_days + int(world.lead.max()) + s.transfer_lead_days + 2
    units_in = np.zeros((horizon, n), dtype=np.int64)  # open orders
    cases_in = np.zeros((horizon, n), dtype=np.int64)  # DC orders, in cases
    moved_in_at = np.zeros((horizon, n), dtype=np.int64)  # transfers
    units_in[world.lead, np.arange(n)] += on_order0
    pack = world.pack.astype(np.int64)
    shelf = world.shelf
    day = {k: np.zeros(n_days) for k in ("demand", "sold", "lost", "lost_margin", "on_hand_units", "on_hand_value",
                                         "holding", "order_lines", "units_ordered", "units_moved", "transfers",
                                         "trips", "transfer_cost", "refused")}
    cycle_lost, cycle_dem = np.zeros(n), np.zeros(n)
    cycles = cycles_short = 0
    lost_units = np.zeros(n)
    moved_in, moved_out, ordered = (np.zeros(n, dtype=np.int64) for _ in range(3))
    cost_by_position = np.zeros(n)
    decisions: dict[int, _Decision] = {}
    for t in range(n_days):
        # Arrivals: never taking stock off the shelf, never filling it beyond what it holds.
        room = np.maximum(shelf - on_hand, 0)
        take = np.minimum(units_in[t], np.where(np.isfinite(room), room, _BIG)).astype(np.int64)
        on_hand += take
        refused = float((units_in[t] - take).sum())
        room = np.maximum(shelf - on_hand, 0)
        fit = np.where(np.isfinite(room), np.floor(room / pack), _BIG)
        cases = np.minimum(cases_in[t], fit).astype(np.int64)
        on_hand += cases * pack
        refused += float(((cases_in[t] - cases) * pack).sum())
        day["refused"][t] = refused
        # Transfers were planned against their own room on this day: put away, never refused.
        on_hand += moved_in_at[t]
        if t in world.replan:
            if t > 0:
                cycles += int((cycle_dem > 0).sum())
                cycles_short += int(((cycle_dem > 0) & (cycle_lost > 0)).sum())
                cycle_lost[:] = 0
                cycle_dem[:] = 0
            on_order = units_in[t + 1:].sum(axis=0) + (cases_in[t + 1:] * pack).sum(axis=0) \
                + moved_in_at[t + 1:].sum(axis=0)
            plan = decide(t, on_hand.copy(), on_order)
            decisions[t] = plan
            if len(plan.qty):
                np.subtract.at(on_hand, plan.src, plan.qty)
                if (on_hand < 0).any():
                    raise AssertionError("a transfer shipped more than the sender had")
                np.add.at(moved_out, plan.src, plan.qty)
                np.add.at(moved_in, plan.dst, plan.qty)
                # Received on the day the plan delivers them (rebalance.delivery_day), as the routes do.
                days = plan.arrive_in if plan.arrive_in is not None else \
                    np.full(len(plan.qty), s.transfer_lead_days, dtype=np.int64)
                now = days <= 0
                np.add.at(on_hand, plan.dst[now], plan.qty[now])
                np.add.at(moved_in_at, (t + days[~now], plan.dst[~now]), plan.qty[~now])
                day["units_moved"][t] = float(plan.qty.sum())
                day["transfers"][t] = len(plan.qty)
                day["trips"][t] = plan.trips
                day["transfer_cost"][t] = plan.cost
                each = plan.each_cost if plan.each_cost is not None else \
                    np.full(len(plan.qty), plan.cost / max(len(plan.qty), 1))
                np.add.at(cost_by_position, plan.src, each)
            sel = np.flatnonzero(plan.order_units > 0)
            if len(sel):
                np.add.at(cases_in, (t + plan.order_arrival[sel], sel), plan.order_units[sel] // pack[sel])
                ordered[sel] += plan.order_units[sel]
                day["order_lines"][t] = len(sel)
                cost_by_position[sel] += s.order_cost_per_line
                day["units_ordered"][t] = float(plan.order_units[sel].sum())
        d = demand[:, t]
        sold = np.minimum(on_hand, d)
        lost = d - sold
        on_hand = on_hand - sold.astype(np.int64)
        cycle_lost += lost
        cycle_dem += d
        lost_units += lost
        day["demand"][t] = float(d.sum())
        day["sold"][t] = float(sold.sum())
        day["lost"][t] = float(lost.sum())
        day["lost_margin"][t] = float((lost * world.margin).sum())
        day["on_hand_units"][t] = float(on_hand.sum())
        cost_by_position += on_hand * world.unit_cost * (s.holding_cost_rate / 365.0) + lost * world.margin
        value = float((on_hand * world.unit_cost).sum())
        day["on_hand_value"][t] = value
        day["holding"][t] = value * s.holding_cost_rate / 365.0
    cycles += int((cycle_dem > 0).sum())
    cycles_short += int(((cycle_dem > 0) & (cycle_lost > 0)).sum())
    return _Outcome(days=day, cycles=cycles, cycles_short=cycles_short, lost_units=lost_units, moved_in=moved_in,
                    moved_out=moved_out, ordered=ordered, end_on_hand=on_hand, cost_by_position=cost_by_position,
                    decisions=decisions)


def _nothing(world: _World) -> _Decision:
    n = len(world.keys)
    return _Decision(order_units=np.zeros(n, dtype=np.int64), order_arrival=world.lead.copy())


def _index_of(keys: pd.DataFrame, store: pd.Series, product: pd.Series) -> np.ndarray:
    lookup = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["store_id", "product_id"]]))
    return lookup.reindex(pd.MultiIndex.from_arrays([store.astype(str), product.astype(str)])).to_numpy()


def _min_max_rule(world: _World, min_days: float, max_days: float, t0: int | None = None):
    """The planners' rule: below `min_days` of trailing 28-day average sales, order up to
    `max_days`, in whole cases that fit the shelf on the delivery day."""
    t0 = world.t0 if t0 is None else t0

    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> _Decision:
        avg = world.demand_all[:, t0 + t - 28: t0 + t].mean(axis=1)
        position = on_hand + on_order
        lo, hi = np.ceil(avg * min_days), np.ceil(avg * max_days)
        want = np.where(position < lo, hi - position, 0)
        cases = np.ceil(want / world.pack)
        at_delivery = projected_stock(on_hand, on_order, avg, world.lead)
        room = np.nan_to_num(world.max_capacity, nan=np.inf) - at_delivery
        cases = np.where(cases * world.pack > room, np.floor(np.maximum(room, 0) / world.pack), cases)
        return _Decision(order_units=(cases * world.pack).astype(np.int64), order_arrival=world.lead)
    return decide


def _transfers_at(chain: Chain, policy: pd.DataFrame, prot: pd.DataFrame, inv: pd.DataFrame, day: date,
                  settings: Settings, value_horizon: str, reprice: bool) -> pd.DataFrame:
    """The day's transfers, each with `cost` = handling + its share of the routes solved for them
    (`transfer_pricing`; the replay charges that, not a per-unit estimate). `reprice=False` plans
    with the per-unit proxy and still charges its routes. Without vehicles.csv: the proxy's cost."""
    from retailopt.transfer_pricing import DayBackground, own_orders_due, plan_priced_transfers

    # Beside the orders of the day arriving with them (with weekly re-planning only the day's own
    # orders can, where a centre's lead time is the transfers').
    background = None
    if chain.vehicles is not None and len(chain.vehicles):
        background = DayBackground(transfers=pd.DataFrame(), orders=own_orders_due(
            policy, chain.products, chain.dcs, chain.stores, settings=settings, run_date=day, inventory=inv))
    transfers, _ = plan_priced_transfers(policy, prot, chain.products, chain.stores, chain.dcs, chain.vehicles,
                                         settings=settings, run_date=day, inventory=inv,
                                         value_horizon=value_horizon, reprice=reprice, background=background)
    return transfers


def _policy_rule(world: _World, chain: Chain, forecasts: dict, rebalance: bool, value_horizon: str,
                 reprice_transfers: bool = True):
    settings = world.settings

    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> _Decision:
        day = (world.start + pd.Timedelta(days=t)).date()
        inv = world.keys.assign(on_hand=on_hand, on_order=on_order, max_capacity=world.max_capacity)
        daily, prot = forecasts[t]
        policy, _ = compute_policy(inv, chain.products, prot, daily, run_date=day, lead_time_days=world.store_lead,
                                   settings=settings)
        tr = _transfers_at(chain, policy, prot, inv, day, settings, value_horizon, reprice_transfers) \
            if rebalance else pd.DataFrame(columns=TRANSFER_COLUMNS)
        orders = plan_orders(policy, tr, chain.products, chain.dcs, chain.stores, settings=settings,
                             run_date=day, inventory=inv)
        n = len(world.keys)
        units, arrival = np.zeros(n, dtype=np.int64), world.lead.copy()
        if len(orders):
            oi = _index_of(world.keys, orders["store_id"], orders["product_id"]).astype(np.int64)
            np.add.at(units, oi, orders["quantity"].to_numpy(dtype=np.int64))
            arrival[oi] = (pd.to_datetime(orders["expected_arrival"]) - pd.Timestamp(day)).dt.days.to_numpy()
        out = _Decision(order_units=units, order_arrival=arrival)
        if len(tr):
            out.src = _index_of(world.keys, tr["from_store_id"], tr["product_id"]).astype(np.int64)
            out.dst = _index_of(world.keys, tr["to_store_id"], tr["product_id"]).astype(np.int64)
            out.qty = tr["quantity"].to_numpy(dtype=np.int64)
            out.arrive_in = (pd.to_datetime(tr["expected_arrival"]) - pd.Timestamp(day)).dt.days.to_numpy(
                dtype=np.int64)
            out.each_cost = tr["cost"].to_numpy(dtype=float)
            out.cost = float(out.each_cost.sum())
            out.trips = int(tr[["from_store_id", "to_store_id"]].drop_duplicates().shape[0])
        return out
    return decide


# A small grid around the shipped defaults (review period + 3 and + 14 more days of cover).
MIN_MAX_GRID_MIN_DAYS = (4.0, 7.0, 10.0, 14.0)
MIN_MAX_GRID_SPREAD_DAYS = (4.0, 7.0, 14.0, 21.0)


def tune_min_max(world: _World, tune_days: int, log=print) -> tuple[float, float, list[dict]]:
    """The min/max rule's best (min_days, max_days) on a grid, judged by total cost over the
    `tune_days` days just before the replay window (never on the window itself), each start
    from the same neutral stock (`neutral_opening`)."""
    t_start = world.t0 - tune_days
    if t_start < 28:
        raise ValueError(f"tuning the min/max rule needs {tune_days} + 28 days of sales before the replay window; "
                         f"there are {world.t0}")
    demand = world.demand_all[:, t_start:world.t0]
    on_hand0 = neutral_opening(world, t_start)
    tuning = dataclasses.replace(world, replan=list(range(0, tune_days, world.cadence)))
    grid = []
    for lo in MIN_MAX_GRID_MIN_DAYS:
        for spread in MIN_MAX_GRID_SPREAD_DAYS:
            out = _simulate(tuning, _min_max_rule(world, lo, lo + spread, t0=t_start), demand=demand,
                            on_hand0=on_hand0, on_order0=np.zeros(len(on_hand0), dtype=np.int64))
            total = _totals(out, world.settings, 0)
            grid.append({"min_days": lo, "max_days": lo + spread, "total_cost": round(total["total_cost"], 2),
                         "lost_units": total["lost_units"]})
    best = min(grid, key=lambda g: (g["total_cost"], g["min_days"], g["max_days"]))
    log(f"min/max tuned on {tune_days} days before the window: min {best['min_days']:g}, max {best['max_days']:g} "
        f"days of cover (total cost {best['total_cost']:,.0f})")
    return best["min_days"], best["max_days"], grid


def neutral_opening(world: _World, t: int) -> np.ndarray:
    """Stock that favours no store: every position holds its trailing 28-day average demand for
    one lead time plus one review period (the same cover everywhere), within its shelf."""
    avg = world.demand_all[:, t - 28:t].mean(axis=1) if t >= 28 else world.demand_all[:, :max(t, 1)].mean(axis=1)
    cover = world.lead + world.settings.review_period_days
    stock = np.ceil(avg * cover - 1e-9)
    return np.minimum(stock, np.nan_to_num(world.max_capacity, nan=np.inf)).astype(np.int64)


def _hindsight_rule(world: _World, chain: Chain, time_limit_s: float, log,
                    others: dict[str, _Outcome] | None = None):
    """Solve the hindsight bound once (`retailopt.hindsight`) and replay the best plan known for
    each product: the solver's, or, where one was cheaper, the plan another strategy of this
    replay carried out (anyone knowing the demand could have made it): the products do not
    interact in the replay, so the hindsight row is never worse than any strategy before it."""
    from retailopt.geo import distance_matrix_km
    from retailopt.hindsight import HindsightProblem, solve_hindsight

    s = world.settings
    keys = world.keys
    n, n_days = world.demand.shape
    arrivals = np.zeros((n, n_days))
    early = world.lead < n_days
    arrivals[np.flatnonzero(early), world.lead[early]] = world.on_order[early]
    # Pairs of positions of one product whose stores are within max_transfer_km.
    st = chain.stores.assign(store_id=chain.stores["store_id"].astype(str)).drop_duplicates("store_id")
    store_ids = pd.Index(sorted(keys["store_id"].unique()))
    st = st.set_index("store_id").reindex(store_ids)
    km = distance_matrix_km(st["latitude"], st["longitude"], st["latitude"], st["longitude"])
    s_code = store_ids.get_indexer(keys["store_id"])
    p_code, _ = pd.factorize(keys["product_id"])
    order = np.lexsort((s_code, p_code))
    pf, pt = [], []
    starts = np.flatnonzero(np.r_[True, p_code[order][1:] != p_code[order][:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        members = order[a:b]
        i, j = np.meshgrid(members, members, indexing="ij")
        near = (i != j) & (km[s_code[i], s_code[j]] <= s.max_transfer_km)
        pf.append(i[near])
        pt.append(j[near])
    pair_from = np.concatenate(pf) if pf else np.zeros(0, dtype=np.int64)
    pair_to = np.concatenate(pt) if pt else np.zeros(0, dtype=np.int64)
    pair_cost = s.handling_cost_per_unit + s.transport_cost_per_unit_km * km[s_code[pair_from], s_code[pair_to]]
    problem = HindsightProblem(
        demand=world.demand, on_hand=world.on_hand, arrivals=arrivals, lead=world.lead, shelf=world.shelf,
        pack=world.pack, holding=world.unit_cost * s.holding_cost_rate / 365.0, margin=world.margin,
        orderable=np.ones(n, dtype=bool), product=p_code, replan_days=np.asarray(world.replan),
        order_cost=s.order_cost_per_line, pair_from=pair_from, pair_to=pair_to, pair_cost=pair_cost,
        transfer_lead=s.transfer_lead_days, min_transfer_units=s.min_transfer_units)
    plan = solve_hindsight(problem, time_limit_s=time_limit_s, log=log)
    log(f"hindsight: {plan.seconds:.1f}s, statuses {plan.statuses}, cost {plan.objective:,.0f}, "
        f"lower bound {plan.bound:,.0f}")
    store_of = keys["store_id"].to_numpy()
    # The best source per product: the solver's plan, or another strategy's.
    n_codes = len(plan.product_cost)
    best = plan.product_cost.copy()
    source = np.full(n_codes, "", dtype=object)
    for name, outcome in (others or {}).items():
        cost = np.bincount(p_code, weights=outcome.cost_by_position, minlength=n_codes)
        better = cost < best - 1e-9
        best[better], source[better] = cost[better], name
    chosen = {name: np.flatnonzero(source == name) for name in set(source)}
    log("hindsight plan per product: " + ", ".join(f"{name or 'solver'} {len(codes)}"
                                                  for name, codes in sorted(chosen.items())))
    of_source = source[p_code]

    def decide(t: int, on_hand: np.ndarray, on_order: np.ndarray) -> _Decision:
        out = _solver_decision(t, on_hand)
        for name in chosen:
            if not name:
                continue
            theirs = others[name].decisions[t]
            rows = of_source == name
            out.order_units = np.where(rows, theirs.order_units, out.order_units)
            out.order_arrival = np.where(rows, theirs.order_arrival, out.order_arrival)
            if len(theirs.qty):
                keep = rows[theirs.src]
                each = theirs.each_cost if theirs.each_cost is not None else \
                    np.full(len(theirs.qty), theirs.cost / len(theirs.qty))
                out.src = np.concatenate([out.src, theirs.src[keep]])
                out.dst = np.concatenate([out.dst, theirs.dst[keep]])
                out.qty = np.concatenate([out.qty, theirs.qty[keep]])
                out.each_cost = np.concatenate([out.each_cost, each[keep]])
        out.cost = float(out.each_cost.sum())
        out.trips = int(pd.DataFrame({"a": store_of[out.src], "b": store_of[out.dst]}).drop_duplicates().shape[0])
        return out

    def _solver_decision(t: int, on_hand: np.ndarray) -> _Decision:
        r = world.replan.index(t)
        mine = of_source == ""
        out = _Decision(order_units=np.where(mine, plan.orders[:, r], 0), order_arrival=world.lead.copy(),
                        each_cost=np.zeros(0))
        moved = np.flatnonzero((plan.transfers[:, r] > 0) & mine[pair_from])
        if len(moved):
            qty = plan.transfers[moved, r].copy()
            # Within the solver's tolerances a sender may be a fraction short: ship what it has.
            left = on_hand.copy()
            for a in np.argsort(-qty, kind="stable"):
                qty[a] = min(qty[a], left[pair_from[moved[a]]])
                left[pair_from[moved[a]]] -= qty[a]
            keep = qty > 0
            moved, qty = moved[keep], qty[keep]
            out.src, out.dst, out.qty = pair_from[moved], pair_to[moved], qty
            out.each_cost = out.qty * pair_cost[moved]
        return out
    return decide, plan, {name or "solver": len(codes) for name, codes in chosen.items()}


def _totals(out: _Outcome, settings: Settings, warmup: int) -> dict:
    """The replay_results measures over every day, and the steady_* ones from day `warmup` on
    (orders and transfers counted on the day they are placed)."""
    d = out.days
    ordering = d["order_lines"] * settings.order_cost_per_line
    operating = d["holding"] + ordering + d["transfer_cost"]
    n_days = len(d["demand"])
    steady = slice(min(warmup, n_days), n_days)
    demand, sold = d["demand"].sum(), d["sold"].sum()
    s_dem, s_sold = d["demand"][steady].sum(), d["sold"][steady].sum()
    return {
        "demand_units": demand, "sold_units": sold, "lost_units": d["lost"].sum(),
        "fill_rate": sold / demand if demand else 1.0,
        "avg_on_hand_units": d["on_hand_units"].mean(), "avg_on_hand_value": d["on_hand_value"].mean(),
        "units_moved": int(d["units_moved"].sum()), "transfers": int(d["transfers"].sum()),
        "trips": int(d["trips"].sum()), "transfer_cost": d["transfer_cost"].sum(),
        "order_lines": int(d["order_lines"].sum()), "units_ordered": int(d["units_ordered"].sum()),
        "ordering_cost": ordering.sum(), "holding_cost": d["holding"].sum(), "lost_sales_cost": d["lost_margin"].sum(),
        "operating_cost": operating.sum(), "total_cost": operating.sum() + d["lost_margin"].sum(),
        "warmup_days": int(steady.start), "steady_demand_units": s_dem, "steady_lost_units": d["lost"][steady].sum(),
        "steady_fill_rate": s_sold / s_dem if s_dem else 1.0, "steady_lost_sales_cost": d["lost_margin"][steady].sum(),
        "steady_operating_cost": operating[steady].sum(),
        "steady_total_cost": operating[steady].sum() + d["lost_margin"][steady].sum(),
        "refused_units": d["refused"].sum(),
        "steady_holding_cost": d["holding"][steady].sum(), "steady_ordering_cost": ordering[steady].sum(),
        "steady_transfer_cost": d["transfer_cost"][steady].sum(),
        "steady_avg_on_hand_value": d["on_hand_value"][steady].mean() if steady.start < n_days else 0.0,
        "end_on_hand_value": d["on_hand_value"][-1] if n_days else 0.0,
    }


def run_replay(chain: Chain, *, settings: Settings, weeks: int = 6, cadence: int | None = None,
               forecaster: str = "engine", strategies: tuple[str, ...] = STRATEGIES,
               min_days: float | None = None, max_days: float | None = None,
               replay_id: str | None = None, value_horizon: str = "lead_time", log=print,
               forecasts: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
               positions_out: dict[str, pd.DataFrame] | None = None, opening: str = "snapshot",
               warmup_days: int | None = None, tune_weeks: int | None = None,
               hindsight_time_limit_s: float = HINDSIGHT_TIME_LIMIT_S,
               reprice_transfers: bool = True) -> pd.DataFrame:
    """Replay the last `weeks` weeks of demand under each strategy; one replay_results row each.

    `opening` is "snapshot" (the inventory file's stock and open orders) or "neutral" (every
    position at the same cover, `neutral_opening`, nothing on order). The steady_* measures
    leave out the first `warmup_days` (default: one re-planning cycle plus the longest lead
    time). `min_max_tuned` is the min/max rule with the grid point that cost least over the
    `tune_weeks` weeks before the window (default `weeks`). `hindsight` is the bound of
    `retailopt.hindsight`, solved within `hindsight_time_limit_s`.

    `forecasts` (re-planning day offset -> (daily, protection)) is filled in place, so a second
    call with the same dict reuses them; `positions_out`, when given, receives each strategy's
    per-position demand, lost units and lost margin (for diagnosis)."""
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; choose from {', '.join(STRATEGIES)}")
    if opening not in ("snapshot", "neutral"):
        raise ValueError(f"opening={opening!r}: expected 'snapshot' or 'neutral'")
    if forecaster not in FORECASTERS:
        raise ValueError(f"forecaster={forecaster!r}: expected one of {', '.join(FORECASTERS)}")
    if forecaster == "truth" and chain.truth_path is None:
        raise ValueError(f"forecaster 'truth' needs the chain's demand model ({TRUTH_FILE}), which only "
                         "`retailopt generate-sample --truth-days N` writes: a diagnostic, not for real chains")
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
    if t0 < 0:
        raise ValueError(f"{weeks} weeks to replay but only {len(all_days)} days of sales")

    dc_of = assign_dcs(chain.stores, chain.dcs).set_index("store_id")
    store_lead = pd.to_numeric(dc_of["lead_time_days"], errors="coerce").fillna(1).clip(lower=1).astype(int)
    lead = keys["store_id"].map(store_lead).fillna(1).to_numpy(dtype=np.int64)
    window = lead + settings.review_period_days
    prods = chain.products.assign(product_id=chain.products["product_id"].astype(str)).set_index("product_id")
    unit_cost = keys["product_id"].map(prods["unit_cost"]).fillna(0).to_numpy(dtype=float)
    price = keys["product_id"].map(prods["price"]).fillna(0).to_numpy(dtype=float)
    pack = keys["product_id"].map(prods["case_pack"]).fillna(1).clip(lower=1).to_numpy(dtype=float)
    inv0 = chain.inventory.assign(store_id=chain.inventory["store_id"].astype(str),
                                  product_id=chain.inventory["product_id"].astype(str)) \
        .drop_duplicates(["store_id", "product_id"], keep="last")
    inv0 = keys.merge(inv0, on=["store_id", "product_id"], how="left")
    max_capacity = pd.to_numeric(inv0["max_capacity"], errors="coerce").to_numpy(dtype=float)
    world = _World(keys=keys, demand=demand_all[:, t0:], demand_all=demand_all, t0=t0, start=start, lead=lead,
                   store_lead=store_lead, unit_cost=unit_cost, price=price, pack=pack, max_capacity=max_capacity,
                   shelf=np.zeros(n), on_hand=np.zeros(n, dtype=np.int64), on_order=np.zeros(n, dtype=np.int64),
                   replan=list(range(0, n_days, cadence)), cadence=cadence, settings=settings)
    if opening == "snapshot":
        world.on_hand = np.maximum(inv0["on_hand"].fillna(0).to_numpy(dtype=np.int64), 0)
        world.on_order = np.maximum(inv0["on_order"].fillna(0).to_numpy(dtype=np.int64), 0)
    else:
        world.on_hand = neutral_opening(world, t0)
    # A shelf holds at least what it held at the start.
    world.shelf = np.maximum(np.nan_to_num(max_capacity, nan=np.inf), world.on_hand + world.on_order)
    warmup = int(cadence + lead.max()) if warmup_days is None else int(warmup_days)

    # Forecasts per re-planning day, shared by the strategies.
    need_fc = any(s in ("dc_only", "policy_rebalance") for s in strategies)
    truth = read_truth(chain.truth_path, keys) if need_fc and forecaster == "truth" else None
    if forecasts is None:
        forecasts = {}
    for t in world.replan if need_fc else []:
        if t in forecasts:
            continue
        day = (start + pd.Timedelta(days=t)).date()
        started = time.perf_counter()
        forecasts[t] = _forecast_at(forecaster, demand_all, all_days, t0 + t, keys, window, price, day, settings,
                                    promo_all, truth)
        log(f"forecast for {day}: {time.perf_counter() - started:.1f}s")

    rows = []
    created = datetime.now(timezone.utc)
    replay_id = replay_id or f"replay-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    min_days = float(min_days if min_days is not None else settings.review_period_days + 3)
    max_days = float(max_days if max_days is not None else min_days + 14)
    base = {"weeks": weeks, "cadence": cadence, "opening": opening, "warmup_days": warmup,
            "min_days": min_days, "max_days": max_days,
            "transfer_pricing": "routes" if reprice_transfers else "per-unit"}
    outcomes: dict[str, _Outcome] = {}
    # The hindsight row takes, product by product, the best plan known: the other strategies run first.
    for strategy in sorted(strategies, key=lambda name: name == "hindsight"):
        started = time.perf_counter()
        extra: dict = {}
        bound = None
        if strategy == "min_max":
            decide = _min_max_rule(world, min_days, max_days)
        elif strategy == "min_max_tuned":
            tune_days = 7 * (tune_weeks or weeks)
            lo, hi, grid = tune_min_max(world, tune_days, log=log)
            decide = _min_max_rule(world, lo, hi)
            extra = {"tuned_min_days": lo, "tuned_max_days": hi, "tuning_days": tune_days, "tuning_grid": grid}
        elif strategy == "hindsight":
            decide, plan, sources = _hindsight_rule(world, chain, hindsight_time_limit_s, log, outcomes)
            bound = plan.bound
            extra = {"solver_statuses": plan.statuses, "solver_plan_total_cost": plan.objective,
                     "lower_bound_total_cost": plan.bound, "solve_seconds": round(plan.seconds, 1),
                     "plan_source_by_product": sources,
                     "relaxed_in_bound": ["store capacity_units", "min_transfer_value"]}
        else:
            decide = _policy_rule(world, chain, forecasts, strategy == "policy_rebalance", value_horizon,
                                  reprice_transfers)
        out = _simulate(world, decide)
        outcomes[strategy] = out
        totals = _totals(out, settings, warmup)
        if positions_out is not None:
            positions_out[strategy] = keys.assign(
                demand=world.demand.sum(axis=1), lost_units=out.lost_units, lost_margin=out.lost_units * world.margin,
                moved_in=out.moved_in, moved_out=out.moved_out, ordered=out.ordered, end_on_hand=out.end_on_hand)
        rows.append({
            "replay_id": replay_id, "created_at": created, "strategy": strategy,
            "start_date": start.date(), "end_date": end.date(), "days": n_days, "positions": n,
            "replan_every_days": cadence,
            "forecaster": forecaster if strategy in ("dc_only", "policy_rebalance") else
            {"hindsight": "actual_demand"}.get(strategy, "trailing_28d"),
            "cycle_service_level": 1 - out.cycles_short / out.cycles if out.cycles else 1.0,
            **totals,
            "cost_lower_bound": bound,
            "parameters": json.dumps({**base, **extra, "settings": settings.as_json()}, default=str),
        })
        log(f"{strategy}: {time.perf_counter() - started:.1f}s")
    order = {name: i for i, name in enumerate(strategies)}
    rows.sort(key=lambda row: order[row["strategy"]])
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

    def __init__(self, data_dir: Path, settings: Settings, *, weeks: int, forecaster: str = "engine",
                 hindsight_time_limit_s: float = DEMO_HINDSIGHT_TIME_LIMIT_S) -> None:
        import multiprocessing
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="retailopt-replay-")
        self._out = Path(self._dir.name) / "results.pkl"
        # spawn: a clean interpreter, no fork of a parent holding solver threads or a warehouse file.
        ctx = multiprocessing.get_context("spawn")
        self._proc = ctx.Process(target=_replay_child, args=(Path(data_dir), settings, weeks, forecaster, self._out,
                                                             hindsight_time_limit_s),
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


def _replay_child(data_dir: Path, settings: Settings, weeks: int, forecaster: str, out: Path,
                  hindsight_time_limit_s: float = DEMO_HINDSIGHT_TIME_LIMIT_S) -> None:
    import pickle
    import traceback

    try:
        results = run_replay(load_chain(data_dir), settings=settings, weeks=weeks, forecaster=forecaster,
                             hindsight_time_limit_s=hindsight_time_limit_s, log=lambda *a: None)
        payload = ("ok", results)
    except Exception as exc:  # reported to the parent, which decides what the user sees
        payload = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    out.write_bytes(pickle.dumps(payload))


LABELS = {"dc_only": "(a) no rebalancing", "min_max": "(b) min/max rule", "min_max_tuned": "(b') min/max, tuned",
          "policy_rebalance": "(c) policy + rebalancing", "hindsight": "(h) hindsight bound"}


def summary_lines(results: pd.DataFrame) -> list[str]:
    """A few lines comparing the strategies (lost units and total cost, over the whole window and
    the steady-state days), and the regret of (c) against the hindsight bound."""
    r = results.set_index("strategy")
    first = results.iloc[0]
    warmup = first.get("warmup_days")
    lines = [f"replay of {first['start_date']}..{first['end_date']} ({int(first['days'])} held-out days, "
             f"re-planning every {int(first['replan_every_days'])} days; steady state from day {warmup}):"]
    for name, label in LABELS.items():
        if name in r.index:
            lines.append(f"    {label:<26} lost units {r.at[name, 'lost_units']:>9,.0f}   fill rate "
                         f"{r.at[name, 'fill_rate']:.3f}   total cost {r.at[name, 'total_cost']:>11,.0f}   "
                         f"steady state: lost {r.at[name, 'steady_lost_units']:>9,.0f}  total cost "
                         f"{r.at[name, 'steady_total_cost']:>11,.0f}")
    if {"policy_rebalance", "hindsight"} <= set(r.index):
        c, h = r.loc["policy_rebalance"], r.loc["hindsight"]
        lines.append(f"    regret of (c) against the hindsight bound: {c['lost_units'] - h['lost_units']:,.0f} lost units, "
                     f"{c['total_cost'] - h['total_cost']:,.0f} total cost "
                     f"({(c['total_cost'] - h['total_cost']) / h['total_cost']:+.1%}; proven lower bound on any "
                     f"plan's total cost {h['cost_lower_bound']:,.0f})")
        lines += regret_lines(results)
    return lines


COST_COMPONENTS = {"holding": ("holding_cost", "steady_holding_cost"),
                   "lost margin": ("lost_sales_cost", "steady_lost_sales_cost"),
                   "ordering": ("ordering_cost", "steady_ordering_cost"),
                   "transfers": ("transfer_cost", "steady_transfer_cost")}


def cost_components(results: pd.DataFrame) -> pd.DataFrame:
    """Each strategy's total cost by component, over the warm-up days and the steady state
    (rows: strategy x part; columns: the components and total). Warm-up = window - steady state;
    the parts add up to the row's total_cost and steady_total_cost."""
    rows = []
    for _, r in results.iterrows():
        steady = {name: float(r[cols[1]]) for name, cols in COST_COMPONENTS.items()}
        whole = {name: float(r[cols[0]]) for name, cols in COST_COMPONENTS.items()}
        for part, values in (("warm-up", {k: whole[k] - steady[k] for k in whole}), ("steady", steady),
                             ("window", whole)):
            rows.append({"strategy": r["strategy"], "part": part, **values, "total": sum(values.values())})
    return pd.DataFrame(rows)


def regret_lines(results: pd.DataFrame) -> list[str]:
    """(c) - hindsight by cost component and part, and the two strategies' average stock: where
    the regret comes from."""
    r = results.set_index("strategy")
    if not {"policy_rebalance", "hindsight"} <= set(r.index):
        return []
    parts = cost_components(results).set_index(["strategy", "part"])
    lines = ["    regret of (c) by component (c - hindsight):"]
    for part in ("warm-up", "steady", "window"):
        gap = parts.loc[("policy_rebalance", part)] - parts.loc[("hindsight", part)]
        lines.append(f"      {part:<8} " + "  ".join(f"{name} {gap[name]:>+10,.0f}" for name in COST_COMPONENTS)
                     + f"  total {gap['total']:>+10,.0f}")
    c, h = r.loc["policy_rebalance"], r.loc["hindsight"]
    lines.append(f"      steady-state stock at cost: (c) {c['steady_avg_on_hand_value']:,.0f}, hindsight "
                 f"{h['steady_avg_on_hand_value']:,.0f}; left at the end: (c) {c['end_on_hand_value']:,.0f}, "
                 f"hindsight {h['end_on_hand_value']:,.0f}")
    return lines


def format_table(results: pd.DataFrame) -> str:
    cols = ["strategy", "fill_rate", "cycle_service_level", "lost_units", "avg_on_hand_units",
            "avg_on_hand_value", "units_moved", "trips", "transfer_cost", "order_lines", "ordering_cost",
            "holding_cost", "lost_sales_cost", "operating_cost", "total_cost", "refused_units",
            "steady_lost_units", "steady_fill_rate", "steady_total_cost"]
    t = results[cols].copy()
    return t.to_string(index=False, float_format=lambda v: f"{v:,.3f}" if abs(v) < 1 else f"{v:,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailopt replay", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="chain files (stores.csv, ..., sales.parquet); default: generate the sample chain")
    parser.add_argument("--weeks", type=int, default=6, help="held-out weeks to replay (default 6)")
    parser.add_argument("--cadence", type=int, default=None, help="days between re-plans (default: review period)")
    parser.add_argument("--forecaster", choices=FORECASTERS, default="engine",
                        help="retailopt.forecasting (default), the empirical window-quantile stand-in, or two "
                             "diagnostics: oracle, the actual demand (what forecast error costs), and truth, "
                             "the generator's demand model (what noise alone costs; needs a chain generated "
                             "with --truth-days)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--min-days", type=float, default=None, help="min/max rule: reorder below this cover")
    parser.add_argument("--max-days", type=float, default=None, help="min/max rule: order up to this cover")
    parser.add_argument("--opening", choices=("snapshot", "neutral"), default="snapshot",
                        help="opening stock: the inventory snapshot (default) or the same cover at every position")
    parser.add_argument("--warmup-days", type=int, default=None,
                        help="days left out of the steady_* measures (default: one cadence + the longest lead time)")
    parser.add_argument("--tune-weeks", type=int, default=None,
                        help="weeks before the window the min/max grid is judged on (default: --weeks)")
    parser.add_argument("--hindsight-time-limit", type=float, default=HINDSIGHT_TIME_LIMIT_S,
                        help=f"seconds for the hindsight bound's solver (default {HINDSIGHT_TIME_LIMIT_S:g})")
    parser.add_argument("--transfer-pricing", choices=("routes", "per-unit"), default="routes",
                        help="plan transfers priced by their routes (default), or by the per-unit estimate; "
                             "either way a transfer is charged its share of the routes solved for it "
                             "(with the chain's vehicles.csv)")
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
                         max_days=args.max_days, opening=args.opening, warmup_days=args.warmup_days,
                         tune_weeks=args.tune_weeks, hindsight_time_limit_s=args.hindsight_time_limit,
                         reprice_transfers=args.transfer_pricing == "routes")
    print(format_table(results))
    print("\n".join(summary_lines(results)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(results.to_json(orient="records", date_format="iso", indent=2), encoding="utf-8")
    print(f"results: {args.out}")
    if not args.no_warehouse:
        save_results(results, settings)
        print(f"table: {settings.dataset}.replay_results (replay_id {results['replay_id'].iat[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
