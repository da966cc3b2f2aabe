"""Inventory policy: levels meet their targets exactly, statuses, EOQ, and bad input."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retailopt.config import Settings
from retailopt.demand_model import WindowDemand
from retailopt.policy import POLICY_COLUMNS, abc_classes, compute_policy, exception_codes

RUN = date(2026, 3, 2)
# Every ABC class planned for a cycle service level of exactly service_level.
UNIFORM = {"fill_rate_classes": "", "class_a_stockout_share": 1.0}
QCOLS = ["q50", "q80", "q90", "q95", "q99"]


def frames(rows: list[dict], window: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """inventory, products, protection from compact row specs (one product per row)."""
    inv, prods, prot = [], [], []
    for i, r in enumerate(rows):
        sid, pid = r.get("store", "S1"), r.get("product", f"P{i}")
        inv.append({"store_id": sid, "product_id": pid, "on_hand": r.get("on_hand", 0),
                    "on_order": r.get("on_order", 0), "max_capacity": r.get("cap", 1000)})
        prods.append({"product_id": pid, "name": pid, "category": r.get("category", "food"),
                      "unit_cost": r.get("unit_cost", 4.0), "price": r.get("price", 10.0),
                      "case_pack": r.get("case_pack", 6)})
        mean = r["mean"]
        std = r.get("std", np.sqrt(mean))
        q = r.get("q")
        if q is None:  # gamma quantiles for the fast movers
            k, th = (mean / std) ** 2, std ** 2 / mean
            q = stats.gamma.ppf([0.5, 0.8, 0.9, 0.95, 0.99], k, scale=th)
        prot.append({"store_id": sid, "product_id": pid, "window_days": window, "demand_mean": mean,
                     "demand_std": std, **dict(zip(QCOLS, q)), "model": "test"})
    products = pd.DataFrame(prods).drop_duplicates("product_id")
    return pd.DataFrame(inv), products, pd.DataFrame(prot)


def run(rows, settings=None, lead=3, window=10):
    inv, prods, prot = frames(rows, window)
    return compute_policy(inv, prods, prot, None, run_date=RUN, lead_time_days=lead,
                          settings=settings or Settings(service_level=0.95, **UNIFORM))


def test_slow_mover_level_is_smallest_poisson_integer_meeting_csl():
    means = [0.4, 1.3, 2.7, 5.0, 8.2]  # window means; daily < 1 so all discrete
    policy, exc = run([{"mean": m, "on_hand": 3} for m in means],
                      Settings(service_level=0.93, **UNIFORM))
    assert exc.empty
    assert list(policy.columns) == POLICY_COLUMNS
    for m, s in zip(means, policy["reorder_point"]):
        assert stats.poisson.cdf(s, m) >= 0.93
        assert s == 0 or stats.poisson.cdf(s - 1, m) < 0.93


def test_slow_mover_overdispersed_uses_negative_binomial():
    mean, std = 4.0, 3.5
    policy, _ = run([{"mean": mean, "std": std}], Settings(service_level=0.95, **UNIFORM))
    n = mean ** 2 / (std ** 2 - mean)
    dist = stats.nbinom(n, n / (n + mean))
    s = policy["reorder_point"].iat[0]
    assert dist.cdf(s) >= 0.95 > dist.cdf(s - 1)
    assert s > stats.poisson.ppf(0.95, mean)  # the extra variance costs stock


def test_fill_rate_target_is_smallest_integer_meeting_it():
    mean, fr = 6.0, 0.95
    policy, _ = run([{"mean": mean}], Settings(fill_rate_by_class={"A": fr}, **UNIFORM))
    s = int(policy["reorder_point"].iat[0])
    review_demand = mean * 7 / 10
    k = np.arange(200)
    pmf = stats.poisson.pmf(k, mean)

    def loss(x):
        return float((np.maximum(k - x, 0) * pmf).sum())

    assert loss(s) <= (1 - fr) * review_demand < loss(s - 1)
    assert policy["service_level"].iat[0] == fr


@pytest.mark.parametrize("level,expected", [(0.9, "q90"), (0.95, "q95"), (0.8, "q80")])
def test_fast_mover_level_comes_from_the_window_quantiles(level, expected):
    # A skewed window distribution: the level is the forecast's own quantile, not mean + z*sigma.
    q = [100.0, 130.0, 160.0, 210.0, 400.0]
    policy, _ = run([{"mean": 120.0, "std": 60.0, "q": q}],
                    Settings(service_level=level, **UNIFORM))
    assert policy["reorder_point"].iat[0] == np.ceil(dict(zip(QCOLS, q))[expected])
    assert policy["safety_stock"].iat[0] == pytest.approx(policy["reorder_point"].iat[0] - 120.0)


def test_fast_mover_level_between_knots_interpolates():
    q = [100.0, 130.0, 160.0, 210.0, 400.0]
    policy, _ = run([{"mean": 120.0, "std": 60.0, "q": q}],
                    Settings(service_level=0.97, **UNIFORM))
    assert policy["reorder_point"].iat[0] == 305.0  # 210 + (400 - 210) * 0.02 / 0.04


def test_order_up_to_adds_whole_review_periods_chosen_by_the_eoq_cost():
    """S - s = (k - 1) review periods of demand, k the number of reviews between orders that
    costs least per day (order cost / (k R) + holding x k x review demand / 2): the reorder point
    already holds one review period's demand, so the EOQ is not added on top of it."""
    s = Settings(order_cost_per_line=5.0, holding_cost_rate=0.2, **UNIFORM)
    daily, review = 50.0 / 10, 7
    policy, _ = run([{"mean": 50.0, "std": 10.0, "unit_cost": 3.0}], s)
    h_day = 0.2 * 3.0 / 365
    k = np.arange(1, 50)
    cost = 5.0 / (k * review) + h_day * k * daily * review / 2
    best = k[np.argmin(cost)]
    row = policy.iloc[0]
    assert best == 5  # EOQ = 174 units against 35 a review period
    assert row["order_up_to"] - row["reorder_point"] == (best - 1) * daily * review
    assert row["mean_daily_demand"] == pytest.approx(daily)
    # Dear to hold or cheap to order: an order at every review, nothing above the reorder point.
    policy, _ = run([{"mean": 50.0, "std": 10.0, "unit_cost": 300.0}], s)
    assert policy["order_up_to"].iat[0] == policy["reorder_point"].iat[0]
    policy, _ = run([{"mean": 50.0, "std": 10.0, "unit_cost": 3.0}], s.replace(order_cost_per_line=0.0))
    assert policy["order_up_to"].iat[0] == policy["reorder_point"].iat[0]


