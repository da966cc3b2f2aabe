"""The hindsight bound: optimal on cases small enough to enumerate, a true bound in the replay."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from retailopt.config import Settings
from retailopt.hindsight import (HindsightError, HindsightProblem, _Model, _solve, clairvoyant_orders,
                                 evaluate_orders, solve_hindsight)


def one_product(demand, on_hand, *, shelf, pack=4, lead=2, reps=(0, 4, 8), pairs=(), pair_cost=0.5,
                min_units=1, order_cost=4.0, holding=0.05, margin=3.0):
    demand = np.asarray(demand, dtype=float)
    n, days = demand.shape
    pf = np.array([a for a, _ in pairs], dtype=np.int64)
    pt = np.array([b for _, b in pairs], dtype=np.int64)
    return HindsightProblem(
        demand=demand, on_hand=np.asarray(on_hand, dtype=np.int64), arrivals=np.zeros((n, days)),
        lead=np.full(n, lead), shelf=np.asarray(shelf, dtype=float), pack=np.full(n, float(pack)),
        holding=np.full(n, holding), margin=np.full(n, margin), orderable=np.ones(n, dtype=bool),
        product=np.zeros(n, dtype=np.int64), replan_days=np.asarray(reps), order_cost=order_cost,
        pair_from=pf, pair_to=pt, pair_cost=np.full(len(pf), pair_cost), transfer_lead=1,
        min_transfer_units=min_units)


@pytest.mark.parametrize("seed", range(4))
def test_single_store_optimum_equals_enumeration(seed):
    # Three order days, up to 5 cases each: every plan is tried with the replay's rules
    # (evaluate_orders); the solver's plan costs the least and its bound proves it.
    rng = np.random.default_rng(seed)
    demand = rng.poisson(rng.uniform(1.0, 4.0), (1, 12))
    problem = one_product(demand, [int(rng.integers(0, 8))], shelf=[float(rng.integers(8, 24))])
    best = np.inf
    for cases in itertools.product(range(6), repeat=3):
        orders = (np.array(cases) * 4)[None, :]
        best = min(best, float(evaluate_orders(problem, orders)[0][0]))
    plan = solve_hindsight(problem, time_limit_s=20)
    assert plan.objective == pytest.approx(best, abs=1e-6)
    assert float(evaluate_orders(problem, plan.orders)[0][0]) == pytest.approx(best, abs=1e-6)
    assert best - 1e-3 * max(best, 1.0) <= plan.bound <= best + 1e-9
    # The clairvoyant plan alone is feasible and never below the optimum.
    clairvoyant, _ = clairvoyant_orders(problem)
    assert float(evaluate_orders(problem, clairvoyant)[0][0]) >= best - 1e-9


def test_a_store_out_of_stock_is_served_by_a_transfer_before_the_dc_can():
    # Store 1 is empty and sells 5 a day; the DC needs 3 days, store 0 sits on 60 units it will
    # not sell: moving them on day 0 (arriving day 1) saves two days of lost sales, worth far more
    # than the transfer.
    demand = np.array([[0] * 12, [5] * 12])
    problem = one_product(demand, [60, 0], shelf=[100, 100], lead=3, pairs=[(0, 1), (1, 0)], min_units=3)
    plan = solve_hindsight(problem, time_limit_s=20)
    assert plan.transfers[0, 0] >= 3 and plan.transfers[1].sum() == 0
    assert (plan.transfers[plan.transfers > 0] >= 3).all()
    assert plan.bound <= plan.objective + 1e-9
    assert plan.bound >= plan.objective - 1e-3 * plan.objective
    # Without the transfer the same demand costs more: what the transfer is worth.
    alone = one_product(demand, [60, 0], shelf=[100, 100], lead=3)
    assert solve_hindsight(alone, time_limit_s=20).objective > plan.objective + 5.0


def test_the_shelf_on_the_delivery_day_limits_the_bound_too():
    # A 6-unit shelf, cases of 8: no case ever fits, the bound loses every unit not on the shelf.
    demand = np.array([[2] * 12])
    problem = one_product(demand, [6], shelf=[6.0], pack=8)
    plan = solve_hindsight(problem, time_limit_s=20)
    assert plan.orders.sum() == 0
    assert plan.objective == pytest.approx((2 * 12 - 6) * 3.0 + _holding(6, [2] * 12), abs=1e-6)
    assert plan.bound == pytest.approx(plan.objective, abs=1e-6)


def _holding(stock, demand, rate=0.05):
    total = 0.0
    for d in demand:
        stock = max(stock - d, 0)
        total += stock * rate
    return total


def test_an_impossible_answer_is_an_error_not_a_result():
    from scipy import sparse

    # x = -1 with x >= 0: cannot happen for the hindsight model, must not pass silently.
    model = _Model(c=np.array([1.0]), integrality=np.array([1]), lower=np.zeros(1), upper=np.full(1, 5.0),
                   a_eq=sparse.csr_matrix(np.array([[1.0]])), b_eq=np.array([-1.0]),
                   a_ub=sparse.csr_matrix((0, 1)), b_ub=np.zeros(0),
                   order_var=np.zeros(0, dtype=np.int64), order_pos=np.zeros(0, dtype=np.int64),
                   order_rep=np.zeros(0, dtype=np.int64), ship_var=np.zeros(0, dtype=np.int64),
                   ship_pair=np.zeros(0, dtype=np.int64), ship_rep=np.zeros(0, dtype=np.int64),
                   var_owner=np.zeros(1, dtype=np.int64), ub_owner=np.zeros(0, dtype=np.int64),
                   ship_snd=np.zeros(0, dtype=np.int64), ship_rcv=np.zeros(0, dtype=np.int64), n_days=1)
    with pytest.raises(HindsightError, match="INFEASIBLE"):
        _solve(model, 5.0)


def test_in_the_replay_the_bound_is_below_every_strategy():
    from test_replay import QUIET, tiny_chain

    from retailopt.replay import run_replay

    res = run_replay(tiny_chain(), settings=Settings(), weeks=3, forecaster="empirical", **QUIET).set_index("strategy")
    bound = res.at["hindsight", "cost_lower_bound"]
    assert np.isfinite(bound) and res["cost_lower_bound"].drop("hindsight").isna().all()
    others = res.drop("hindsight")
    assert (others["total_cost"] >= bound - 1e-6).all()
    # The hindsight plan is a plan: never worse than any strategy, never below its bound.
    assert (others["total_cost"] >= res.at["hindsight", "total_cost"] - 1e-6).all()
    assert res.at["hindsight", "total_cost"] >= bound - 1e-6
    assert res.at["hindsight", "lost_units"] <= res.at["policy_rebalance", "lost_units"]
    assert res.at["hindsight", "forecaster"] == "actual_demand"
