"""The hindsight bound of a replay: the best any planner could have done knowing the demand.

`solve_hindsight` plans the replay window with the real demand known in advance, under the
replay's own rules: distribution-centre orders and store-to-store transfers only on re-planning
days, orders in whole cases arriving after the store's lead time, transfers from stock on hand
arriving after `transfer_lead_days` between stores within `max_transfer_km` and of at least
`min_transfer_units`, nothing put on a shelf that does not hold it, lost sales when the shelf is
empty. It minimises the replay's total cost (holding + order lines + transfers + lost margin),
product by product (the replay's products do not interact), always within a time budget:

- a plan: a clairvoyant weekly order-up-to plan, replaced by the product's mixed-integer program
  (HiGHS through scipy) where its solution is cheaper and the time allows;
- a bound: the program's LP relaxation, raised by a Lagrangian bound (transfers priced at the
  LP's values, one small MIP per store), or the MIP's own dual bound. Every plan a strategy can
  carry out in the replay is feasible for these programs, so the bound is below the total cost of
  every one of them: a true bound, whatever the time limit cut short.

Two of the planning rules are relaxed (dropping a constraint can only lower
the optimum): the store-wide room (`capacity_units`, which couples products; the replay does not
enforce it physically either) and the minimum net value per trip. Arrivals the shelf cannot hold
are refused in the replay (what was on order unit by unit, DC cases whole; transfers, planned
against their own room, are put away after them and never refused); the programs accept the
same, so a strategy's refused deliveries are feasible here as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, sparse


class HindsightError(RuntimeError):
    """The solver answered something that cannot happen for this model (a bug), or failed."""


@dataclass(frozen=True)
class HindsightProblem:
    """Positions 0..n-1 (store x product), days 0..T-1 of the replay window."""
    demand: np.ndarray  # (n, T) units demanded
    on_hand: np.ndarray  # (n,) stock on the shelf on the morning of day 0
    arrivals: np.ndarray  # (n, T) units already on order arriving each morning
    lead: np.ndarray  # (n,) days from a DC order to its arrival
    shelf: np.ndarray  # (n,) what the shelf holds (inf: no limit)
    pack: np.ndarray  # (n,) case pack of DC orders
    holding: np.ndarray  # (n,) holding cost per unit left on hand at the end of a day
    margin: np.ndarray  # (n,) cost of a lost sale
    orderable: np.ndarray  # (n,) bool: the DC may supply this position
    product: np.ndarray  # (n,) product code (positions of one product may exchange stock)
    replan_days: np.ndarray  # days on which orders and transfers are placed
    order_cost: float  # per order line
    # Transfer pairs between positions of the same product (sender, receiver, cost per unit).
    pair_from: np.ndarray
    pair_to: np.ndarray
    pair_cost: np.ndarray
    transfer_lead: int = 1
    min_transfer_units: int = 1


@dataclass
class HindsightPlan:
    orders: np.ndarray  # (n, R) units ordered on each re-planning day (whole cases)
    transfers: np.ndarray  # (n_pairs, R) units shipped on each re-planning day
    objective: float  # the plan's total cost in the model
    bound: float  # lower bound on the total cost of any plan under the rules
    statuses: dict[str, int] = field(default_factory=dict)  # products per solver outcome
    seconds: float = 0.0
    product_cost: np.ndarray | None = None  # the plan's cost per product code
    product_bound: np.ndarray | None = None  # the lower bound per product code


def solve_hindsight(problem: HindsightProblem, *, time_limit_s: float = 300.0, plan_share: float = 0.2,
                    log=None) -> HindsightPlan:
    """The hindsight plan and its bound, product by product.

    Plan: a clairvoyant weekly order-up-to plan (`clairvoyant_orders`: on each re-planning day,
    whole cases covering the known demand until the next delivery, within the shelf; no
    transfers). It is feasible under the rules, so the optimum costs at most as much. With
    `plan_share` of the time budget, the products with the widest gap between that plan and their
    bound get the full program (orders and transfers, minimum quantity, HiGHS MIP), whose plan is
    kept where it is cheaper.

    Bound, per product (every one a valid lower bound on the cost of any plan under the rules):
    - a product whose plan orders nothing and loses nothing costs its holding and nothing can do
      better (moving a surplus saves holding only in transit, never worth a transfer's cost);
    - otherwise the LP relaxation of the product's program (HiGHS), then, while the time budget
      lasts, its Lagrangian bound: each transfer split into a shipment and a receipt priced at
      the LP's value of a unit at the receiver on arrival, which leaves one small MIP per store
      (whole cases, order lines, shelf) whose optima add up to at least the LP value.
    Solver statuses: an LP or MIP stopped by the time limit contributes its proven dual bound
    (MIP) or the LP value already proven (or nothing: 0 for that product); INFEASIBLE or
    UNBOUNDED raise HindsightError (ordering and moving nothing is feasible and every cost is
    non-negative, so they mean a bug)."""
    started = time.perf_counter()
    n, n_days = problem.demand.shape
    orders, _ = clairvoyant_orders(problem)
    cost_each, lost_each = evaluate_orders(problem, orders)
    transfers = np.zeros((len(problem.pair_from), len(problem.replan_days)), dtype=np.int64)
    products = np.unique(problem.product)
    by_product = np.argsort(problem.product, kind="stable")
    starts = np.searchsorted(problem.product[by_product], products)
    ends = np.searchsorted(problem.product[by_product], products, side="right")
    pair_product = problem.product[problem.pair_from] if len(problem.pair_from) else np.zeros(0, dtype=np.int64)
    pair_order = np.argsort(pair_product, kind="stable")
    p_starts = np.searchsorted(pair_product[pair_order], products)
    p_ends = np.searchsorted(pair_product[pair_order], products, side="right")
    statuses: dict[str, int] = {}

    def count(status: str) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    transit_worthless = bool(np.all(problem.pair_cost >= problem.transfer_lead *
                                    problem.holding[problem.pair_from])) if len(problem.pair_from) else True
    todo = []
    for k in range(len(products)):
        rows = by_product[starts[k]:ends[k]]
        if transit_worthless and not orders[rows].any() and not lost_each[rows].any():
            count("HOLDING_ONLY")
        else:
            todo.append(k)
    deadline = started + time_limit_s
    models, lp_values, duals = {}, {}, {}
    # The LP relaxations first (fast): a bound for every product before the finer work.
    for k in todo:
        rows = by_product[starts[k]:ends[k]]
        model = _product_model(problem, rows, pair_order[p_starts[k]:p_ends[k]], with_minimum=False)
        status, value, pi = _solve_lp(model, max(deadline - time.perf_counter(), 1.0))
        count(f"LP_{status}")
        models[k], lp_values[k], duals[k] = model, value, pi
    n_codes = int(problem.product.max(initial=-1)) + 1
    product_cost = np.bincount(problem.product, weights=cost_each, minlength=n_codes)
    product_bound = product_cost.copy()  # exact for the products settled above
    bound_deadline = started + time_limit_s * (1.0 - plan_share)
    for done, k in enumerate(todo):
        p = products[k]
        value = lp_values[k]
        if duals[k] is not None and time.perf_counter() < bound_deadline:
            lagrangian = _lagrangian_bound(models[k], duals[k], bound_deadline, count)
            if lagrangian is not None:
                value = max(value, lagrangian)
        product_bound[p] = min(value, product_cost[p])
        if log is not None and (done + 1) % 50 == 0:
            log(f"hindsight: {done + 1}/{len(todo)} products bounded, {time.perf_counter() - started:.1f}s")
    # The rest of the time: the full program for the products with the widest gaps.
    for k in sorted(todo, key=lambda k: product_bound[products[k]] - product_cost[products[k]]):
        left = deadline - time.perf_counter()
        if left < 0.5 or product_cost[products[k]] - product_bound[products[k]] <= 1e-6:
            break
        rows = by_product[starts[k]:ends[k]]
        pairs = pair_order[p_starts[k]:p_ends[k]]
        model = _product_model(problem, rows, pairs)
        status, x, fun, dual = _solve(model, min(left, max(time_limit_s * plan_share / 10, 1.0)))
        count(f"MIP_{status}")
        p = products[k]
        product_bound[p] = min(max(product_bound[p], dual), product_cost[p])
        if x is not None and fun < product_cost[p] - 1e-9:
            product_cost[p] = fun
            product_bound[p] = min(product_bound[p], fun)
            orders[rows] = 0
            orders[rows[model.order_pos], model.order_rep] = np.rint(x[model.order_var]).astype(np.int64) * \
                problem.pack[rows[model.order_pos]].astype(np.int64)
            transfers[pairs[model.ship_pair], model.ship_rep] = np.rint(x[model.ship_var]).astype(np.int64)
    return HindsightPlan(orders=orders, transfers=transfers, objective=float(product_cost.sum()),
                         bound=float(product_bound.sum()), statuses=statuses, seconds=time.perf_counter() - started,
                         product_cost=product_cost, product_bound=product_bound)


def _solve_lp(model: _Model, time_limit_s: float) -> tuple[str, float, np.ndarray | None]:
    """(status, proven lower bound, duals of the balance rows) of the LP relaxation."""
    res = optimize.linprog(model.c, A_ub=model.a_ub if model.a_ub.shape[0] else None,
                           b_ub=model.b_ub if model.a_ub.shape[0] else None, A_eq=model.a_eq, b_eq=model.b_eq,
                           bounds=np.column_stack([model.lower, model.upper]), method="highs",
                           options={"time_limit": float(time_limit_s)})
    if res.status == 0:
        return "OPTIMAL", float(res.fun), np.asarray(res.eqlin.marginals)
    if res.status == 1:  # time or iteration limit: nothing proven
        return "TIME_LIMIT", 0.0, None
    if res.status in (2, 3):
        raise HindsightError(f"hindsight LP {'infeasible' if res.status == 2 else 'unbounded'}: {res.message} "
                             f"(ordering and moving nothing is feasible and costs are non-negative: a model bug)")
    return "NUMERICAL", 0.0, None


def _lagrangian_bound(model: _Model, pi: np.ndarray, deadline: float, count) -> float | None:
    """Each transfer split into a shipment (in the sender's program, cost = transfer cost - mu)
    and a receipt (in the receiver's, cost = mu), mu = the LP's value of a unit at the receiver on
    arrival (minus the dual of its balance row): the product's program falls apart into one MIP
    per store; the sum of their dual bounds is a lower bound (at these prices, at least the LP's).
    None if the time ran out before every store was solved."""
    n_days = model.n_days
    rcv_row = model.ship_rcv * n_days + np.minimum(_arrival_day(model), n_days - 1)
    mu = -pi[rcv_row]
    x_cost = model.c[model.ship_var]
    a_eq = model.a_eq.tocsc()
    a_ub = model.a_ub.tocsr()
    total = 0.0
    for k in range(int(model.var_owner.max()) + 1):
        if time.perf_counter() >= deadline:
            return None
        own = np.flatnonzero(model.var_owner == k)
        out_s, in_s = np.flatnonzero(model.ship_snd == k), np.flatnonzero(model.ship_rcv == k)
        cols = np.concatenate([own, model.ship_var[out_s], model.ship_var[in_s]])
        cost = np.concatenate([model.c[own], x_cost[out_s] - mu[out_s], mu[in_s]])
        eq_rows = np.arange(k * n_days, (k + 1) * n_days)
        sub_eq = a_eq[:, cols].tocsr()[eq_rows]
        ub_rows = np.flatnonzero(model.ub_owner == k)
        sub_ub = a_ub[ub_rows][:, cols]
        constraints = [optimize.LinearConstraint(sub_eq, model.b_eq[eq_rows], model.b_eq[eq_rows])]
        if len(ub_rows):
            constraints.append(optimize.LinearConstraint(sub_ub, -np.inf, model.b_ub[ub_rows]))
        integrality = model.integrality[cols].copy()
        integrality[len(own):] = 0  # shipments and receipts: continuous (a relaxation)
        res = optimize.milp(cost, integrality=integrality,
                            bounds=optimize.Bounds(model.lower[cols], model.upper[cols]), constraints=constraints,
                            options={"time_limit": max(deadline - time.perf_counter(), 0.1), "disp": False})
        dual = getattr(res, "mip_dual_bound", None)
        if res.status == 0:
            count("STORE_MIP_OPTIMAL")
            total += min(float(res.fun), float(dual)) if dual is not None and np.isfinite(dual) else float(res.fun)
        elif res.status == 1 and dual is not None and np.isfinite(dual):
            count("STORE_MIP_TIME_LIMIT")
            total += float(dual)
        elif res.status in (2, 3):
            raise HindsightError(f"hindsight store MIP {'infeasible' if res.status == 2 else 'unbounded'}: "
                                 f"{res.message} (a model bug)")
        else:
            count("STORE_MIP_NO_BOUND")
            return None
    return total


def _arrival_day(model: _Model) -> np.ndarray:
    """Arrival day of each transfer slot, read off its column (the receiver's balance row)."""
    col = model.a_eq.tocsc()[:, model.ship_var]
    out = np.zeros(len(model.ship_var), dtype=np.int64)
    for a in range(len(model.ship_var)):
        rows = col.indices[col.indptr[a]:col.indptr[a + 1]]
        vals = col.data[col.indptr[a]:col.indptr[a + 1]]
        neg = rows[vals < 0]
        out[a] = neg[0] % model.n_days if len(neg) else 0
    return out


def clairvoyant_orders(problem: HindsightProblem) -> tuple[np.ndarray, np.ndarray]:
    """A clairvoyant weekly order-up-to plan, no transfers: on each re-planning day r every
    orderable position orders the whole cases that cover its known demand from the arrival
    (r + lead) until the next order could arrive, less the stock it will have then, within what
    the shelf holds on that morning. Returns (orders (n, R) in units, stock on each arrival
    morning)."""
    n, n_days = problem.demand.shape
    reps = np.asarray(problem.replan_days, dtype=np.int64)
    orders = np.zeros((n, len(reps)), dtype=np.int64)
    lead = problem.lead.astype(np.int64)
    pack = problem.pack.astype(np.int64)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(problem.demand, axis=1)], axis=1)
    rows = np.arange(n)
    for ri, r in enumerate(reps):
        arrive = r + lead
        nxt = (reps[ri + 1] if ri + 1 < len(reps) else n_days) + lead
        ok = problem.orderable & (arrive < n_days)
        stock = _stock_before(problem, orders, arrive)
        want = cum[rows, np.minimum(nxt, n_days)] - cum[rows, np.minimum(arrive, n_days)] - stock
        cases = np.ceil(np.maximum(want, 0) / pack)
        room = np.where(np.isfinite(problem.shelf), problem.shelf - stock, np.inf)
        cases = np.minimum(cases, np.floor(np.maximum(room, 0) / pack))
        orders[:, ri] = np.where(ok, cases, 0).astype(np.int64) * pack
    return orders, _stock_before(problem, orders, np.full(n, n_days))


def _stock_before(problem: HindsightProblem, orders: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Each position's stock on the morning of its `day`, after that morning's arrivals of what
    was on order and of earlier orders (simulated with the known demand, no transfers)."""
    stock, _, _ = _run(problem, orders, stop=day)
    return stock


def evaluate_orders(problem: HindsightProblem, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total cost, lost units) per position of an orders-only plan, with the replay's rules."""
    _, cost, lost = _run(problem, orders, stop=None)
    return cost, lost


def _run(problem: HindsightProblem, orders: np.ndarray, stop: np.ndarray | None):
    n, n_days = problem.demand.shape
    reps = np.asarray(problem.replan_days, dtype=np.int64)
    lead = problem.lead.astype(np.int64)
    pack = problem.pack.astype(np.int64)
    shelf = problem.shelf
    cases_in = np.zeros((n, n_days + int(lead.max()) + 1), dtype=np.int64)
    for ri, r in enumerate(reps):
        np.add.at(cases_in, (np.arange(n), r + lead), orders[:, ri] // pack)
    stock = problem.on_hand.astype(np.float64).copy()
    at_stop = np.full(n, np.nan)
    cost = np.zeros(n)
    lost_units = np.zeros(n)
    lines = (orders > 0).sum(axis=1)
    for t in range(n_days):
        room = np.where(np.isfinite(shelf), np.maximum(shelf - stock, 0), np.inf)
        stock += np.minimum(problem.arrivals[:, t], room)
        room = np.where(np.isfinite(shelf), np.maximum(shelf - stock, 0), np.inf)
        stock += np.minimum(cases_in[:, t], np.floor(room / pack)) * pack
        if stop is not None:
            hit = stop == t
            at_stop[hit] = stock[hit]
        sold = np.minimum(stock, problem.demand[:, t])
        lost = problem.demand[:, t] - sold
        stock -= sold
        lost_units += lost
        cost += stock * problem.holding + lost * problem.margin
    if stop is not None:
        at_stop = np.where(np.isnan(at_stop), stock, at_stop)
    return at_stop, cost + lines * problem.order_cost, lost_units


@dataclass
class _Model:
    c: np.ndarray
    integrality: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    a_eq: sparse.csr_matrix
    b_eq: np.ndarray
    a_ub: sparse.csr_matrix
    b_ub: np.ndarray
    order_var: np.ndarray  # variable index of each order slot (cases)
    order_pos: np.ndarray  # its local position
    order_rep: np.ndarray  # its re-planning index
    ship_var: np.ndarray  # variable index of each transfer slot (units shipped)
    ship_pair: np.ndarray  # its local pair index
    ship_rep: np.ndarray
    var_owner: np.ndarray  # local position of each variable (-1: transfer variables)
    ub_owner: np.ndarray  # local position of each inequality row (-1: transfer rows)
    ship_snd: np.ndarray  # local sender and receiver of each transfer slot
    ship_rcv: np.ndarray
    n_days: int


def _product_model(problem: HindsightProblem, rows: np.ndarray, pairs: np.ndarray,
                   with_minimum: bool = True) -> _Model:
    """Variables, per position k and day t: I (end-of-day stock), L (lost units), F (accepted
    units of what was already on order); per order slot (k, re-plan r, arrival r + lead < T):
    C (whole cases accepted) and Y (the line is ordered); per transfer slot (pair, r, arrival
    r + transfer_lead < T): X (units moved) and Z (used, if a minimum quantity applies). Rows:
    stock balance per (k, t), shelf room on DC arrival mornings, C <= M Y, min Z <= X <= M Z."""
    m = len(rows)
    d = problem.demand[rows].astype(np.float64)
    n_days = d.shape[1]
    reps = np.asarray(problem.replan_days, dtype=np.int64)
    local = {int(r): i for i, r in enumerate(rows)}
    shelf = problem.shelf[rows].astype(np.float64)
    fixed = problem.arrivals[rows].astype(np.float64)
    pack = problem.pack[rows].astype(np.float64)
    opening = problem.on_hand[rows].astype(np.float64)
    # Bounds that never cut an optimal plan: no shelf takes more than it holds, and nobody
    # profits from stock beyond the product's whole demand in the window.
    total = float(d.sum() + opening.sum() + fixed.sum()) + 1.0
    room = np.where(np.isfinite(shelf), shelf, total)

    # Order slots.
    ok = problem.orderable[rows]
    lead = problem.lead[rows].astype(np.int64)
    slot_k, slot_r = np.nonzero(ok[:, None] & (reps[None, :] + lead[:, None] < n_days))
    slot_day = reps[slot_r] + lead[slot_k]
    # Transfer slots.
    tau = int(problem.transfer_lead)
    snd = np.array([local[int(i)] for i in problem.pair_from[pairs]], dtype=np.int64)
    rcv = np.array([local[int(j)] for j in problem.pair_to[pairs]], dtype=np.int64)
    pr, rr = np.nonzero(np.ones((len(pairs), len(reps)), dtype=bool) & (reps[None, :] + tau < n_days))
    ship_day, arrive_day = reps[rr], reps[rr] + tau
    n_ship = len(pr)
    use_min = with_minimum and problem.min_transfer_units > 1 and n_ship > 0
    fk, ft = np.nonzero(fixed > 0)

    n_i = m * n_days
    off_i, off_l = 0, n_i
    off_f = 2 * n_i
    off_c = off_f + len(fk)
    off_y = off_c + len(slot_k)
    off_x = off_y + len(slot_k)
    off_z = off_x + n_ship
    n_var = off_z + (n_ship if use_min else 0)

    c = np.zeros(n_var)
    c[off_i:off_l] = np.repeat(problem.holding[rows].astype(np.float64), n_days)
    c[off_l:off_f] = np.repeat(problem.margin[rows].astype(np.float64), n_days)
    c[off_y:off_x] = problem.order_cost
    c[off_x:off_z] = problem.pair_cost[pairs][pr]
    lower = np.zeros(n_var)
    upper = np.full(n_var, np.inf)
    upper[off_l:off_f] = d.ravel()
    upper[off_f:off_c] = fixed[fk, ft]
    # Units that arrive on day a are of use only for the demand from day a on: an optimal plan
    # never orders or ships more than that (tight big-M values keep the programs small).
    rest = np.concatenate([np.cumsum(d[:, ::-1], axis=1)[:, ::-1], np.zeros((m, 1))], axis=1)  # demand from day t on
    upper[off_c:off_y] = np.minimum(np.floor(room[slot_k] / pack[slot_k]), np.ceil(rest[slot_k, slot_day] / pack[slot_k]))
    upper[off_y:off_x] = 1.0
    ship_cap = np.minimum(room[snd], total)[pr]
    # Shipping a receiver more than its demand from the arrival on only moves a surplus, which
    # saves at most the days in transit of holding: never worth a transfer that costs more.
    hold = problem.holding[rows].astype(np.float64)
    safe = problem.pair_cost[pairs][pr] >= tau * hold[snd[pr]]
    need = np.maximum(rest[rcv[pr], np.minimum(arrive_day, n_days)], problem.min_transfer_units)
    ship_cap = np.where(safe, np.minimum(ship_cap, need), ship_cap)
    upper[off_x:off_z] = ship_cap
    if use_min:
        upper[off_z:] = 1.0
    integrality = np.zeros(n_var, dtype=np.int64)
    integrality[off_f:off_x] = 1
    integrality[off_x:off_z] = 1
    if use_min:
        integrality[off_z:] = 1

    def i_var(k, t):
        return off_i + k * n_days + t

    # Stock balance: I[t] - I[t-1] - L[t] - F[t] - pack C - X_in + X_out = -d[t] (+ opening on day 0).
    er, ec, ev = [], [], []
    kk, tt = np.divmod(np.arange(n_i), n_days)
    eq_row = np.arange(n_i)
    er += [eq_row, eq_row[tt > 0], eq_row]
    ec += [i_var(kk, tt), i_var(kk[tt > 0], tt[tt > 0] - 1), off_l + np.arange(n_i)]
    ev += [np.ones(n_i), -np.ones(int((tt > 0).sum())), -np.ones(n_i)]
    er.append(fk * n_days + ft)
    ec.append(off_f + np.arange(len(fk)))
    ev.append(-np.ones(len(fk)))
    er.append(slot_k * n_days + slot_day)
    ec.append(off_c + np.arange(len(slot_k)))
    ev.append(-pack[slot_k])
    er.append(rcv[pr] * n_days + arrive_day)
    ec.append(off_x + np.arange(n_ship))
    ev.append(-np.ones(n_ship))
    er.append(snd[pr] * n_days + ship_day)
    ec.append(off_x + np.arange(n_ship))
    ev.append(np.ones(n_ship))
    a_eq = sparse.csr_matrix((np.concatenate(ev), (np.concatenate(er), np.concatenate(ec))), shape=(n_i, n_var))
    b_eq = -d.ravel()
    b_eq[np.arange(m) * n_days] += opening

    # Shelf on arrival mornings: I[t-1] (opening on day 0) + F + pack C <= shelf (transfers are
    # put away after the DC delivery, planned against their own room, and never refused).
    arr_k = np.concatenate([fk, slot_k])
    arr_t = np.concatenate([ft, slot_day])
    key = np.unique(arr_k * n_days + arr_t)
    key = key[np.isfinite(shelf[key // n_days])]
    s_k, s_t = np.divmod(key, n_days)
    n_shelf = len(key)
    where = {int(v): i for i, v in enumerate(key)}

    def shelf_row(k, t):
        return np.array([where.get(int(a), -1) for a in k * n_days + t], dtype=np.int64)

    ur, uc, uv = [], [], []
    prev = s_t > 0
    ur.append(np.flatnonzero(prev))
    uc.append(i_var(s_k[prev], s_t[prev] - 1))
    uv.append(np.ones(int(prev.sum())))
    for rows_, cols_, vals_ in ((shelf_row(fk, ft), off_f + np.arange(len(fk)), np.ones(len(fk))),
                                (shelf_row(slot_k, slot_day), off_c + np.arange(len(slot_k)), pack[slot_k])):
        keep = rows_ >= 0
        ur.append(rows_[keep])
        uc.append(cols_[keep])
        uv.append(vals_[keep])
    b_ub = [shelf[s_k] - np.where(prev, 0.0, opening[s_k])]
    n_ub = n_shelf
    # C <= M Y.
    n_c = len(slot_k)
    ur += [n_ub + np.arange(n_c), n_ub + np.arange(n_c)]
    uc += [off_c + np.arange(n_c), off_y + np.arange(n_c)]
    uv += [np.ones(n_c), -upper[off_c:off_y]]
    b_ub.append(np.zeros(n_c))
    n_ub += n_c
    if use_min:  # min Z <= X <= M Z
        ur += [n_ub + np.arange(n_ship), n_ub + np.arange(n_ship)]
        uc += [off_x + np.arange(n_ship), off_z + np.arange(n_ship)]
        uv += [-np.ones(n_ship), np.full(n_ship, float(problem.min_transfer_units))]
        b_ub.append(np.zeros(n_ship))
        n_ub += n_ship
        ur += [n_ub + np.arange(n_ship), n_ub + np.arange(n_ship)]
        uc += [off_x + np.arange(n_ship), off_z + np.arange(n_ship)]
        uv += [np.ones(n_ship), -ship_cap]
        b_ub.append(np.zeros(n_ship))
        n_ub += n_ship
    a_ub = sparse.csr_matrix((np.concatenate(uv), (np.concatenate(ur), np.concatenate(uc))), shape=(n_ub, n_var))

    var_owner = np.full(n_var, -1, dtype=np.int64)
    var_owner[off_i:off_f] = np.tile(np.repeat(np.arange(m), n_days), 2)
    var_owner[off_f:off_c] = fk
    var_owner[off_c:off_y] = slot_k
    var_owner[off_y:off_x] = slot_k
    ub_owner = np.concatenate([s_k, slot_k, np.full(n_ub - n_shelf - n_c, -1)]).astype(np.int64)
    return _Model(c=c, integrality=integrality, lower=lower, upper=upper, a_eq=a_eq, b_eq=b_eq,
                  a_ub=a_ub, b_ub=np.concatenate(b_ub),
                  order_var=off_c + np.arange(n_c), order_pos=slot_k, order_rep=slot_r,
                  ship_var=off_x + np.arange(n_ship), ship_pair=pr, ship_rep=rr, var_owner=var_owner,
                  ub_owner=ub_owner, ship_snd=snd[pr], ship_rcv=rcv[pr], n_days=n_days)


def _solve(model: _Model, time_limit_s: float) -> tuple[str, np.ndarray | None, float, float]:
    """(status, solution or None, its cost, lower bound) of one product's MIP."""
    constraints = [optimize.LinearConstraint(model.a_eq, model.b_eq, model.b_eq)]
    if model.a_ub.shape[0]:
        constraints.append(optimize.LinearConstraint(model.a_ub, -np.inf, model.b_ub))
    res = optimize.milp(model.c, integrality=model.integrality, bounds=optimize.Bounds(model.lower, model.upper),
                        constraints=constraints, options={"time_limit": float(time_limit_s), "disp": False})
    dual = getattr(res, "mip_dual_bound", None)
    if res.status == 0:
        bound = float(dual) if dual is not None and np.isfinite(dual) else float(res.fun)
        return "OPTIMAL", np.asarray(res.x), float(res.fun), min(bound, float(res.fun))
    if res.status == 1:  # time (or iteration) limit
        bound = float(dual) if dual is not None and np.isfinite(dual) else 0.0
        if res.x is not None:
            return "TIME_LIMIT", np.asarray(res.x), float(res.fun), min(max(bound, 0.0), float(res.fun))
        return "TIME_LIMIT_NO_PLAN", None, float("nan"), max(bound, 0.0)
    names = {2: "INFEASIBLE", 3: "UNBOUNDED"}
    raise HindsightError(f"hindsight MIP status {names.get(res.status, res.status)}: {res.message} "
                         f"(ordering and moving nothing is feasible and costs are non-negative: a model bug)")
