"""Inventory policy per store x product: an (R, s, S) policy over the protection interval.

- Reorder point s: the smallest integer stock that meets the position's target over the
  protection interval (lead time + review period), computed from the forecast's window
  quantiles (fast movers) or a Poisson / negative-binomial window demand (slow movers); never
  sigma * sqrt(lead time). Targets come from the costs (the newsvendor critical ratio of margin
  and holding cost per product) unless the user fixes them: then by ABC class, a cycle service
  level or a fill rate.
- Order-up-to S = s + (k - 1) review periods of demand, ordering every k-th review with k from
  the EOQ (`cycle_stock`); s already covers one review period's demand.
- Status: STOCKOUT_RISK when the inventory position is below s (the target is not met before
  the next order can arrive), OVERSTOCK when it is above S and covers more than
  overstock_cover_days, otherwise OK; expected lost units = E[(window demand - position)+].

Bad input never crashes and is never skipped silently: every affected position gets a row with
reason codes in `exception` ("CODE: message; ...") and one row per reason in the exceptions frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from retailopt.config import Settings
from retailopt.demand_model import QUANTILE_COLUMNS, WindowDemand

POLICY_COLUMNS = [
    "run_date", "store_id", "product_id", "on_hand", "on_order", "mean_daily_demand",
    "lead_time_days", "review_period_days", "service_level", "safety_stock", "reorder_point",
    "order_up_to", "days_of_cover", "expected_lost_units", "status", "status_after_plan", "exception",
]
EXCEPTION_COLUMNS = ["run_date", "store_id", "product_id", "reason_code", "reason", "action"]

# Reason codes and what the plan does about them.
ACTIONS = {
    "NEGATIVE_STOCK": "planned with the negative quantity read as 0; no transfers",
    "CAPACITY_BELOW_STOCK": "no transfers and no order into this position",
    "MISSING_COST": "levels computed; no transfers and no order (cannot value them)",
    "UNKNOWN_PRODUCT": "levels held at current stock; no transfers and no order",
    "LEAD_TIME_MISSING": "planned with the fallback lead time; no transfers",
    "NO_FORECAST": "levels held at current stock; no transfers and no order",
    "NO_INVENTORY": "planned with zero stock; no transfers",
    "BAD_CASE_PACK": "ordered in single units; no transfers",
    "CAPACITY_BELOW_TARGET": "reorder point and order-up-to capped at what the shelf holds on the delivery day",
    # Written by rebalance.plan_orders, not by the policy: the store as a whole is full.
    "STORE_CAPACITY": "ordered only the whole cases that fit; the rest waits for room at a later review",
    # Written by rebalance.plan_orders: the shelf, as projected for the delivery day, holds fewer
    # cases than the position needs to reach its reorder point.
    "SHELF_ROOM_AT_DELIVERY": "ordered only the whole cases that fit on the shelf on the delivery day; the "
                              "position stays below its reorder point until the shelf has room",
    # Written by the plan step (retailopt.dispatch.ledger): a released line's delivery closed short.
    "DELIVERY_FAILED": "the undelivered units are counted back at the sender (the distribution centre for an "
                       "order); this plan covers the receiver's need again from its stock",
    # Written by the plan step (retailopt.dispatch.ledger): a released transfer found no truck for
    # transfer_max_wait_days days after its delivery day.
    "TRANSFER_CANCELLED": "the transfer is cancelled: its units stay at the sender and are no longer on order "
                          "here; this plan covers the receiver's need again (a distribution-centre order)",
}
# Codes that still let a position send and receive transfers (informational only).
TRANSFER_OK_CODES = frozenset({"CAPACITY_BELOW_TARGET", "DELIVERY_FAILED", "TRANSFER_CANCELLED"})
# Codes after which a distribution-centre order must not be placed.
NO_ORDER_CODES = frozenset({"CAPACITY_BELOW_STOCK", "MISSING_COST", "UNKNOWN_PRODUCT", "NO_FORECAST"})
_CODE_RE = re.compile(r"(?:^|; )([A-Z_]+):")


def transfer_blocked(exceptions: pd.Series) -> np.ndarray:
    """True where a position's exception forbids transfers."""
    out = exceptions.notna().to_numpy()
    for i in np.flatnonzero(out):
        out[i] = bool(exception_codes(exceptions.iat[i]) - TRANSFER_OK_CODES)
    return out


