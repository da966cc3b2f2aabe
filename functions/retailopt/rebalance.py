"""Store-to-store transfers (a min-cost flow per product) and distribution-centre orders.

Transfer model, per product (all products go into one OR-Tools graph as disjoint components):

    source_p --unit arcs--> sender i --pair arc (i, j)--> receiver j --unit arcs--> sink_p
    source_p ------------------------- bypass (cost 0) -----------------------------> sink_p

Sender unit arc k costs margin * (L_i(x_i - k) - L_i(x_i - k + 1)), the expected sales the sender
loses by giving up its k-th unit; receiver unit arc k earns margin * (L_j(x_j + k - 1) - L_j(x_j + k)),
the expected sales the k-th extra unit brings (L = expected lost units over the valuation horizon,
x = inventory position; margin = price - unit cost, what a lost sale costs). L is convex, so the arcs of one store have monotone costs and a min-cost
flow takes them in order: the piecewise-linear concave objective is exact. A pair arc costs the
handling plus transport per unit and exists only within max_transfer_km. Minimising the cost
maximises (gains - losses - moving costs); the bypass lets the model move nothing.

Senders keep their order-up-to level plus a reserve (the protected level); receivers are positions
below their reorder point, filled at most to just below it and within their shelf capacity. A minimum
quantity per transfer and a minimum net value per trip (store pair) are enforced by forbidding the
offending arcs and solving again until no transfer violates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from retailopt.config import Settings
from retailopt.demand_model import QUANTILE_COLUMNS, WindowDemand
from retailopt.geo import distance_matrix_km
from retailopt.policy import NO_ORDER_CODES, exception_codes, transfer_blocked

TRANSFER_COLUMNS = ["run_date", "transfer_id", "product_id", "from_store_id", "to_store_id", "quantity",
                    "value", "cost", "distance_km", "expected_arrival"]
ORDER_COLUMNS = ["run_date", "order_id", "dc_id", "store_id", "product_id", "quantity", "cases",
                 "order_value", "expected_arrival"]
# Costs go to the solver as integers in 1/COST_SCALE currency units.
COST_SCALE = 10_000
MAX_ROUNDS = 20


class RebalanceError(RuntimeError):
    """The flow solver did not return an optimal plan."""


# ---------------------------------------------------------------------------------------------
# Pure model and solve
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferProblem:
    """Arrays of the transfer network; positions are indexed 0..n-1 (senders and receivers)."""
    n_groups: int  # products
    sender_group: np.ndarray  # (S,) product group of each sender
    receiver_group: np.ndarray  # (R,)
    # Unit arcs: owner index into senders / receivers, capacity and cost per unit (currency).
    send_owner: np.ndarray
    send_cap: np.ndarray
    send_cost: np.ndarray  # expected margin lost at the sender per unit (>= 0)
    recv_owner: np.ndarray
    recv_cap: np.ndarray
    recv_gain: np.ndarray  # expected margin gained at the receiver per unit (>= 0)
    # Pair arcs sender -> receiver.
    pair_sender: np.ndarray
    pair_receiver: np.ndarray
    pair_cost: np.ndarray  # moving cost per unit
    pair_cap: np.ndarray
    # Store-wide room, shared by every product a store receives: receiver r is in store
    # recv_store[r], which may take at most store_cap[recv_store[r]] units in all. None: no limit.
    recv_store: np.ndarray | None = None
    store_cap: np.ndarray | None = None


def solve_transfer_problem(problem: TransferProblem, allowed: np.ndarray | None = None,
                           store_cap: np.ndarray | None = None) -> np.ndarray:
    """Flow on each pair arc of the optimal plan (min-cost flow; exact, polynomial, no time limit
    is needed). `allowed` masks pair arcs out (capacity 0); `store_cap` replaces the problem's
    store room (for re-solving some products while others keep their flows).

    With store room, each receiver's unit arcs end in its store's node, and one arc per store with
    the store's room leads to a single sink. Every path is still source_p -> sender of p ->
    receiver of p -> store -> sink, so the flow stays product by product: the single-commodity
    flow is exact for the coupled problem."""
    n_s, n_r = len(problem.sender_group), len(problem.receiver_group)
    n_pairs = len(problem.pair_sender)
    if n_pairs == 0:
        return np.zeros(0, dtype=np.int64)
    g = problem.n_groups
    supply = np.bincount(problem.sender_group, weights=np.bincount(
        problem.send_owner, weights=problem.send_cap, minlength=n_s), minlength=g).astype(np.int64)
    pair_cap = problem.pair_cap.astype(np.int64)
    if allowed is not None:
        pair_cap = np.where(allowed, pair_cap, 0)
    src = n_s + n_r + np.arange(g)
    coupled = problem.recv_store is not None
    if coupled:
        room = problem.store_cap if store_cap is None else store_cap
        # Room beyond the total supply cannot bind; clipping keeps capacities in the solver's range.
        room = np.clip(np.nan_to_num(np.asarray(room, dtype=np.float64), nan=0.0, posinf=np.inf), 0,
                       float(supply.sum())).astype(np.int64)
        store_node = n_s + n_r + g + np.arange(len(room))
        sink = n_s + n_r + g + len(room)
        recv_head = store_node[problem.recv_store[problem.recv_owner]]
        bypass_head = np.full(g, sink)
        extra_tail, extra_head, extra_cap = store_node, np.full(len(room), sink), room
        nodes = np.concatenate([src, [sink]])
        supplies = np.concatenate([supply, [-supply.sum()]])
    else:
        snk = n_s + n_r + g + np.arange(g)
        recv_head = snk[problem.receiver_group[problem.recv_owner]]
        bypass_head = snk
        extra_tail = extra_head = extra_cap = np.zeros(0, dtype=np.int64)
        nodes = np.concatenate([src, snk])
        supplies = np.concatenate([supply, -supply])
    tails = np.concatenate([problem.pair_sender, src[problem.sender_group[problem.send_owner]],
                            n_s + problem.recv_owner, src, extra_tail])
    heads = np.concatenate([n_s + problem.pair_receiver, problem.send_owner, recv_head, bypass_head, extra_head])
    caps = np.concatenate([pair_cap, problem.send_cap, problem.recv_cap, supply, extra_cap]).astype(np.int64)
    costs = np.concatenate([_scaled(problem.pair_cost), _scaled(problem.send_cost), -_scaled(problem.recv_gain),
                            np.zeros(g + len(extra_tail), dtype=np.int64)])
    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), heads.astype(np.int32), caps, costs)
    smcf.set_nodes_supplies(nodes.astype(np.int32), supplies.astype(np.int64))
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        names = {smcf.NOT_SOLVED: "NOT_SOLVED", smcf.INFEASIBLE: "INFEASIBLE", smcf.UNBALANCED: "UNBALANCED",
                 smcf.BAD_RESULT: "BAD_RESULT", smcf.BAD_COST_RANGE: "BAD_COST_RANGE",
                 smcf.BAD_CAPACITY_RANGE: "BAD_CAPACITY_RANGE"}
        raise RebalanceError(f"min-cost flow status {names.get(status, status)} on "
                             f"{problem.n_groups} products and {len(tails)} arcs")
    return np.asarray(smcf.flows(np.arange(n_pairs, dtype=np.int32)), dtype=np.int64)


def store_inflow(problem: TransferProblem, pair_flow: np.ndarray) -> np.ndarray:
    """Units each store node receives under a pair flow (all products)."""
    if problem.recv_store is None:
        return np.zeros(0)
    return np.bincount(problem.recv_store[problem.pair_receiver], weights=pair_flow,
                       minlength=len(problem.store_cap))


def _scaled(cost: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(cost, dtype=np.float64) * COST_SCALE).astype(np.int64)


def plan_objective(problem: TransferProblem, pair_flow: np.ndarray) -> float:
    """Total expected gain minus lost sales at senders minus moving cost, for a pair flow."""
    return float(_unit_value(problem, pair_flow).sum() - (pair_flow * problem.pair_cost).sum())


def _unit_value(problem: TransferProblem, pair_flow: np.ndarray) -> np.ndarray:
    """Per pair arc: gain at the receiver less loss at the sender, allocating each store's
    consumed unit arcs (cheapest first) pro rata to its outgoing / incoming flows."""
    n_s, n_r = len(problem.sender_group), len(problem.receiver_group)
    out_s = np.bincount(problem.pair_sender, weights=pair_flow, minlength=n_s)
    in_r = np.bincount(problem.pair_receiver, weights=pair_flow, minlength=n_r)
    loss_s = _consumed(problem.send_owner, problem.send_cap, problem.send_cost, out_s, ascending=True)
    gain_r = _consumed(problem.recv_owner, problem.recv_cap, problem.recv_gain, in_r, ascending=False)
    per_s = np.divide(loss_s, out_s, out=np.zeros(n_s), where=out_s > 0)
    per_r = np.divide(gain_r, in_r, out=np.zeros(n_r), where=in_r > 0)
    return pair_flow * (per_r[problem.pair_receiver] - per_s[problem.pair_sender])


def _consumed(owner: np.ndarray, cap: np.ndarray, value: np.ndarray, used: np.ndarray,
              ascending: bool) -> np.ndarray:
    """Sum of value over the first `used` units of each owner's arcs taken in value order."""
    if len(owner) == 0:
        return np.zeros(len(used))
    # _unit_arcs emits each owner's arcs together and in the order the flow consumes them
    # (marginal values are monotone); sort only if a caller built them otherwise.
    key = value if ascending else -value
    in_order = bool(np.all((owner[1:] > owner[:-1]) | ((owner[1:] == owner[:-1]) & (key[1:] >= key[:-1] - 1e-9))))
    order = np.arange(len(owner)) if in_order else np.lexsort((key, owner))
    o, c, v = owner[order], cap[order].astype(np.float64), value[order]
    cum = np.cumsum(c)
    start = np.concatenate([[0.0], cum[:-1]])
    first = np.searchsorted(o, np.arange(len(used)))
    base = start[np.minimum(first, len(o) - 1)] if len(o) else np.zeros(len(used))
    before = start - base[o]
    take = np.clip(used[o] - before, 0.0, c)
    return np.bincount(o, weights=take * v, minlength=len(used))