def test_status_cover_and_expected_lost_units():
    rows = [{"mean": 5.0, "on_hand": 0, "product": "LOW"},
            {"mean": 5.0, "on_hand": 9, "product": "MID"},
            {"mean": 5.0, "on_hand": 400, "product": "HIGH"}]
    policy, _ = run(rows)
    by = policy.set_index("product_id")
    assert by.loc["LOW", "status"] == "STOCKOUT_RISK"
    assert by.loc["MID", "status"] == "OK"
    assert by.loc["HIGH", "status"] == "OVERSTOCK"
    assert by.loc["HIGH", "days_of_cover"] == pytest.approx(400 / 0.5)
    k = np.arange(100)
    pmf = stats.poisson.pmf(k, 5.0)
    for pid, x in (("LOW", 0), ("MID", 9), ("HIGH", 400)):
        assert by.loc[pid, "expected_lost_units"] == pytest.approx((np.maximum(k - x, 0) * pmf).sum(), abs=1e-9)


def test_continuous_loss_matches_simulation_of_the_same_quantiles():
    mean, std = 60.0, 20.0
    k, th = (mean / std) ** 2, std ** 2 / mean
    q = stats.gamma.ppf([0.5, 0.8, 0.9, 0.95, 0.99], k, scale=th)
    wd = WindowDemand.from_forecast(np.array([mean]), np.array([std]), q[None], np.array([False]))
    assert wd.loss(np.array([0.0]))[0] == pytest.approx(mean, rel=1e-6)
    sim = stats.gamma.rvs(k, scale=th, size=200_000, random_state=3)
    for x in (40.0, 60.0, 80.0):
        assert wd.loss(np.array([x]))[0] == pytest.approx(np.maximum(sim - x, 0).mean(), abs=0.6)