def exception_codes(text: object) -> set[str]:
    """Reason codes in an inventory_policy.exception value."""
    if not isinstance(text, str) or not text:
        return set()
    return set(_CODE_RE.findall(text))


def abc_classes(revenue: pd.Series) -> pd.Series:
    """A = products making the top 80 % of revenue, B = the next 15 %, C = the rest."""
    rev = revenue.fillna(0.0).clip(lower=0.0).sort_values(ascending=False, kind="mergesort")
    total = rev.sum()
    if total <= 0:
        return pd.Series("C", index=revenue.index)
    share_before = (rev.cumsum() - rev) / total
    cls = np.where(share_before < 0.80, "A", np.where(share_before < 0.95, "B", "C"))
    return pd.Series(cls, index=rev.index).reindex(revenue.index)


def _lead_times(stores: pd.Series, lead_time_days: int | Mapping[str, int] | pd.Series | None) -> pd.Series:
    if lead_time_days is None:
        return pd.Series(np.nan, index=stores.index)
    if isinstance(lead_time_days, (int, np.integer, float)):
        return pd.Series(float(lead_time_days), index=stores.index)
    mapping = lead_time_days if isinstance(lead_time_days, pd.Series) else pd.Series(dict(lead_time_days))
    return pd.to_numeric(stores.map(mapping), errors="coerce").astype(float)


def fallback_lead(window: np.ndarray, review: int, usable: np.ndarray | bool = True) -> np.ndarray:
    """The lead time of a store without a usable one: its protection window less the review period
    (at least a day; a day where the window is unusable)."""
    window = np.asarray(window, dtype=np.float64)
    return np.where(usable & (window - review >= 1), window - review, 1.0)


def review_offsets(lead_days: pd.Series, window_days: pd.Series, review: int) -> tuple[int, int]:
    """The days after the run date, [first, last), whose daily forecasts `_review_demand` can sum:
    the review period after each position's lead time (at least a day), or after its fallback lead
    (`fallback_lead`) where the store has none. The plan step reads only these."""
    lead = pd.to_numeric(lead_days, errors="coerce").dropna().to_numpy(dtype=np.float64)
    window = pd.to_numeric(window_days, errors="coerce").dropna().to_numpy(dtype=np.float64)
    longest = max(np.ceil(lead.max()) if len(lead) else 1.0, fallback_lead(window, review).max(initial=1.0))
    return 1, int(longest) + int(review)


def _review_demand(daily: pd.DataFrame, keys: pd.DataFrame, run_date: date, lead: np.ndarray,
                   review: int) -> np.ndarray:
    """Expected demand over the review period that follows the lead time, from daily forecasts."""
    out = np.full(len(keys), np.nan)
    if daily is None or daily.empty:
        return out
    d = daily[["store_id", "product_id", "forecast_date", "forecast_mean"]].copy()
    d["offset"] = (pd.to_datetime(d["forecast_date"]) - pd.Timestamp(run_date)).dt.days
    pos = keys[["store_id", "product_id"]].copy()
    pos["lead"] = lead
    pos["row"] = np.arange(len(pos))
    d = d.merge(pos, on=["store_id", "product_id"], how="inner")
    d = d[(d["offset"] >= d["lead"]) & (d["offset"] < d["lead"] + review)]
    if d.empty:
        return out
    sums = d.groupby("row")["forecast_mean"].agg(["sum", "count"])
    full = sums[sums["count"] >= review]  # a partial horizon would understate it
    out[full.index.to_numpy()] = full["sum"].to_numpy()
    return out