# ---------------------------------------------------------------------------------------------
# DataFrame interface
# ---------------------------------------------------------------------------------------------
def _codes(values: pd.Series, uniques: pd.Index | None = None) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of an id column (fast for categoricals, which the 20M-row benchmark uses)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = pd.Index(values.cat.categories.astype(str))
        codes = values.cat.codes.to_numpy()
        if uniques is None:
            return codes.astype(np.int64), cats
        mapping = uniques.get_indexer(cats)
        return np.where(codes >= 0, mapping[codes], -1).astype(np.int64), uniques
    if uniques is None:
        codes, uniq = pd.factorize(values.astype(str), sort=False)
        return codes.astype(np.int64), pd.Index(uniq)
    return uniques.get_indexer(values.astype(str)).astype(np.int64), uniques


def _lookup(frame_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row index in frame_keys of each wanted key, -1 if absent."""
    order = np.argsort(frame_keys, kind="stable")
    sorted_keys = frame_keys[order]
    at = np.searchsorted(sorted_keys, wanted)
    at_c = np.minimum(at, len(sorted_keys) - 1)
    found = (len(sorted_keys) > 0) & (sorted_keys[at_c] == wanted) if len(sorted_keys) else \
        np.zeros(len(wanted), dtype=bool)
    return np.where(found, order[at_c] if len(sorted_keys) else -1, -1)


UNIT_ARCS_CHUNK = 1_000_000


def _unit_arcs(counts: np.ndarray, base: np.ndarray, sign: int, demand: WindowDemand,
               price: np.ndarray, max_segments: int | None, free_prefix: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arcs for moving up to `count` units out of (sign -1) or into (sign +1) each position.

    Each unit is its own arc, valued at the change in expected sales it brings (exact: the flow
    then optimises the concave expected-sales curve itself). Consecutive arcs of one position
    with the same scaled value are merged, which changes nothing the solver sees and keeps the
    arcs few (far in a tail, thousands of units are worth the same 0). With max_segments set,
    beyond that many units equal blocks valued at their average are used instead: the
    piecewise-linear interpolation of the curve, exact only at the block edges (an
    approximation, 0.9-3.5 % below the optimum with 16 segments on generated chains)."""
    counts = counts.astype(np.int64)
    if max_segments is None and sign < 0 and len(counts) and free_prefix:
        # A sender far above its demand gives its first units up for (next to) nothing: thousands
        # of them, worth 0 in the solver's integer costs, would be valued one by one and merged
        # into one arc. That arc is made at once (its value the telescoped loss change) and only
        # the units after it valued one by one.
        free = _useful_units(counts, base, sign, demand, price, np.full(len(counts), 0.5 / COST_SCALE))
        has = np.flatnonzero(free > 0)
        if len(has):
            d = demand.take(has)
            lvl = base[has].astype(np.float64)
            value = np.maximum(price[has] * (d.loss(lvl - free[has]) - d.loss(lvl)) / free[has], 0.0)
            own, cap, val = _unit_arcs(counts - free, base - free, sign, demand, price, None, free_prefix=False)
            order = np.argsort(np.concatenate([has, own]), kind="stable")
            return (np.concatenate([has, own])[order], np.concatenate([free[has], cap])[order],
                    np.concatenate([value, val])[order])
    n_seg = counts if max_segments is None else np.minimum(counts, max_segments)
    # In slices of about a million units: the temporaries stay small at chain scale.
    ends = np.searchsorted(np.cumsum(n_seg), np.arange(UNIT_ARCS_CHUNK, int(n_seg.sum()), UNIT_ARCS_CHUNK))
    ends = np.unique(np.concatenate([ends, [len(counts)]]))
    if len(ends) > 1 and len(counts) > 1:
        parts = []
        for lo, hi in zip(np.concatenate([[0], ends[:-1]]), ends):
            if hi > lo:
                own, cap, val = _unit_arcs(counts[lo:hi], base[lo:hi], sign, demand.take(np.arange(lo, hi)),
                                           price[lo:hi], max_segments, free_prefix)
                parts.append((own + lo, cap, val))
        return tuple(np.concatenate(x) for x in zip(*parts))
    total = int(n_seg.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    rep = np.repeat(np.arange(len(counts)), n_seg)
    i = np.arange(total) - np.repeat(np.cumsum(n_seg) - n_seg, n_seg)
    lo_e = (counts[rep] * i) // n_seg[rep]
    hi_e = (counts[rep] * (i + 1)) // n_seg[rep]
    cap = hi_e - lo_e
    # The loss at every block edge once (segments share edges): n_seg + 1 points per position.
    n_edge = n_seg + 1
    erep = np.repeat(np.arange(len(counts)), n_edge)
    ei = np.arange(int(n_edge.sum())) - np.repeat(np.cumsum(n_edge) - n_edge, n_edge)
    edge = (counts[erep] * ei) // np.maximum(n_seg[erep], 1)
    level = base[erep].astype(np.float64) + sign * edge
    loss_e = demand.take(erep).loss(level)
    seg_first = np.repeat(np.cumsum(n_edge) - n_edge, n_seg) + i  # edge index of each segment's start
    # Expected sales change over the block: L(start) - L(end) going up, L(end) - L(start) going down.
    value = sign * (loss_e[seg_first] - loss_e[seg_first + 1])
    value = np.maximum(price[rep] * value / cap, 0.0)
    scaled = _scaled(value)
    new_run = np.ones(total, dtype=bool)
    new_run[1:] = (rep[1:] != rep[:-1]) | (scaled[1:] != scaled[:-1])
    run_start = np.flatnonzero(new_run)
    run_cap = np.add.reduceat(cap, run_start)
    run_value = np.add.reduceat(value * cap, run_start) / run_cap
    return rep[run_start], run_cap, run_value


def _nth_unit_value(base: np.ndarray, k: np.ndarray | int, sign: int, demand: WindowDemand,
                    price: np.ndarray) -> np.ndarray:
    """What the k-th unit moved out of (sign -1) or into (sign +1) each position is worth, as
    `_unit_arcs` values it: the margin of the expected sales it changes."""
    k = np.broadcast_to(np.asarray(k, dtype=np.float64), base.shape)
    start = base.astype(np.float64) + sign * (k - 1)
    change = sign * (demand.loss(start) - demand.loss(start + sign))
    return np.maximum(price * change, 0.0)


def _useful_units(counts: np.ndarray, base: np.ndarray, sign: int, demand: WindowDemand, price: np.ndarray,
                  limit: np.ndarray) -> np.ndarray:
    """How many of each position's first `counts` units could pay: a sender's units while their
    loss stays below `limit`, a receiver's while their gain stays above it. The loss of a sender's
    k-th unit grows with k and a receiver's gain shrinks (L is convex), so an integer bisection
    finds the count."""
    counts = counts.astype(np.int64)

    def pays(idx: np.ndarray, k: np.ndarray) -> np.ndarray:
        value = _nth_unit_value(base[idx], k, sign, demand.take(idx), price[idx])
        return value < limit[idx] if sign < 0 else value > limit[idx]

    lo = np.zeros(len(counts), dtype=np.int64)  # lo units pay (none always does)
    hi = counts.copy()
    idx = np.flatnonzero(counts > 0)
    top = pays(idx, counts[idx])
    lo[idx[top]] = counts[idx[top]]
    idx = idx[~top]  # the count-th unit does not pay: the answer is below it
    idx = idx[hi[idx] - lo[idx] > 1]
    while len(idx):
        mid = (lo[idx] + hi[idx]) // 2
        ok = pays(idx, mid)
        lo[idx[ok]] = mid[ok]
        hi[idx[~ok]] = mid[~ok]
        idx = idx[hi[idx] - lo[idx] > 1]
    return lo


def projected_stock(on_hand: np.ndarray, on_order: np.ndarray, mean_daily: np.ndarray | None,
                    days: float | np.ndarray,
                    shipped_out: np.ndarray | float = 0, arriving: np.ndarray | float = 0) -> np.ndarray:
    """Units on the shelf when a delivery `days` ahead arrives, before it is put away: today's
    stock less what leaves today and less the expected demand until then (never below zero: a
    sale cannot take what is not there), plus everything on order and the transfers coming in
    (counted as arrived by then, the safe side for room). Negative quantities read as 0."""
    left = np.maximum(np.maximum(on_hand, 0) - shipped_out, 0)
    days = np.nan_to_num(np.asarray(days, dtype=np.float32), nan=0.0)
    if mean_daily is not None and np.any(days > 0):
        sold = np.nan_to_num(np.asarray(mean_daily, dtype=np.float32), nan=0.0, posinf=0.0) * np.maximum(days, 0)
        left = np.maximum(left - np.floor(np.maximum(sold, 0) + 1e-6), 0)
    return left + np.maximum(on_order, 0) + arriving


def store_free_space(stores: pd.DataFrame, store_ids: pd.Index, store_codes: np.ndarray,
                     on_hand: np.ndarray, on_order: np.ndarray, mean_daily: np.ndarray | None = None,
                     days: float | np.ndarray = 0, shipped_out: np.ndarray | float = 0) -> np.ndarray:
    """Per store id: capacity_units less the stock of all its positions projected to a delivery
    `days` ahead (`projected_stock`; with days=0 the units on hand and on order), at least 0;
    +inf where the store has no capacity_units."""
    n = len(store_ids)
    if "capacity_units" not in stores:
        return np.full(n, np.inf)
    st = stores.assign(store_id=stores["store_id"].astype(str)).drop_duplicates("store_id", keep="last")
    cap = pd.to_numeric(st.set_index("store_id")["capacity_units"], errors="coerce").reindex(store_ids)
    cap = cap.to_numpy(dtype=np.float64)
    stock_each = projected_stock(on_hand, on_order, mean_daily, days, shipped_out)
    if (store_codes < 0).any():
        keep = store_codes >= 0
        store_codes, stock_each = store_codes[keep], stock_each[keep]
    stock = np.bincount(store_codes, weights=stock_each, minlength=n)
    return np.where(np.isfinite(cap), np.maximum(cap - stock[:n], 0.0), np.inf)


def plan_transfers(policy: pd.DataFrame, protection: pd.DataFrame, products: pd.DataFrame,
                   stores: pd.DataFrame, *, settings: Settings, run_date: date,
                   inventory: pd.DataFrame | None = None, max_segments: int | None = None,
                   value_horizon: str = "lead_time", stats: dict | None = None,
                   trip_prices: pd.DataFrame | None = None, unpriced_trip_cost: float | None = None
                   ) -> pd.DataFrame:
    """Transfers (transfers columns without run_id). Shelf capacity comes from a `max_capacity`
    column of `policy` if present, else from `inventory`; positions with an exception neither
    send nor receive.

    A unit moved costs handling_cost_per_unit plus transport_cost_per_unit_km x distance, unless
    `trip_prices` prices the trip (store pair) by solved routes (`transfer_pricing`): columns
    `from_store_id, to_store_id, route_cost`, the trip's share of its route's cost. A van drives
    the trip whatever it carries, so that cost is fixed per trip, not per unit: the trip's units
    cost only their handling, and a trip is kept only if its net value less its route cost is at
    least min_transfer_value (the trip-value rule of `solve_with_minimums`). +inf forbids the
    trip (one no vehicle carried). `unpriced_trip_cost`, when given, is the route cost of a trip
    `trip_prices` does not name (an estimate from the routes solved so far) instead of the per-km
    proxy.

    Each unit is valued exactly (`max_segments=None`); a number of segments gives the older
    block approximation. `stats`, when given, receives the solver's figures (see
    `solve_with_minimums`): the plan's net value, the LP bound without the minimums and whether
    the plan is proven optimal."""
    if value_horizon not in ("lead_time", "window"):
        raise ValueError(f"value_horizon={value_horizon!r}: expected 'lead_time' or 'window'")
    if stats is not None:  # nothing to move is optimal too
        stats.update(objective=0.0, lp_objective=0.0, proven_optimal=True, exact_components=0)
    store_codes, store_ids = _codes(policy["store_id"])
    prod_codes, prod_ids = _codes(policy["product_id"])
    # Native dtypes: at 20 million positions every int64 / float64 copy costs 160 MB.
    on_hand = policy["on_hand"].to_numpy()
    position = on_hand + policy["on_order"].to_numpy()
    reorder = np.ceil(policy["reorder_point"].to_numpy() - 1e-6)
    order_up_to = np.ceil(policy["order_up_to"].to_numpy() - 1e-6)
    ok = ~transfer_blocked(policy["exception"]) if "exception" in policy else np.ones(len(policy), bool)
    ok &= np.isfinite(reorder) & np.isfinite(order_up_to)
    # A unit is valued at its margin: a lost sale loses price - unit cost (the unit itself stays in
    # stock), which is what a transfer's handling and transport cost must be weighed against.
    p_codes, _ = _codes(products["product_id"], prod_ids)
    margin_by_code = np.full(len(prod_ids), np.nan)
    valid_p = p_codes >= 0
    margin_p = (pd.to_numeric(products["price"], errors="coerce")
                - pd.to_numeric(products["unit_cost"], errors="coerce")).to_numpy(dtype=np.float64)
    margin_by_code[p_codes[valid_p]] = margin_p[valid_p]
    margin_ok = np.nan_to_num(margin_by_code, nan=0.0) > 0
    ok &= margin_ok[prod_codes]

    # Screening, vectorised over every position: only products with a surplus position (above
    # its order-up-to level) and a deficit position (below its reorder point) go to the solver.
    surplus = ok & (position > order_up_to)
    deficit = ok & (position < reorder)
    n_prod = len(prod_ids)
    candidate = (np.bincount(prod_codes[surplus], minlength=n_prod) > 0) & \
        (np.bincount(prod_codes[deficit], minlength=n_prod) > 0)
    rows = np.flatnonzero((surplus | deficit) & candidate[prod_codes])
    del surplus, deficit
    if len(rows) == 0:
        return _empty(TRANSFER_COLUMNS)
    on_hand_r = on_hand[rows].astype(np.int64)
    position_r = position[rows].astype(np.int64)
    reorder_r = reorder[rows].astype(np.int64)
    # A sender keeps its order-up-to level plus a reserve of expected demand (see Settings): it
    # orders nothing today, and a position looks like surplus partly because its forecast is low
    # by chance. Only on-shelf stock can be shipped. A receiver is filled to just below its
    # reorder point (lead-time valuation) or to it (window valuation): the distribution-centre
    # order brings the cycle stock.
    reserve_days = settings.transfer_sender_reserve_days
    reserve_days = settings.review_period_days if reserve_days is None else reserve_days
    protect_r = order_up_to[rows].astype(np.int64)
    if reserve_days > 0 and "mean_daily_demand" in policy:
        daily = np.nan_to_num(policy["mean_daily_demand"].to_numpy()[rows].astype(np.float64), nan=0.0)
        protect_r = protect_r + np.ceil(daily * reserve_days - 1e-9).astype(np.int64)
    sendable = np.where(position_r > order_up_to[rows], np.minimum(on_hand_r, position_r) - protect_r, 0)
    sendable = np.maximum(sendable, 0)
    min_daily = settings.transfer_sender_min_daily_demand
    min_daily = settings.slow_mover_daily_demand if min_daily is None else min_daily
    if min_daily > 0 and "mean_daily_demand" in policy:
        # A slow mover's surplus at one store is mostly forecast noise, and a high-margin slow
        # mover that runs out costs more than the transfer earned (replay evidence in the docs).
        daily = np.nan_to_num(policy["mean_daily_demand"].to_numpy()[rows].astype(np.float64), nan=0.0)
        sendable = np.where(daily < min_daily, 0, sendable)
    need = np.where(position_r < reorder_r, reorder_r - position_r, 0)

    # Receiver room on the shelf.
    if "max_capacity" in policy:
        cap = policy["max_capacity"].to_numpy(dtype=np.float64)[rows]
    elif inventory is not None:
        inv_s, _ = _codes(inventory["store_id"], store_ids)
        inv_p, _ = _codes(inventory["product_id"], prod_ids)
        at = _lookup(inv_s * n_prod + inv_p, store_codes[rows].astype(np.int64) * n_prod + prod_codes[rows])
        cap = np.where(at >= 0, inventory["max_capacity"].to_numpy(dtype=np.float64)[np.maximum(at, 0)], np.inf)
    else:
        cap = np.full(len(rows), np.inf)
    # Room on the day the transfer arrives: the shelf less the stock projected for that day
    # (today's stock less the expected demand until then, plus everything on order).
    daily_all = policy["mean_daily_demand"].to_numpy() if "mean_daily_demand" in policy else None
    tau = settings.transfer_lead_days
    stock_r = projected_stock(on_hand_r, position_r - on_hand_r, None if daily_all is None else daily_all[rows], tau)
    room = np.maximum(np.floor(np.nan_to_num(cap, nan=np.inf, posinf=1e12) - stock_r), 0)
    # Store-wide room (capacity_units less the stock of all products projected to that day): one
    # position can take no more than its whole store can; the flow shares it between products.
    store_room = store_free_space(stores, store_ids, store_codes, on_hand, policy["on_order"].to_numpy(),
                                  daily_all, tau)
    room = np.minimum(room, np.nan_to_num(store_room[store_codes[rows]], posinf=1e12))
    need_r = np.minimum(need, room).astype(np.int64)
    send_r = sendable.astype(np.int64)

    # Window demand of the candidate rows (protection rows in the policy's order need no search).
    pr_s, _ = _codes(protection["store_id"], store_ids)
    pr_p, _ = _codes(protection["product_id"], prod_ids)
    if len(pr_s) == len(store_codes) and np.array_equal(pr_s, store_codes) and np.array_equal(pr_p, prod_codes):
        at = rows.copy()
    else:
        at = _lookup(pr_s * n_prod + pr_p, store_codes[rows].astype(np.int64) * n_prod + prod_codes[rows])
    del pr_s, pr_p
    has_dist = at >= 0
    at = np.maximum(at, 0)
    mean_w = protection["demand_mean"].to_numpy()[at].astype(np.float64)
    std_w = protection["demand_std"].to_numpy()[at].astype(np.float64)
    quant = np.column_stack([protection[c].to_numpy()[at].astype(np.float64) for c in QUANTILE_COLUMNS])
    window = protection["window_days"].to_numpy()[at].astype(np.float64)
    mean_daily = mean_w / np.maximum(window, 1.0)
    demand_all = WindowDemand.from_forecast(mean_w, std_w, quant,
                                            discrete=mean_daily < settings.slow_mover_daily_demand)
    demand_send = demand_recv = demand_all
    if value_horizon == "lead_time":
        # A transfer only brings stock forward: the receiver stays below its reorder point, so the
        # distribution-centre order placed today still comes, after the lead time; the gain is in
        # the days before it arrives. The sender stays at or above its reorder point and orders
        # nothing today: what it gives up must be missed over the whole protection interval
        # (next review + lead time), so its loss is valued over the window.
        lead = policy["lead_time_days"].to_numpy(dtype=np.float64)[rows]
        horizon = np.maximum(lead - settings.transfer_lead_days, 1.0)
        demand_recv = demand_all.scaled(np.minimum(horizon / np.maximum(window, 1.0), 1.0))
        need_r = np.maximum(np.minimum(need_r, reorder_r - position_r - 1), 0)
    send_r = np.where(has_dist, send_r, 0)
    need_r = np.where(has_dist, need_r, 0)
    # Caps that cannot bind are cut to keep the unit arcs few.
    r_prod = prod_codes[rows]
    tot_need = np.bincount(r_prod, weights=need_r, minlength=n_prod)
    tot_send = np.bincount(r_prod, weights=send_r, minlength=n_prod)
    send_r = np.minimum(send_r, tot_need[r_prod]).astype(np.int64)
    need_r = np.minimum(need_r, tot_send[r_prod]).astype(np.int64)
    # A store that cannot send or take min_transfer_units can be in no valid transfer.
    s_rows = np.flatnonzero(send_r >= settings.min_transfer_units)
    r_rows = np.flatnonzero(need_r >= settings.min_transfer_units)
    groups_used = np.intersect1d(r_prod[s_rows], r_prod[r_rows])
    s_rows = s_rows[np.isin(r_prod[s_rows], groups_used)]
    r_rows = r_rows[np.isin(r_prod[r_rows], groups_used)]
    if len(s_rows) == 0 or len(r_rows) == 0:
        return _empty(TRANSFER_COLUMNS)
    group_of = np.full(n_prod, -1, dtype=np.int64)
    group_of[groups_used] = np.arange(len(groups_used))
    s_group, r_group = group_of[r_prod[s_rows]], group_of[r_prod[r_rows]]
    margin_row = margin_by_code[r_prod]

    # Pair arcs: every sender x receiver of the same product within the distance limit.
    s_order = np.argsort(s_group, kind="stable")
    r_order = np.argsort(r_group, kind="stable")
    s_rows, s_group = s_rows[s_order], s_group[s_order]
    r_rows, r_group = r_rows[r_order], r_group[r_order]
    r_count = np.bincount(r_group, minlength=len(groups_used))
    r_start = np.cumsum(r_count) - r_count
    st = stores.assign(store_id=stores["store_id"].astype(str)).drop_duplicates("store_id").set_index("store_id")
    st = st.reindex(store_ids)
    lat, lon = st["latitude"].to_numpy(dtype=float), st["longitude"].to_numpy(dtype=float)
    used_stores = np.unique(np.concatenate([store_codes[rows[s_rows]], store_codes[rows[r_rows]]]))
    local = np.full(len(store_ids), -1)
    local[used_stores] = np.arange(len(used_stores))
    dist = distance_matrix_km(lat[used_stores], lon[used_stores], lat[used_stores], lon[used_stores])
    s_local = local[store_codes[rows[s_rows]]]
    r_local = local[store_codes[rows[r_rows]]]
    per_sender = r_count[s_group]
    # Senders in chunks of a few million candidate pairs, filtered by distance as they come.
    bounds = np.searchsorted(np.cumsum(per_sender), np.arange(4_000_000, int(per_sender.sum()), 4_000_000))
    parts_s, parts_r, parts_km = [], [], []
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(s_rows)]])):
        ps_ = np.arange(lo, hi)
        cnt = per_sender[lo:hi]
        ps_ = np.repeat(ps_, cnt)
        offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pr_ = r_start[s_group[ps_]] + offs
        km_ = dist[s_local[ps_], r_local[pr_]]
        keep = np.isfinite(km_) & (km_ <= settings.max_transfer_km)
        parts_s.append(ps_[keep])
        parts_r.append(pr_[keep])
        parts_km.append(km_[keep])
    pair_s, pair_r, km = np.concatenate(parts_s), np.concatenate(parts_r), np.concatenate(parts_km)
    transport = settings.transport_cost_per_unit_km * km
    trip_fixed = np.zeros(len(km))
    if unpriced_trip_cost is not None:
        trip_fixed = np.full(len(km), float(unpriced_trip_cost))
        transport = np.zeros(len(km))
    if trip_prices is not None and len(trip_prices):
        # A trip priced by its route pays that route share once, whatever it carries (its units only
        # their handling); the per-km proxy prices the trips not routed yet.
        n_st = len(store_ids)
        pair_key = store_codes[rows[s_rows]][pair_s].astype(np.int64) * n_st + store_codes[rows[r_rows]][pair_r]
        f_code, _ = _codes(trip_prices["from_store_id"], store_ids)
        t_code, _ = _codes(trip_prices["to_store_id"], store_ids)
        known = (f_code >= 0) & (t_code >= 0)
        at = _lookup(f_code[known] * n_st + t_code[known], pair_key)
        price = trip_prices["route_cost"].to_numpy(dtype=np.float64)[known]
        priced = at >= 0
        trip_fixed = np.where(priced, price[np.maximum(at, 0)], trip_fixed)
        transport = np.where(priced, 0.0, transport)
        allowed_pair = np.isfinite(trip_fixed)
        pair_s, pair_r, km, transport, trip_fixed = (pair_s[allowed_pair], pair_r[allowed_pair], km[allowed_pair],
                                                     transport[allowed_pair], trip_fixed[allowed_pair])
    if len(pair_s) == 0:
        return _empty(TRANSFER_COLUMNS)

    g = len(groups_used)
    min_move = settings.handling_cost_per_unit
    s_demand, r_demand = demand_send.take(s_rows), demand_recv.take(r_rows)
    s_units, r_units = send_r[s_rows], need_r[r_rows]
    if max_segments is None:
        # Only the units that could pay are valued (the arcs below drop the others all the same):
        # a sender's k-th unit loses more as k grows and a receiver's gains less, so each position's
        # useful count is found by bisection against the product's best first unit on the other
        # side. At a million positions valuing every unit was most of the plan's time.
        first_loss = _nth_unit_value(position_r[s_rows], 1, -1, s_demand, margin_row[s_rows])
        first_gain = _nth_unit_value(position_r[r_rows], 1, +1, r_demand, margin_row[r_rows])
        top_gain = np.full(g, -np.inf)
        np.maximum.at(top_gain, r_group, first_gain)
        low_loss = np.full(g, np.inf)
        np.minimum.at(low_loss, s_group, first_loss)
        s_units = _useful_units(s_units, position_r[s_rows], -1, s_demand, margin_row[s_rows],
                                top_gain[s_group] - min_move)
        r_units = _useful_units(r_units, position_r[r_rows], +1, r_demand, margin_row[r_rows],
                                low_loss[r_group] + min_move)
    s_own, s_cap, s_cost = _unit_arcs(s_units, position_r[s_rows], -1, s_demand, margin_row[s_rows], max_segments)
    r_own, r_cap, r_gain = _unit_arcs(r_units, position_r[r_rows], +1, r_demand, margin_row[r_rows], max_segments)
    # Arcs that can never carry flow: a sender unit losing more than the best receiver unit of the
    # product gains, a receiver unit gaining less than the cheapest sender unit loses.
    best_gain = np.full(g, -np.inf)
    np.maximum.at(best_gain, r_group[r_own], r_gain)
    least_loss = np.full(g, np.inf)
    np.minimum.at(least_loss, s_group[s_own], s_cost)
    keep_s = s_cost + min_move < best_gain[s_group[s_own]]
    keep_r = r_gain > least_loss[r_group[r_own]] + min_move
    s_own, s_cap, s_cost = s_own[keep_s], s_cap[keep_s], s_cost[keep_s]
    r_own, r_cap, r_gain = r_own[keep_r], r_cap[keep_r], r_gain[keep_r]
    # Pair arcs that can never pay: a unit moved on (i, j) costs at least i's cheapest unit plus
    # the move, and earns at most j's best unit. Where that is no gain, taking every unit off the
    # arc never makes a plan worse (its units are the sender's dearest and the receiver's least
    # worth), minimums and store room included: dropping the arc keeps the LP and the exact
    # optimum, and in one metro it is most of the sender x receiver pairs.
    pair_cost = settings.handling_cost_per_unit + transport
    # In the solver's integer costs, so a dropped arc is one its paths cannot use at a gain.
    cheapest = np.full(len(s_rows), np.iinfo(np.int64).max // 4)
    np.minimum.at(cheapest, s_own, _scaled(s_cost))
    best = np.full(len(r_rows), np.iinfo(np.int64).min // 4)
    np.maximum.at(best, r_own, _scaled(r_gain))
    pays = cheapest[pair_s] + _scaled(pair_cost) < best[pair_r]
    if stats is not None:
        stats["pairs_dropped"] = int((~pays).sum())
    if not pays.all():
        pair_s, pair_r, km, transport, trip_fixed, pair_cost = (
            pair_s[pays], pair_r[pays], km[pays], transport[pays], trip_fixed[pays], pair_cost[pays])
    if len(pair_s) == 0:
        return _empty(TRANSFER_COLUMNS)
    problem = TransferProblem(
        n_groups=len(groups_used), sender_group=s_group, receiver_group=r_group,
        send_owner=s_own, send_cap=s_cap, send_cost=s_cost,
        recv_owner=r_own, recv_cap=r_cap, recv_gain=r_gain,
        pair_sender=pair_s, pair_receiver=pair_r,
        pair_cost=pair_cost,
        pair_cap=np.minimum(send_r[s_rows][pair_s], need_r[r_rows][pair_r]),
        recv_store=local[store_codes[rows[r_rows]]], store_cap=store_room[used_stores])
    s_store = store_codes[rows[s_rows]][pair_s]
    r_store = store_codes[rows[r_rows]][pair_r]
    flow = solve_with_minimums(problem, s_store, r_store, settings, info=stats, trip_fixed=trip_fixed)
    moved = flow > 0
    values = _unit_value(problem, flow)
    # A trip's route cost shared by its lines in proportion to units.
    trip_key = s_store.astype(np.int64) * len(store_ids) + r_store
    trip_units = pd.Series(flow).groupby(trip_key).transform("sum").to_numpy(dtype=np.float64)
    fixed_share = np.divide(trip_fixed * flow, trip_units, out=np.zeros(len(flow)), where=trip_units > 0)
    out = pd.DataFrame({
        "run_date": pd.Timestamp(run_date),
        "product_id": np.asarray(prod_ids)[r_prod[s_rows][pair_s][moved]],
        "from_store_id": np.asarray(store_ids)[s_store[moved]],
        "to_store_id": np.asarray(store_ids)[r_store[moved]],
        "quantity": flow[moved].astype(np.int64),
        "value": values[moved],
        "cost": flow[moved] * problem.pair_cost[moved] + fixed_share[moved],
        "distance_km": km[moved],
        # Delivered (routed) on the day it arrives: run date + transfer_lead_days.
        "expected_arrival": pd.Timestamp(delivery_day(run_date, settings.transfer_lead_days)),
    })
    out = out.sort_values(["from_store_id", "to_store_id", "product_id"], kind="mergesort").reset_index(drop=True)
    out.insert(1, "transfer_id", [f"T{run_date:%Y%m%d}-{i + 1:06d}" for i in range(len(out))])
    return out[TRANSFER_COLUMNS]


class GroupIndex:
    """The problem's nodes and arcs sorted by product, so that the sub-problem of a few products
    is gathered in time proportional to its own size (not the whole problem's)."""

    def __init__(self, problem: TransferProblem) -> None:
        edges = np.arange(problem.n_groups + 1)

        def index(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            order = np.argsort(groups, kind="stable")
            return order, np.searchsorted(groups[order], edges)

        self.senders = index(problem.sender_group)
        self.receivers = index(problem.receiver_group)
        self.send = index(problem.sender_group[problem.send_owner])
        self.recv = index(problem.receiver_group[problem.recv_owner])
        self.pairs = index(problem.sender_group[problem.pair_sender])

    @staticmethod
    def take(index: tuple[np.ndarray, np.ndarray], groups: np.ndarray) -> np.ndarray:
        order, start = index
        parts = [order[start[k]:start[k + 1]] for k in groups]
        # Original order: each owner's arcs stay together and in the order the flow takes them.
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def subset_problem(problem: TransferProblem, groups: np.ndarray,
                   index: GroupIndex | None = None) -> tuple[TransferProblem, np.ndarray]:
    """The sub-network of the given products, and the pair-arc indices it keeps."""
    if index is not None:
        groups = np.unique(groups)
        s_sel, r_sel = index.take(index.senders, groups), index.take(index.receivers, groups)
        so, ro, pk = (index.take(index.send, groups), index.take(index.recv, groups),
                      index.take(index.pairs, groups))
        sub = TransferProblem(
            n_groups=len(groups), sender_group=np.searchsorted(groups, problem.sender_group[s_sel]),
            receiver_group=np.searchsorted(groups, problem.receiver_group[r_sel]),
            send_owner=np.searchsorted(s_sel, problem.send_owner[so]), send_cap=problem.send_cap[so],
            send_cost=problem.send_cost[so],
            recv_owner=np.searchsorted(r_sel, problem.recv_owner[ro]), recv_cap=problem.recv_cap[ro],
            recv_gain=problem.recv_gain[ro],
            pair_sender=np.searchsorted(s_sel, problem.pair_sender[pk]),
            pair_receiver=np.searchsorted(r_sel, problem.pair_receiver[pk]),
            pair_cost=problem.pair_cost[pk], pair_cap=problem.pair_cap[pk],
            recv_store=None if problem.recv_store is None else problem.recv_store[r_sel],
            store_cap=problem.store_cap)
        return sub, pk
    keep_g = np.zeros(problem.n_groups, dtype=bool)
    keep_g[groups] = True
    g_new = np.cumsum(keep_g) - 1
    s_keep = keep_g[problem.sender_group]
    r_keep = keep_g[problem.receiver_group]
    s_new = np.cumsum(s_keep) - 1
    r_new = np.cumsum(r_keep) - 1
    so = s_keep[problem.send_owner]
    ro = r_keep[problem.recv_owner]
    pk = np.flatnonzero(s_keep[problem.pair_sender])
    sub = TransferProblem(
        n_groups=int(keep_g.sum()), sender_group=g_new[problem.sender_group[s_keep]],
        receiver_group=g_new[problem.receiver_group[r_keep]],
        send_owner=s_new[problem.send_owner[so]], send_cap=problem.send_cap[so], send_cost=problem.send_cost[so],
        recv_owner=r_new[problem.recv_owner[ro]], recv_cap=problem.recv_cap[ro], recv_gain=problem.recv_gain[ro],
        pair_sender=s_new[problem.pair_sender[pk]], pair_receiver=r_new[problem.pair_receiver[pk]],
        pair_cost=problem.pair_cost[pk], pair_cap=problem.pair_cap[pk],
        recv_store=None if problem.recv_store is None else problem.recv_store[r_keep],
        store_cap=problem.store_cap)
    return sub, pk


def coupled_products(problem: TransferProblem, store_cap: np.ndarray | None = None) -> np.ndarray:
    """A component label per product: products that share a store whose room can bind (less room
    than the pair capacity that could enter it, all products together) are in one component.
    Products of different components share no constraint, so each component's optimum is
    independent of the others' (exact decomposition, not a heuristic)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = problem.n_groups
    if problem.recv_store is None or len(problem.pair_sender) == 0:
        return np.arange(g)
    room = problem.store_cap if store_cap is None else store_cap
    room = np.nan_to_num(np.asarray(room, dtype=np.float64), nan=0.0, posinf=np.inf)
    pair_store = problem.recv_store[problem.pair_receiver]
    could_enter = np.bincount(pair_store, weights=problem.pair_cap, minlength=len(room))
    binding = np.flatnonzero(room < could_enter)
    sel = np.isin(pair_store, binding)
    pair_group = problem.sender_group[problem.pair_sender[sel]]
    graph = coo_matrix((np.ones(int(sel.sum())), (pair_group, g + pair_store[sel])),
                       shape=(g + len(room), g + len(room)))
    _, labels = connected_components(graph, directed=False)
    return labels[:g]


# Components up to this many pair arcs get the exact minimum-quantity model (CP-SAT), within one
# time budget per plan.
EXACT_MAX_PAIRS = 2_000
EXACT_TIME_LIMIT_S = 10.0


def solve_min_quantity_exact(problem: TransferProblem, min_units: int, store_cap: np.ndarray | None = None,
                             time_limit_s: float = EXACT_TIME_LIMIT_S) -> tuple[np.ndarray | None, str]:
    """The optimal flow in which every pair arc carries 0 or at least `min_units` (CP-SAT, the
    same integer costs as the flow). Returns (pair flows, status name); flows are None when
    CP-SAT proved nothing better than doing nothing could be found in time (UNKNOWN)."""
    from ortools.sat.python import cp_model

    n_s, n_r = len(problem.sender_group), len(problem.receiver_group)
    n_pairs = len(problem.pair_sender)
    model = cp_model.CpModel()
    pair_cap = problem.pair_cap.astype(np.int64)
    x = []
    for a in range(n_pairs):
        cap = int(pair_cap[a]) if pair_cap[a] >= min_units else 0
        var = model.new_int_var(0, cap, "")
        if cap > 0 and min_units > 1:
            used = model.new_bool_var("")
            model.add(var >= min_units).only_enforce_if(used)
            model.add(var == 0).only_enforce_if(~used)
        x.append(var)
    y = [model.new_int_var(0, int(c), "") for c in problem.send_cap]
    z = [model.new_int_var(0, int(c), "") for c in problem.recv_cap]
    out_arcs: list[list[int]] = [[] for _ in range(n_s)]
    in_arcs: list[list[int]] = [[] for _ in range(n_r)]
    for a in range(n_pairs):
        out_arcs[problem.pair_sender[a]].append(a)
        in_arcs[problem.pair_receiver[a]].append(a)
    units_s: list[list[int]] = [[] for _ in range(n_s)]
    units_r: list[list[int]] = [[] for _ in range(n_r)]
    for k, o in enumerate(problem.send_owner):
        units_s[o].append(k)
    for k, o in enumerate(problem.recv_owner):
        units_r[o].append(k)
    for arcs, units, var in ((out_arcs, units_s, y), (in_arcs, units_r, z)):
        for node_arcs, node_units in zip(arcs, units):
            if node_arcs or node_units:
                model.add(sum(x[a] for a in node_arcs) == sum(var[k] for k in node_units))
    if problem.recv_store is not None:
        room = problem.store_cap if store_cap is None else store_cap
        room = np.clip(np.nan_to_num(np.asarray(room, dtype=np.float64), nan=0.0, posinf=np.inf), 0,
                       float(pair_cap.sum()))
        per_store: dict[int, list[int]] = {}
        for a in range(n_pairs):
            per_store.setdefault(int(problem.recv_store[problem.pair_receiver[a]]), []).append(a)
        for store, arcs in per_store.items():
            if room[store] < sum(int(pair_cap[a]) for a in arcs):
                model.add(sum(x[a] for a in arcs) <= int(room[store]))
    pc, sc, rg = _scaled(problem.pair_cost), _scaled(problem.send_cost), _scaled(problem.recv_gain)
    model.minimize(sum(int(pc[a]) * x[a] for a in range(n_pairs)) + sum(int(sc[k]) * y[k] for k in range(len(y)))
                   - sum(int(rg[k]) * z[k] for k in range(len(z))))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    name = solver.status_name(status)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return np.array([solver.value(v) for v in x], dtype=np.int64), name
    if status == cp_model.UNKNOWN:
        return None, name
    # Doing nothing is always feasible: INFEASIBLE or MODEL_INVALID is a bug in the model.
    raise RebalanceError(f"CP-SAT status {name} on the minimum-quantity model ({n_pairs} pair arcs)")


def _scaled_objective(problem: TransferProblem, flow: np.ndarray) -> int:
    """The integer cost the solvers minimise, for a pair flow (units taken in value order)."""
    n_s, n_r = len(problem.sender_group), len(problem.receiver_group)
    out_s = np.bincount(problem.pair_sender, weights=flow, minlength=n_s)
    in_r = np.bincount(problem.pair_receiver, weights=flow, minlength=n_r)
    send = _consumed(problem.send_owner, problem.send_cap, _scaled(problem.send_cost).astype(np.float64), out_s,
                     ascending=True)
    gain = _consumed(problem.recv_owner, problem.recv_cap, _scaled(problem.recv_gain).astype(np.float64), in_r,
                     ascending=False)
    return int(round(float((_scaled(problem.pair_cost) * flow).sum() + send.sum() - gain.sum())))


def solve_with_minimums(problem: TransferProblem, s_store: np.ndarray, r_store: np.ndarray,
                        settings: Settings, exact_max_pairs: int = EXACT_MAX_PAIRS,
                        time_limit_s: float = EXACT_TIME_LIMIT_S, info: dict | None = None,
                        trip_fixed: np.ndarray | None = None) -> np.ndarray:
    """Optimal flow under the minimum quantity per transfer and the minimum net value per trip.

    1. The min-cost flow (the LP optimum without the minimums: an upper bound on the net value).
       Products whose flows all meet min_transfer_units are optimal as they are.
    2. The other products are split into components that share no binding store room
       (`coupled_products`); each component of at most `exact_max_pairs` pair arcs is solved
       exactly by CP-SAT with the minimum quantity as an either-0-or-at-least constraint, smallest
       first, within one `time_limit_s` budget. A time-limited FEASIBLE answer is kept only if it
       beats step 3's; UNKNOWN (or no time left) leaves the component to step 3.
    3. Heuristic for what is left, and for trips whose net value is below min_transfer_value:
       forbid the offending arcs (all arcs of a weak trip) and solve the products concerned
       again, until none is left (at most MAX_ROUNDS rounds, then offenders are dropped).

    `info`, when given, receives `lp_objective` (step 1's net value), `objective` (the plan's),
    and `proven_optimal`: True when no step-3 change was needed, so the plan is the optimum under
    the minimum quantity (and the trip-value rule did not bind)."""
    import time

    n_st = int(max(s_store.max(initial=0), r_store.max(initial=0))) + 1
    trip = s_store.astype(np.int64) * n_st + r_store
    pair_group = problem.sender_group[problem.pair_sender]
    flow = solve_transfer_problem(problem)
    proven = True
    exact_components = 0
    if info is not None:
        info["lp_objective"] = plan_objective(problem, flow)
    small = (flow > 0) & (flow < settings.min_transfer_units)
    if small.any():
        labels = coupled_products(problem)
        comps = np.unique(labels[pair_group[small]])
        pairs_per_comp = np.bincount(labels[pair_group], minlength=labels.max() + 1)
        comps = comps[np.argsort(pairs_per_comp[comps], kind="stable")]
        deadline = time.monotonic() + time_limit_s
        index: GroupIndex | None = None
        inflow = store_inflow(problem, flow)
        by_label = np.argsort(labels, kind="stable")
        label_start = np.searchsorted(labels[by_label], np.arange(labels.max() + 2))
        for c in comps:
            left = deadline - time.monotonic()
            if pairs_per_comp[c] > exact_max_pairs or left <= 0.05:
                proven = False
                continue
            index = index or GroupIndex(problem)
            sub, pk = subset_problem(problem, by_label[label_start[c]:label_start[c + 1]], index)
            room = None
            if problem.recv_store is not None:
                # A component's binding stores serve no other component; the others' flows are
                # taken off the (non-binding) stores they share all the same.
                own = np.bincount(sub.recv_store[sub.pair_receiver], weights=flow[pk], minlength=len(inflow))
                room = problem.store_cap - (inflow - own)
            exact, status = solve_min_quantity_exact(sub, settings.min_transfer_units, room, time_limit_s=left)
            if status != "OPTIMAL":
                proven = False
                heuristic = _heuristic(sub, trip[pk], settings, flow[pk].copy(), min_value=-np.inf, room=room)
                if exact is None or _scaled_objective(sub, heuristic) < _scaled_objective(sub, exact):
                    exact = heuristic
            else:
                exact_components += 1
            if problem.recv_store is not None:
                inflow += np.bincount(sub.recv_store[sub.pair_receiver], weights=exact - flow[pk],
                                      minlength=len(inflow))
            flow[pk] = exact
    final = _heuristic(problem, trip, settings, flow.copy(), min_value=settings.min_transfer_value,
                       trip_fixed=trip_fixed)
    if info is not None:
        info["objective"] = plan_objective(problem, final)
        info["exact_components"] = exact_components
        info["proven_optimal"] = bool(proven and np.array_equal(final, flow))
    return final


def _heuristic(problem: TransferProblem, trip: np.ndarray, settings: Settings, flow: np.ndarray,
               min_value: float, room: np.ndarray | None = None,
               trip_fixed: np.ndarray | None = None) -> np.ndarray:
    """Forbid offending arcs and re-solve their products until no transfer is below the minimum
    quantity or in a trip worth less than min_value (MAX_ROUNDS rounds, then drop offenders)."""
    allowed = np.ones(len(problem.pair_sender), dtype=bool)
    pair_group = problem.sender_group[problem.pair_sender]
    store_cap = problem.store_cap if room is None else room
    for _ in range(MAX_ROUNDS):
        bad = _violations(problem, flow, trip, settings.min_transfer_units, min_value, trip_fixed)
        if not bad.any():
            return flow
        allowed &= ~bad
        groups = np.unique(pair_group[bad])
        sub, pk = subset_problem(problem, groups)
        sub_room = None
        if problem.recv_store is not None:
            # The other products keep their flows, and their share of each store's room.
            others = flow.copy()
            others[pk] = 0
            sub_room = store_cap - store_inflow(problem, others)
        flow[pk] = solve_transfer_problem(sub, allowed[pk], sub_room)
    # Still violating after MAX_ROUNDS: drop those transfers (always feasible: stock stays put).
    while True:
        bad = _violations(problem, flow, trip, settings.min_transfer_units, min_value, trip_fixed)
        if not bad.any():
            return flow
        flow = np.where(bad, 0, flow)


def _violations(problem: TransferProblem, flow: np.ndarray, trip: np.ndarray, min_units: int,
                min_value: float, trip_fixed: np.ndarray | None = None) -> np.ndarray:
    moved = flow > 0
    small = moved & (flow < min_units)
    if not np.isfinite(min_value):
        return small
    net = _unit_value(problem, flow) - flow * problem.pair_cost
    trips, inv = np.unique(trip[moved], return_inverse=True)
    trip_net = np.bincount(inv, weights=net[moved], minlength=len(trips))
    if trip_fixed is not None:
        # A trip's route cost, once per trip (every pair arc of the trip carries the same figure).
        fixed = np.zeros(len(trips))
        fixed[inv] = trip_fixed[moved]
        trip_net = trip_net - fixed
    weak_trips = trips[trip_net < min_value]
    weak = moved & np.isin(trip, weak_trips)
    return small | weak


def delivery_day(run_date: date, lead_days: float) -> date:
    """The day a line planned on `run_date` arrives: it is routed and delivered that day (the
    routes of a day carry what arrives that day), and the replay counts it on the shelf from then."""
    return run_date + timedelta(days=int(lead_days))


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


# ---------------------------------------------------------------------------------------------
# Distribution-centre orders
# ---------------------------------------------------------------------------------------------
def assign_dcs(stores: pd.DataFrame, dcs: pd.DataFrame) -> pd.DataFrame:
    """Each store's supplying distribution centre: the nearest one (store_id, dc_id, distance_km,
    lead_time_days)."""
    if len(dcs) == 0 or len(stores) == 0:
        return pd.DataFrame({"store_id": stores["store_id"].astype(str), "dc_id": None,
                             "distance_km": np.nan, "lead_time_days": np.nan})
    dist = distance_matrix_km(stores["latitude"], stores["longitude"], dcs["latitude"], dcs["longitude"])
    best = np.argmin(dist, axis=1)
    return pd.DataFrame({
        "store_id": stores["store_id"].astype(str).to_numpy(),
        "dc_id": dcs["dc_id"].astype(str).to_numpy()[best],
        "distance_km": dist[np.arange(len(stores)), best],
        "lead_time_days": pd.to_numeric(dcs["lead_time_days"], errors="coerce").to_numpy()[best],
    })


def transfers_in_out(policy: pd.DataFrame, transfers: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Units coming in and units going out per policy row."""
    if transfers is None or len(transfers) == 0:
        return np.zeros(len(policy), dtype=np.int64), np.zeros(len(policy), dtype=np.int64)
    key = pd.MultiIndex.from_arrays([policy["store_id"].astype(str), policy["product_id"].astype(str)])
    t = transfers.assign(product_id=transfers["product_id"].astype(str))
    inn = t.groupby([t["to_store_id"].astype(str), "product_id"])["quantity"].sum()
    out = t.groupby([t["from_store_id"].astype(str), "product_id"])["quantity"].sum()
    return (inn.reindex(key).fillna(0).to_numpy().astype(np.int64),
            out.reindex(key).fillna(0).to_numpy().astype(np.int64))


def net_transfers(policy: pd.DataFrame, transfers: pd.DataFrame) -> np.ndarray:
    """Units in minus units out per policy row."""
    inn, out = transfers_in_out(policy, transfers)
    return inn - out


def plan_orders(policy: pd.DataFrame, transfers: pd.DataFrame, products: pd.DataFrame, dcs: pd.DataFrame,
                stores: pd.DataFrame, *, settings: Settings, run_date: date,
                inventory: pd.DataFrame | None = None,
                return_exceptions: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Distribution-centre orders (replenishment_orders columns without run_id): every position
    whose inventory position after transfers is below its reorder point is ordered up to its
    order-up-to level (reorder point + EOQ), rounded up to whole cases and down again if the
    shelf cannot hold them on the delivery day. Positions whose exception forbids ordering are
    left out.

    Room is judged on the delivery day (`projected_stock`): today's stock less the transfers
    leaving and the expected demand over the lead time, plus everything on order and the
    transfers coming in. An order cut by its shelf that leaves the position below its reorder
    point is a SHELF_ROOM_AT_DELIVERY row of the exceptions frame. A store never gets more than
    its room: capacity_units less the stock of all its products projected the same way. Where the
    orders would overfill it, the most urgent positions (fewest days of cover, then the larger
    margin) keep their whole cases and the rest are cut; each cut order is a STORE_CAPACITY row.
    The exceptions frame (plan_exceptions columns without run_id) is returned too when
    return_exceptions is True."""
    from retailopt.policy import ACTIONS, EXCEPTION_COLUMNS

    on_hand = policy["on_hand"].to_numpy(dtype=np.int64)
    on_order = policy["on_order"].to_numpy(dtype=np.int64)
    t_in, t_out = transfers_in_out(policy, transfers)
    position = on_hand + on_order + t_in - t_out
    daily = policy["mean_daily_demand"].to_numpy(dtype=float) if "mean_daily_demand" in policy else None
    lead_days = np.nan_to_num(policy["lead_time_days"].to_numpy(dtype=float), nan=1.0) \
        if "lead_time_days" in policy else np.ones(len(policy))
    at_delivery = projected_stock(on_hand, on_order, daily, lead_days, shipped_out=t_out, arriving=t_in)
    reorder = policy["reorder_point"].to_numpy(dtype=float)
    up_to = policy["order_up_to"].to_numpy(dtype=float)
    blocked = np.array([bool(exception_codes(e) & NO_ORDER_CODES) for e in policy["exception"]]) \
        if "exception" in policy else np.zeros(len(policy), dtype=bool)
    want = np.where(~blocked & (position < reorder), np.ceil(up_to - position - 1e-9), 0.0)
    prods = products.assign(product_id=products["product_id"].astype(str)).drop_duplicates(
        "product_id", keep="last").set_index("product_id")
    pid = policy["product_id"].astype(str)
    pack = pd.to_numeric(pid.map(prods["case_pack"]), errors="coerce").to_numpy(dtype=float)
    pack = np.where(pack >= 1, pack, 1.0)
    unit_cost = pd.to_numeric(pid.map(prods["unit_cost"]), errors="coerce").to_numpy(dtype=float)
    cases = np.ceil(want / pack)
    if "max_capacity" in policy:
        cap = policy["max_capacity"].to_numpy(dtype=float)
    elif inventory is not None:
        caps = inventory.assign(store_id=inventory["store_id"].astype(str),
                                product_id=inventory["product_id"].astype(str)).drop_duplicates(
            ["store_id", "product_id"], keep="last").set_index(["store_id", "product_id"])["max_capacity"]
        cap = caps.reindex(pd.MultiIndex.from_arrays([policy["store_id"].astype(str), pid])).to_numpy(dtype=float)
    else:
        cap = np.full(len(policy), np.inf)
    room = np.nan_to_num(cap, nan=np.inf) - at_delivery
    wanted_cases = cases.copy()
    cases = np.where(cases * pack > room, np.floor(np.maximum(room, 0) / pack), cases)
    cases = np.where(np.isfinite(unit_cost), cases, 0).astype(np.int64)
    # A cut that still reaches the reorder point is just a smaller order; one that does not is a
    # known risk of running out, and says why.
    short = np.flatnonzero(np.isfinite(unit_cost) & (cases < wanted_cases) & (position + cases * pack < reorder))
    shelf_rows = [(pd.Timestamp(run_date), str(policy["store_id"].iat[i]), str(policy["product_id"].iat[i]),
                   "SHELF_ROOM_AT_DELIVERY",
                   f"shelf holds {cap[i]:,.0f} units; {at_delivery[i]:,.0f} expected on it when the order arrives in "
                   f"{lead_days[i]:g} days (after {max(on_hand[i] - t_out[i], 0)} on hand less the expected demand, plus "
                   f"{on_order[i]} on order and {t_in[i]} transferred in): order of {int(wanted_cases[i] * pack[i])} "
                   f"units in cases of {pack[i]:g} cut to {int(cases[i] * pack[i])}, inventory position "
                   f"{int(position[i] + cases[i] * pack[i])} below the reorder point {reorder[i]:g}",
                   ACTIONS["SHELF_ROOM_AT_DELIVERY"]) for i in short]
    price = pd.to_numeric(pid.map(prods["price"]), errors="coerce").to_numpy(dtype=float)
    cases, exceptions = _fit_store_room(policy, transfers, stores, cases, pack, position,
                                        np.nan_to_num(price - unit_cost, nan=0.0), run_date,
                                        daily=daily, lead_days=lead_days, shipped_out=t_out)
    if shelf_rows:
        exceptions = pd.concat([pd.DataFrame(shelf_rows, columns=EXCEPTION_COLUMNS), exceptions], ignore_index=True) \
            if len(exceptions) else pd.DataFrame(shelf_rows, columns=EXCEPTION_COLUMNS)
    sel = np.flatnonzero(cases > 0)
    dc = assign_dcs(stores, dcs).set_index("store_id")
    sid = policy["store_id"].astype(str).to_numpy()[sel]
    dc_id = dc["dc_id"].reindex(sid).to_numpy()
    lead = dc["lead_time_days"].reindex(sid).to_numpy(dtype=float)
    # The policy's lead time stands in where the store has no distribution centre lead time.
    lead = np.where(lead >= 1, lead, policy["lead_time_days"].to_numpy(dtype=float)[sel])
    has_dc = pd.notna(dc_id)
    sel, sid, dc_id, lead = sel[has_dc], sid[has_dc], dc_id[has_dc], lead[has_dc]
    qty = (cases[sel] * pack[sel]).astype(np.int64)
    out = pd.DataFrame({
        "run_date": pd.Timestamp(run_date),
        "dc_id": dc_id.astype(str),
        "store_id": sid,
        "product_id": pid.to_numpy()[sel],
        "quantity": qty,
        "cases": cases[sel],
        "order_value": qty * unit_cost[sel],
        "expected_arrival": [pd.Timestamp(delivery_day(run_date, d)) for d in lead],
    })
    out = out.sort_values(["dc_id", "store_id", "product_id"], kind="mergesort").reset_index(drop=True)
    out.insert(1, "order_id", [f"O{run_date:%Y%m%d}-{i + 1:06d}" for i in range(len(out))])
    return (out[ORDER_COLUMNS], exceptions) if return_exceptions else out[ORDER_COLUMNS]




def _fit_store_room(policy: pd.DataFrame, transfers: pd.DataFrame | None, stores: pd.DataFrame,
                    cases: np.ndarray, pack: np.ndarray, position: np.ndarray, margin: np.ndarray,
                    run_date: date, daily: np.ndarray | None = None, lead_days: np.ndarray | float = 0,
                    shipped_out: np.ndarray | float = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Cut order cases so that no store receives more than its room on the delivery day; the
    exception rows."""
    from retailopt.policy import ACTIONS, EXCEPTION_COLUMNS

    store_codes, store_ids = _codes(policy["store_id"])
    on_hand = policy["on_hand"].to_numpy(dtype=np.int64)
    on_order = policy["on_order"].to_numpy(dtype=np.int64)
    room = store_free_space(stores, store_ids, store_codes, on_hand, on_order, daily, lead_days, shipped_out)
    incoming = np.zeros(len(store_ids))
    if transfers is not None and len(transfers):
        t_codes, _ = _codes(transfers["to_store_id"].astype(str), store_ids)
        ok = t_codes >= 0
        incoming = np.bincount(t_codes[ok], weights=transfers["quantity"].to_numpy(dtype=float)[ok],
                               minlength=len(store_ids))
    left = room - incoming
    qty = cases * pack
    wanted = np.bincount(store_codes, weights=qty, minlength=len(store_ids))
    over = np.flatnonzero(wanted > np.maximum(left, 0) + 1e-9)
    rows: list[tuple] = []
    if len(over) == 0:
        return cases, pd.DataFrame(columns=EXCEPTION_COLUMNS)
    cases = cases.copy()
    mean_daily = policy["mean_daily_demand"].to_numpy(dtype=float) if "mean_daily_demand" in policy \
        else np.zeros(len(policy))
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(mean_daily > 0, np.maximum(position, 0) / mean_daily, np.inf)
    cap_units = room + np.bincount(store_codes, weights=projected_stock(on_hand, on_order, daily, lead_days,
                                                                         shipped_out), minlength=len(store_ids))
    for code in over:
        members = np.flatnonzero((store_codes == code) & (cases > 0))
        members = members[np.lexsort((-margin[members], cover[members]))]
        free = max(float(left[code]), 0.0)
        sid = str(store_ids[code])
        for i in members:
            fit = min(int(cases[i]), int(free // pack[i]))
            if fit < cases[i]:
                want, got = int(cases[i] * pack[i]), int(fit * pack[i])
                rows.append((pd.Timestamp(run_date), sid, str(policy["product_id"].iat[i]), "STORE_CAPACITY",
                             f"store {sid} holds {cap_units[code]:,.0f} units and has room for {free:,.0f} more "
                             f"on the delivery day after its stock on hand (less the expected demand) and on "
                             f"order, {incoming[code]:,.0f} units transferred in "
                             f"and more urgent orders: order of {want} units cut to {got}",
                             ACTIONS["STORE_CAPACITY"]))
                cases[i] = fit
            free -= cases[i] * pack[i]
    return cases, pd.DataFrame(rows, columns=EXCEPTION_COLUMNS)


def apply_plan(policy: pd.DataFrame, transfers: pd.DataFrame, orders: pd.DataFrame,
               *, overstock_cover_days: float) -> pd.DataFrame:
    """The policy with status_after_plan: the status once planned transfers and orders arrive."""
    from retailopt.policy import status_for

    position = (policy["on_hand"].to_numpy(dtype=np.int64) + policy["on_order"].to_numpy(dtype=np.int64)
                + net_transfers(policy, transfers))
    on_hand = policy["on_hand"].to_numpy(dtype=np.int64) + net_transfers(policy, transfers)
    if orders is not None and len(orders):
        key = pd.MultiIndex.from_arrays([policy["store_id"].astype(str), policy["product_id"].astype(str)])
        q = orders.groupby([orders["store_id"].astype(str), orders["product_id"].astype(str)])["quantity"].sum()
        position = position + q.reindex(key).fillna(0).to_numpy(dtype=np.int64)
    out = policy.copy()
    out["status_after_plan"] = status_for(position.astype(float), policy["reorder_point"].to_numpy(dtype=float),
                                          policy["order_up_to"].to_numpy(dtype=float), on_hand,
                                          policy["mean_daily_demand"].to_numpy(dtype=float), overstock_cover_days)
    return out