def test_abc_classes_split_revenue():
    rev = pd.Series({"a": 700.0, "b": 150.0, "c": 100.0, "d": 50.0})
    assert abc_classes(rev).to_dict() == {"a": "A", "b": "A", "c": "B", "d": "C"}


def test_bad_input_gets_a_reason_and_never_crashes():
    inv, prods, prot = frames([
        {"store": "S1", "product": "NEG", "mean": 5.0, "on_hand": -4},
        {"store": "S1", "product": "FULL", "mean": 5.0, "on_hand": 50, "cap": 10},
        {"store": "S1", "product": "NOCOST", "mean": 5.0, "on_hand": 1},
        {"store": "S2", "product": "OKP", "mean": 5.0, "on_hand": 1},
        {"store": "S1", "product": "NOFC", "mean": 5.0, "on_hand": 7},
    ])
    prods.loc[prods["product_id"] == "NOCOST", "unit_cost"] = np.nan
    prot = prot[prot["product_id"] != "NOFC"]
    inv = pd.concat([inv, pd.DataFrame([{"store_id": "S1", "product_id": "GHOST", "on_hand": 2, "on_order": 0,
                                         "max_capacity": 5}])])
    policy, exc = compute_policy(inv, prods, prot, None, run_date=RUN, lead_time_days={"S1": 0},
                                 settings=Settings())
    assert len(policy) == 6  # nothing skipped
    codes = {r.product_id + "@" + r.store_id: exception_codes(r.exception) for r in policy.itertuples()}
    assert "NEGATIVE_STOCK" in codes["NEG@S1"]
    assert "CAPACITY_BELOW_STOCK" in codes["FULL@S1"]
    assert "MISSING_COST" in codes["NOCOST@S1"]
    assert "NO_FORECAST" in codes["NOFC@S1"]
    assert "UNKNOWN_PRODUCT" in codes["GHOST@S1"]
    assert "LEAD_TIME_MISSING" in codes["OKP@S2"]  # no lead time for S2 at all
    assert all("LEAD_TIME_MISSING" in c for k, c in codes.items() if k.endswith("@S1"))  # zero
    # One exceptions row per reason, with what the plan does about it.
    assert sum(len(c) for c in codes.values()) == len(exc)
    assert exc["action"].notna().all() and exc["reason"].str.len().gt(0).all()
    neg = policy.set_index("product_id").loc["NEG"]
    assert neg["on_hand"] == 0 and neg["status"] == "STOCKOUT_RISK"
    nofc = policy.set_index("product_id").loc["NOFC"]
    assert nofc["order_up_to"] == 7 and nofc["expected_lost_units"] == 0
    assert (policy["lead_time_days"] >= 1).all()


def test_shelf_smaller_than_target_caps_levels_and_says_so():
    # 4 units a day over a 3-day lead time: an order placed now finds 12 fewer units on the shelf
    # when it arrives, so an inventory position of 20 + 12 fits the 20-unit shelf on that day.
    policy, exc = run([{"mean": 40.0, "std": 8.0, "on_hand": 5, "cap": 20}])
    row = policy.iloc[0]
    assert row["reorder_point"] == 32 and row["order_up_to"] == 32
    assert exception_codes(row["exception"]) == {"CAPACITY_BELOW_TARGET"}
    assert exc["reason_code"].tolist() == ["CAPACITY_BELOW_TARGET"]
    assert "12 units of expected demand over the 3-day lead time" in exc["reason"].iat[0]
    # A shelf that holds the target on the delivery day is no exception.
    policy, exc = run([{"mean": 40.0, "std": 8.0, "on_hand": 5, "cap": 45}])
    assert exc.empty and policy["order_up_to"].iat[0] <= 45 + 12


def test_fast_mover_fill_rate_level_is_the_smallest_integer_meeting_it():
    q = stats.gamma.ppf([0.5, 0.8, 0.9, 0.95, 0.99], 9.0, scale=10.0)
    wd = WindowDemand.from_forecast(np.array([90.0]), np.array([30.0]), q[None], np.array([False]))
    s = wd.fill_rate_level(np.array([0.97]), np.array([60.0]))[0]
    allowed = 0.03 * 60.0
    assert wd.loss(np.array([s]))[0] <= allowed < wd.loss(np.array([s - 1]))[0]