def compute_policy(inventory: pd.DataFrame, products: pd.DataFrame, protection: pd.DataFrame,
                   daily: pd.DataFrame | None, *, run_date: date,
                   lead_time_days: int | Mapping[str, int] | pd.Series | None,
                   settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Policy rows (inventory_policy columns without run_id) and the exceptions frame.

    `lead_time_days` is one number for every store or a mapping store_id -> days (e.g. from the
    store's distribution centre, see `rebalance.assign_dcs`).
    """
    review = int(settings.review_period_days)
    inv = inventory[["store_id", "product_id", "on_hand", "on_order", "max_capacity"]].copy()
    inv["store_id"] = inv["store_id"].astype(str)
    inv["product_id"] = inv["product_id"].astype(str)
    inv = inv.drop_duplicates(["store_id", "product_id"], keep="last")
    prot_cols = ["store_id", "product_id", "window_days", "demand_mean", "demand_std", *QUANTILE_COLUMNS]
    prot = protection[prot_cols].copy() if protection is not None and len(protection) else \
        pd.DataFrame(columns=prot_cols)
    prot["store_id"] = prot["store_id"].astype(str)
    prot["product_id"] = prot["product_id"].astype(str)
    prot = prot.drop_duplicates(["store_id", "product_id"], keep="last")
    pos = inv.merge(prot, on=["store_id", "product_id"], how="outer", indicator=True)
    prods = products.copy()
    prods["product_id"] = prods["product_id"].astype(str)
    prods = prods.drop_duplicates("product_id", keep="last").set_index("product_id")
    pos = pos.sort_values(["store_id", "product_id"], kind="mergesort").reset_index(drop=True)
    n = len(pos)
    reasons: list[list[tuple[str, str]]] = [[] for _ in range(n)]

    def flag(mask: np.ndarray, code: str, message) -> None:
        for i in np.flatnonzero(mask):
            reasons[i].append((code, message(i) if callable(message) else message))

    no_inv = (pos["_merge"] == "right_only").to_numpy()
    flag(no_inv, "NO_INVENTORY", "no stock snapshot for this position")
    on_hand_raw = pd.to_numeric(pos["on_hand"], errors="coerce").to_numpy(dtype=float)
    on_order_raw = pd.to_numeric(pos["on_order"], errors="coerce").to_numpy(dtype=float)
    cap = pd.to_numeric(pos["max_capacity"], errors="coerce").to_numpy(dtype=float)
    neg = ~no_inv & ((on_hand_raw < 0) | (on_order_raw < 0))
    flag(neg, "NEGATIVE_STOCK", lambda i: f"on_hand={on_hand_raw[i]:g}, on_order={on_order_raw[i]:g}")
    on_hand = np.nan_to_num(np.maximum(on_hand_raw, 0.0)).astype(np.int64)
    on_order = np.nan_to_num(np.maximum(on_order_raw, 0.0)).astype(np.int64)
    over_cap = ~no_inv & (np.nan_to_num(cap, nan=np.inf) < on_hand)
    flag(over_cap, "CAPACITY_BELOW_STOCK", lambda i: f"max_capacity={cap[i]:g} < on_hand={on_hand[i]}")

    known = pos["product_id"].isin(prods.index).to_numpy()
    flag(~known, "UNKNOWN_PRODUCT", "product_id not in the product master")
    unit_cost = pos["product_id"].map(prods["unit_cost"]).astype(float).to_numpy() if "unit_cost" in prods \
        else np.full(n, np.nan)
    price = pos["product_id"].map(prods["price"]).astype(float).to_numpy() if "price" in prods \
        else np.full(n, np.nan)
    bad_cost = known & ~((unit_cost > 0) & (price > 0))
    flag(bad_cost, "MISSING_COST", lambda i: f"unit_cost={unit_cost[i]!r}, price={price[i]!r}")
    case_pack = pos["product_id"].map(prods["case_pack"]).astype(float).to_numpy() if "case_pack" in prods \
        else np.full(n, np.nan)
    bad_pack = known & ~(case_pack >= 1)
    flag(bad_pack, "BAD_CASE_PACK", lambda i: f"case_pack={case_pack[i]!r}")
    category = pos["product_id"].map(prods["category"]).fillna("").astype(str) if "category" in prods \
        else pd.Series("", index=pos.index)

    mean_w = pd.to_numeric(pos["demand_mean"], errors="coerce").to_numpy(dtype=float)
    window = pd.to_numeric(pos["window_days"], errors="coerce").to_numpy(dtype=float)
    quant = pos[QUANTILE_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    has_fc = (pos["_merge"] != "left_only").to_numpy() & np.isfinite(mean_w) & (mean_w >= 0) & \
        (window >= 1) & np.isfinite(quant).all(axis=1)
    flag(~has_fc & known, "NO_FORECAST",
         lambda i: "no forecast for this position" if pos["_merge"].iat[i] == "left_only"
         else f"unusable forecast (demand_mean={mean_w[i]!r}, window_days={window[i]!r})")

    lead = _lead_times(pos["store_id"], lead_time_days).to_numpy()
    bad_lead = ~(lead >= 1)
    fallback = fallback_lead(window, review, has_fc)
    flag(bad_lead, "LEAD_TIME_MISSING",
         lambda i: f"lead_time_days={lead[i]!r} for store {pos['store_id'].iat[i]}; used {fallback[i]:g}")
    lead = np.where(bad_lead, fallback, lead).astype(np.int64)

    planned = has_fc & known
    window = np.where(planned, window, lead + review)
    mean_w = np.where(planned, mean_w, 0.0)
    mean_daily = mean_w / window
    std = pd.to_numeric(pos["demand_std"], errors="coerce").to_numpy(dtype=float)
    demand = WindowDemand.from_forecast(
        mean_w, np.where(planned, std, 0.0), np.where(planned[:, None], quant, 0.0),
        discrete=mean_daily < settings.slow_mover_daily_demand)

    # Targets: from the costs (newsvendor critical ratio per product) unless the user fixed them
    # (service_level for every ABC class of chain revenue, a class's own target), category
    # overrides on top.
    revenue = pd.Series(mean_daily * np.nan_to_num(price), index=pos.index).groupby(pos["product_id"]).sum()
    cls = pos["product_id"].map(abc_classes(revenue)).to_numpy()
    targets = {c: settings.class_targets(c) for c in set(cls)}
    kind = np.array([targets[c][0] for c in cls], dtype=object)
    value = np.array([targets[c][1] for c in cls], dtype=float)
    by_cost = settings.cost_service_levels(price - unit_cost, unit_cost)
    csl = np.where(kind == "csl", value, np.where(kind == "cost", by_cost, np.nan))
    fr = np.where(kind == "fill_rate", value, np.nan)
    by_cat = category.map(lambda c: settings.service_level_by_category.get(c, np.nan)).to_numpy(dtype=float)
    csl = np.where(np.isfinite(by_cat), by_cat, csl)
    use_fr = np.isfinite(fr) & ~np.isfinite(by_cat)
    target = np.where(use_fr, fr, csl)

    review_mean = _review_demand(daily, pos, run_date, lead, review)
    review_mean = np.where(np.isfinite(review_mean), review_mean, mean_daily * review)
    level = demand.csl_level(csl)
    if use_fr.any():
        idx = np.flatnonzero(use_fr)
        level[idx] = demand.take(idx).fill_rate_level(fr[idx], review_mean[idx])
    # Where costs decide and stock comes in cases, the reorder point is where a whole case stops
    # paying for itself (`WindowDemand.case_level`): ordering a case now rather than a review
    # later adds its sales over the window and a review period's holding on what is left of it.
    # With single units that is the newsvendor level itself; with a case of months of cover it
    # is lower. Never below the level of cost_service_level_min.
    margin = price - unit_cost
    by_case = np.flatnonzero((kind == "cost") & ~np.isfinite(by_cat) & (case_pack > 1) & (margin > 0) & (unit_cost > 0))
    if len(by_case):
        d = demand.take(by_case)
        floor = d.csl_level(np.full(len(by_case), settings.cost_service_level_min))
        hold = settings.holding_cost_rate * unit_cost[by_case] * review / 365.0
        level[by_case] = np.minimum(level[by_case], d.case_level(case_pack[by_case], margin[by_case], hold,
                                                                 lo=np.minimum(floor, level[by_case]),
                                                                 hi=level[by_case]))
    reorder = level
    order_up_to = reorder + cycle_stock(mean_daily, review_mean, unit_cost, settings)
    # The shelf must hold the stock on the day an order placed now arrives, after the lead time's
    # expected demand has gone: an inventory position of up to shelf + that demand fits (levels
    # are in inventory-position terms). A shelf smaller than the target: plan to it and say so.
    shelf_position = np.nan_to_num(cap, nan=np.inf) + np.floor(mean_daily * lead + 1e-9)
    short_shelf = planned & ~over_cap & (shelf_position < reorder)
    flag(short_shelf, "CAPACITY_BELOW_TARGET",
         lambda i: f"max_capacity={cap[i]:g} + {shelf_position[i] - cap[i]:g} units of expected demand over the "
                   f"{lead[i]}-day lead time < reorder point {reorder[i]:g}")
    reorder = np.where(short_shelf, shelf_position, reorder)
    # Nor is there any point in ordering past what the shelf holds on the delivery day.
    order_up_to = np.where(planned & ~over_cap, np.minimum(order_up_to, shelf_position), order_up_to)
    position = (on_hand + on_order).astype(float)
    # Positions that cannot be planned hold their current stock: no signal to move or order.
    reorder = np.where(planned, reorder, position)
    order_up_to = np.where(planned, order_up_to, position)
    lost = np.where(planned, demand.loss(position), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(mean_daily > 0, on_hand / mean_daily, np.nan)
    overstock = (position > order_up_to) & ~(cover <= settings.overstock_cover_days)
    status = np.where(position < reorder, "STOCKOUT_RISK", np.where(overstock, "OVERSTOCK", "OK"))

    safety = np.where(planned, reorder - mean_w, 0.0)
    exc_text = [("; ".join(f"{c}: {m}" for c, m in r) or None) for r in reasons]
    policy = pd.DataFrame({
        "run_date": pd.Timestamp(run_date),
        "store_id": pos["store_id"].to_numpy(),
        "product_id": pos["product_id"].to_numpy(),
        "on_hand": on_hand,
        "on_order": on_order,
        "mean_daily_demand": mean_daily,
        "lead_time_days": lead,
        "review_period_days": np.full(n, review, dtype=np.int64),
        "service_level": target,
        "safety_stock": safety,
        "reorder_point": reorder,
        "order_up_to": order_up_to,
        "days_of_cover": cover,
        "expected_lost_units": lost,
        "status": status,
        "status_after_plan": None,
        "exception": exc_text,
    }, columns=POLICY_COLUMNS)
    rows = [(pos["store_id"].iat[i], pos["product_id"].iat[i], code, msg, ACTIONS[code])
            for i, r in enumerate(reasons) for code, msg in r]
    exceptions = pd.DataFrame(rows, columns=EXCEPTION_COLUMNS[1:])
    exceptions.insert(0, "run_date", pd.Timestamp(run_date))
    return policy, exceptions


def cycle_stock(mean_daily: np.ndarray, review_demand: np.ndarray, unit_cost: np.ndarray,
                settings: Settings) -> np.ndarray:
    """S - s: the stock an order adds above the reorder point, in whole units.

    The reorder point already covers one review period's demand (its window is lead time +
    review period), so ordering at every review needs nothing above it (S = s). Ordering only
    every k-th review saves order lines at the cost of (k - 1) review periods' demand held on
    top: k is the whole number of review periods that costs least per day, order cost /
    (k x review period) + holding x k x review demand / 2. That cost is convex in k, so k is one
    of the two whole numbers around its continuous minimum sqrt(2 x order cost / (holding x
    review period x review demand)), which is EOQ / review demand (EOQ = sqrt(2 x annual demand
    x order cost / (holding rate x unit cost))). Adding the EOQ itself on top of s would count
    the review period's demand twice."""
    review = float(settings.review_period_days)
    rd = np.where(np.isfinite(review_demand) & (review_demand > 0), review_demand, 0.0)
    h_day = settings.holding_cost_rate * np.where(unit_cost > 0, unit_cost, np.nan) / 365.0
    with np.errstate(divide="ignore", invalid="ignore"):
        best = np.sqrt(2.0 * settings.order_cost_per_line / (h_day * review * rd))
        ratio = np.where((rd > 0) & np.isfinite(best), best, 1.0)
    lo = np.maximum(np.floor(ratio), 1.0)
    hi = lo + 1.0

    def per_day(k: np.ndarray) -> np.ndarray:
        return settings.order_cost_per_line / (k * review) + np.nan_to_num(h_day) * k * rd / 2.0

    k = np.where(per_day(hi) < per_day(lo), hi, lo)
    return np.ceil((k - 1.0) * rd - 1e-9)


def status_for(position: np.ndarray, reorder: np.ndarray, order_up_to: np.ndarray, on_hand: np.ndarray,
               mean_daily: np.ndarray, overstock_cover_days: float) -> np.ndarray:
    """The policy status rule, for a position after planned transfers and orders."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(mean_daily > 0, on_hand / mean_daily, np.nan)
    overstock = (position > order_up_to) & ~(cover <= overstock_cover_days)
    return np.where(position < reorder, "STOCKOUT_RISK", np.where(overstock, "OVERSTOCK", "OK"))