def test_a_higher_service_level_raises_safety_stock_for_every_class():
    """`service_level` moves every class: A's derived target, B's and C's fill rate (issue 12)."""
    rng = np.random.default_rng(5)
    # Revenue shares make A, B and C classes; fast and slow movers in each.
    rows = [{"product": f"P{i:02d}", "mean": float(m), "price": float(p), "on_hand": 0}
            for i, (m, p) in enumerate(zip(rng.gamma(2.0, 20.0, 40), rng.uniform(1, 30, 40)))]
    inv, prods, prot = frames(rows)
    revenue = pd.Series({r["product"]: r["mean"] * r["price"] for r in rows})
    classes = abc_classes(revenue)
    assert set(classes) == {"A", "B", "C"}
    levels = {}
    for level in (0.95, 0.98):
        policy, _ = compute_policy(inv, prods, prot, None, run_date=RUN, lead_time_days=3,
                                   settings=Settings(service_level=level))
        levels[level] = policy.set_index("product_id")
    low, high = levels[0.95], levels[0.98]
    for cls in "ABC":
        products = classes.index[classes == cls]
        assert (high.loc[products, "service_level"] > low.loc[products, "service_level"]).all(), cls
        assert high.loc[products, "safety_stock"].sum() > low.loc[products, "safety_stock"].sum(), cls
        assert (high.loc[products, "safety_stock"] >= low.loc[products, "safety_stock"]).all(), cls
    # At 0.95 they are those of the earlier fixed table: A 0.97, B 0.95, C a 0.95 fill rate.
    fixed = Settings(service_level=0.95)
    assert fixed.class_targets("A") == ("csl", pytest.approx(0.97))
    assert fixed.class_targets("B") == ("csl", 0.95)
    assert fixed.class_targets("C") == ("fill_rate", 0.95)
    assert Settings(service_level_by_class={"B": 0.9}).class_targets("B") == ("csl", 0.9)
    # Unset (the default), costs decide every class a target is not set for.
    for cls in "ABC":
        kind, value = Settings().class_targets(cls)
        assert kind == "cost" and np.isnan(value), cls
    assert Settings(fill_rate_by_class={"C": 0.9}).class_targets("C") == ("fill_rate", 0.9)


# Issue 15 item 5: costs decide the service level where the user does not fix one ----------------

def _cost_based(rows, **settings):
    """Policy rows by product with the default (cost-based) targets."""
    policy, _ = run(rows, Settings(**settings))
    return policy.set_index("product_id")


def test_cost_based_service_level_is_the_newsvendor_critical_ratio():
    """Unset service_level: each product's target is margin / (margin + holding over a review
    period), and its reorder point the window demand's quantile at that level."""
    # Single units: a case would lower the level where it pays only as a whole (next test).
    rows = [{"product": "FAST", "mean": 80.0, "std": 15.0, "unit_cost": 20.0, "price": 21.0, "case_pack": 1},
            {"product": "SLOW", "mean": 4.0, "unit_cost": 50.0, "price": 52.0, "case_pack": 1}]
    pol = _cost_based(rows, holding_cost_rate=0.5, review_period_days=14)
    for r in rows:
        cu, co = r["price"] - r["unit_cost"], 0.5 * r["unit_cost"] * 14 / 365
        assert pol.at[r["product"], "service_level"] == pytest.approx(cu / (cu + co))
    assert 0.5 < pol.at["SLOW", "service_level"] < pol.at["FAST", "service_level"] < 0.99
    # The level is the smallest integer meeting it over the protection window (lead + review).
    inv, prods, prot = frames(rows)
    wd = WindowDemand.from_forecast(prot["demand_mean"].to_numpy(), prot["demand_std"].to_numpy(),
                                    prot[QCOLS].to_numpy(), discrete=np.array([False, True]))
    expected = wd.csl_level(pol.loc[["FAST", "SLOW"], "service_level"].to_numpy())
    assert pol.loc[["FAST", "SLOW"], "reorder_point"].tolist() == expected.tolist()
    slow = stats.poisson(4.0)
    level = pol.at["SLOW", "service_level"]
    s = pol.at["SLOW", "reorder_point"]
    assert slow.cdf(s) >= level > slow.cdf(s - 1)


def test_a_dearer_lost_sale_raises_the_service_level_and_dearer_holding_lowers_it():
    base = {"mean": 30.0, "std": 8.0, "unit_cost": 10.0}
    pol = _cost_based([{**base, "product": "THIN", "price": 10.5}, {**base, "product": "WIDE", "price": 14.0}],
                      holding_cost_rate=3.0)
    assert pol.at["WIDE", "service_level"] > pol.at["THIN", "service_level"]
    assert pol.at["WIDE", "reorder_point"] > pol.at["THIN", "reorder_point"]
    assert pol.at["WIDE", "safety_stock"] > pol.at["THIN", "safety_stock"]
    rows = [{**base, "product": "P", "price": 11.0}]
    cheap, dear = _cost_based(rows, holding_cost_rate=0.5), _cost_based(rows, holding_cost_rate=4.0)
    assert dear.at["P", "service_level"] < cheap.at["P", "service_level"]
    assert dear.at["P", "reorder_point"] < cheap.at["P", "reorder_point"]
    # A longer review period holds a leftover unit longer: a lower target too.
    weekly, monthly = _cost_based(rows, holding_cost_rate=2.0), \
        _cost_based(rows, holding_cost_rate=2.0, review_period_days=28)
    assert monthly.at["P", "service_level"] < weekly.at["P", "service_level"]


def test_cost_based_service_level_stays_within_its_bounds():
    rows = [{"product": "RICH", "mean": 30.0, "unit_cost": 1.0, "price": 20.0},  # ratio 0.9993
            {"product": "LOSS", "mean": 30.0, "unit_cost": 10.0, "price": 9.0},  # selling at a loss
            {"product": "EVEN", "mean": 30.0, "unit_cost": 10.0, "price": 10.0},
            {"product": "POOR", "mean": 30.0, "unit_cost": 10.0, "price": 10.01}]  # ratio 0.26 at rate 5
    pol = _cost_based(rows, holding_cost_rate=5.0)
    assert pol.at["RICH", "service_level"] == pytest.approx(0.99)
    for product in ("LOSS", "EVEN", "POOR"):
        assert pol.at[product, "service_level"] == pytest.approx(0.5), product
    pol = _cost_based(rows, holding_cost_rate=5.0, cost_service_level_min=0.7, cost_service_level_max=0.95)
    assert pol.at["RICH", "service_level"] == pytest.approx(0.95)
    assert pol.at["POOR", "service_level"] == pytest.approx(0.7)
    # A floor above the ceiling wins.
    pol = _cost_based(rows, holding_cost_rate=5.0, cost_service_level_min=0.9, cost_service_level_max=0.8)
    assert np.allclose(pol["service_level"], 0.9)
    # Missing costs: the floor (the position is flagged and not ordered anyway).
    inv, prods, prot = frames([{"product": "NOCOST", "mean": 30.0}])
    prods["unit_cost"] = np.nan
    policy, _ = compute_policy(inv, prods, prot, None, run_date=RUN, lead_time_days=3, settings=Settings())
    assert policy["service_level"].iat[0] == pytest.approx(0.5)
    assert "MISSING_COST" in exception_codes(policy["exception"].iat[0])


def test_a_fixed_service_level_wins_over_the_costs():
    """service_level, a class's own target and a category's override all beat the cost rule."""
    rows = [{"product": "THIN", "mean": 30.0, "unit_cost": 10.0, "price": 10.2, "category": "dairy", "case_pack": 1},
            {"product": "WIDE", "mean": 30.0, "unit_cost": 10.0, "price": 20.0, "category": "snacks", "case_pack": 1}]
    by_cost = _cost_based(rows, holding_cost_rate=3.0)
    assert by_cost.at["THIN", "service_level"] < 0.9 < by_cost.at["WIDE", "service_level"]
    fixed = _cost_based(rows, holding_cost_rate=3.0, service_level=0.9, **UNIFORM)
    assert (fixed["service_level"] == 0.9).all()
    assert fixed.at["THIN", "reorder_point"] > by_cost.at["THIN", "reorder_point"]
    assert fixed.at["WIDE", "reorder_point"] < by_cost.at["WIDE", "reorder_point"]
    by_cat = _cost_based(rows, holding_cost_rate=3.0, service_level_by_category={"snacks": 0.8})
    assert by_cat.at["WIDE", "service_level"] == 0.8
    assert by_cat.at["THIN", "service_level"] == pytest.approx(by_cost.at["THIN", "service_level"])
    classes = abc_classes(pd.Series({"THIN": 30 * 10.2, "WIDE": 30 * 20.0}))
    own = _cost_based(rows, holding_cost_rate=3.0, service_level_by_class={classes["THIN"]: 0.93})
    assert own.at["THIN", "service_level"] == 0.93


def test_where_costs_decide_a_case_of_months_of_cover_is_ordered_only_when_it_pays():
    """Reorder point = the smallest stock at which ordering a whole case now rather than a review
    later no longer pays (its extra sales' margin against a review period's holding on what is
    left of it): checked against a brute-force Poisson computation."""
    review, rate = 7, 0.25
    row = {"product": "SLOW", "mean": 0.9, "unit_cost": 5.0, "price": 8.0}  # 0.1 a day over 9 days
    single = _cost_based([{**row, "case_pack": 1}], holding_cost_rate=rate)
    big = _cost_based([{**row, "case_pack": 24}], holding_cost_rate=rate)
    d = stats.poisson(0.9)
    k = np.arange(200)

    def loss(x):
        return float((np.maximum(k - x, 0) * d.pmf(k)).sum())

    margin, hold = 3.0, rate * 5.0 * review / 365
    pays = [margin * (loss(x) - loss(x + 24)) >= hold * (24 - (loss(x) - loss(x + 24))) for x in range(10)]
    expected = pays.index(False)
    ratio = min(margin / (margin + hold), 0.99)  # the default ceiling
    newsvendor = int(d.ppf(ratio))
    assert single.at["SLOW", "reorder_point"] == newsvendor  # one unit at a time: the newsvendor level
    assert big.at["SLOW", "reorder_point"] == expected < newsvendor
    assert big.at["SLOW", "service_level"] == single.at["SLOW", "service_level"] == pytest.approx(ratio)
    # A fixed service level is the user's: the case does not lower it.
    fixed = _cost_based([{**row, "case_pack": 24}], holding_cost_rate=rate, service_level=0.97, **UNIFORM)
    assert fixed.at["SLOW", "reorder_point"] == int(d.ppf(0.97))
    # Never below the level of the lower bound of the cost-based service level.
    floor = _cost_based([{**row, "case_pack": 24}], holding_cost_rate=rate, cost_service_level_min=0.95)
    assert floor.at["SLOW", "reorder_point"] == int(d.ppf(0.95)) > expected
    # A fast mover whose case is a small share of its window demand keeps the newsvendor level.
    fast = [{"product": "FAST", "mean": 300.0, "std": 40.0, "unit_cost": 5.0, "price": 8.0}]
    assert _cost_based([{**fast[0], "case_pack": 6}], holding_cost_rate=rate).at["FAST", "reorder_point"] == \
        _cost_based([{**fast[0], "case_pack": 1}], holding_cost_rate=rate).at["FAST", "reorder_point"]


def test_case_level_with_a_single_unit_is_the_critical_ratio_quantile():
    rng = np.random.default_rng(3)
    mean = rng.uniform(0.5, 40, 30)
    wd = WindowDemand.from_forecast(mean, np.sqrt(mean * 1.5), np.zeros((30, 5)), discrete=np.ones(30, dtype=bool))
    margin, holding = rng.uniform(0.5, 5, 30), rng.uniform(0.001, 0.5, 30)
    ratio = margin / (margin + holding)
    level = wd.csl_level(ratio)
    got = wd.case_level(np.ones(30), margin, holding, lo=np.zeros(30), hi=level + 5)
    # P(D <= x) >= ratio at the level; the case rule stops where P(D > x) margin < P(D <= x) holding.
    assert np.array_equal(got, level) or np.all(np.abs(got - level) <= 1)
    cdf = 1 - wd.loss(got) + wd.loss(got + 1)  # P(D <= x) = 1 - (L(x) - L(x + 1))
    assert np.all(cdf > ratio - 1e-9)
    below = 1 - wd.loss(got - 1) + wd.loss(got)
    assert np.all((below <= ratio + 1e-9) | (got == 0))
