"""Replay simulation: stock accounting on a hand-built chain, the full run on a small sample chain."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from retailopt import schema
from retailopt.config import Settings
from retailopt.replay import RESULT_COLUMNS, Chain, load_chain, main, run_replay

QUIET = {"log": lambda *a: None}


def tiny_chain(days: int = 84) -> Chain:
    """Two stores 3 km apart, one product; store A holds a pile of stock that store B needs."""
    end = date(2026, 6, 30)
    stores = pd.DataFrame([
        {"store_id": "A", "name": "A", "latitude": 41.88, "longitude": -87.63, "region": "R", "capacity_units": 9999},
        {"store_id": "B", "name": "B", "latitude": 41.907, "longitude": -87.63, "region": "R", "capacity_units": 9999}])
    dcs = pd.DataFrame([{"dc_id": "D", "name": "D", "latitude": 41.7, "longitude": -87.9, "region": "R",
                         "lead_time_days": 3}])
    products = pd.DataFrame([{"product_id": "P", "name": "P", "category": "c", "unit_cost": 5.0, "price": 12.0,
                              "case_pack": 1}])
    rng = np.random.default_rng(7)
    rows = []
    for i in range(days):
        day = pd.Timestamp(end - timedelta(days=days - 1 - i))
        rows.append({"sale_date": day, "store_id": "A", "product_id": "P", "units": int(rng.poisson(1.0)),
                     "price": 12.0, "on_promotion": False})
        rows.append({"sale_date": day, "store_id": "B", "product_id": "P", "units": int(rng.poisson(8.0)),
                     "price": 12.0, "on_promotion": False})
    inventory = pd.DataFrame([
        {"snapshot_date": end, "store_id": "A", "product_id": "P", "on_hand": 300, "on_order": 0, "max_capacity": 400},
        {"snapshot_date": end, "store_id": "B", "product_id": "P", "on_hand": 0, "on_order": 0, "max_capacity": 400}])
    return Chain(stores=stores, dcs=dcs, products=products, inventory=inventory, sales=pd.DataFrame(rows))


def test_replay_accounts_for_every_unit_and_rebalancing_helps():
    chain = tiny_chain()
    raw = run_replay(chain, settings=Settings(), weeks=3, forecaster="empirical", **QUIET)
    assert list(raw.columns) == RESULT_COLUMNS == schema.table("replay_results").column_names
    res = raw.set_index("strategy")
    held_out = chain.sales.sort_values("sale_date").groupby("store_id").tail(21)["units"].sum()
    for _, r in res.iterrows():
        assert r["demand_units"] == held_out
        assert r["sold_units"] + r["lost_units"] == pytest.approx(r["demand_units"])
        assert r["fill_rate"] == pytest.approx(r["sold_units"] / r["demand_units"])
        assert 0 <= r["cycle_service_level"] <= 1
        assert r["total_cost"] == pytest.approx(r["operating_cost"] + r["lost_sales_cost"])
        assert r["lost_sales_cost"] == pytest.approx(r["lost_units"] * 7.0)
    assert res.loc["dc_only", "units_moved"] == 0 and res.loc["min_max", "trips"] == 0
    # B starts empty with a 3-day lead time; A's pile is one trip away.
    assert res.loc["policy_rebalance", "units_moved"] > 0
    assert res.loc["policy_rebalance", "lost_units"] < res.loc["dc_only", "lost_units"]
    assert res.loc["policy_rebalance", "total_cost"] < res.loc["dc_only", "total_cost"]


def test_replay_command_on_a_small_sample_chain_writes_json_and_table(tmp_path, monkeypatch):
    from retailopt.sample import generate_sample_chain
    from retailopt.warehouse import open_warehouse

    generate_sample_chain(tmp_path / "chain", seed=3, n_stores=4, n_products=12, days=120)
    monkeypatch.setenv("RETAILOPT_DATA_DIR", str(tmp_path / "wh"))
    out = tmp_path / "replay.json"
    assert main(["--data-dir", str(tmp_path / "chain"), "--weeks", "2", "--forecaster", "empirical",
                 "--out", str(out)]) == 0
    rows = pd.read_json(out)
    everything = ["dc_only", "hindsight", "min_max", "min_max_tuned", "policy_rebalance"]
    assert sorted(rows["strategy"]) == everything
    wh = open_warehouse(Settings(data_dir=tmp_path / "wh"))
    try:
        table = wh.query("SELECT strategy, lost_units, fill_rate, steady_total_cost, cost_lower_bound "
                         "FROM `{dataset}.replay_results` ORDER BY strategy")
    finally:
        wh.close()
    assert table["strategy"].tolist() == everything
    assert np.allclose(table["lost_units"].to_numpy(), rows.sort_values("strategy")["lost_units"].to_numpy())
    assert table["steady_total_cost"].notna().all()
    assert table.set_index("strategy")["cost_lower_bound"].notna().tolist() == [False, True, False, False, False]
    chain = load_chain(tmp_path / "chain")
    assert len(chain.inventory) == 4 * 12


def test_demo_replays_beside_the_planning_run_and_its_report_shows_the_comparison(tmp_path, capsys):
    from retailopt.cli import main as cli
    from retailopt.sample import generate_sample_chain
    from retailopt.warehouse import open_warehouse

    # The demo plans an existing sample folder as it is: a small chain keeps this test quick.
    generate_sample_chain(tmp_path / "sample", seed=5, n_stores=4, n_products=10, days=150)
    assert cli(["demo", "--data-dir", str(tmp_path), "--replay-weeks", "2", "--quiet",
                "--set", "routing_time_limit_s=1"]) == 0
    out = capsys.readouterr().out
    assert "(c) policy + rebalancing" in out and "replay_results" in out
    assert re.search(r"arriving later: [\d,]+ units of this plan are due after", out)  # DC orders' lead time
    wh = open_warehouse(Settings(data_dir=tmp_path))
    try:
        table = wh.query("SELECT strategy, lost_units, days, holding_cost, lost_sales_cost, steady_total_cost "
                         "FROM `{dataset}.replay_results` ORDER BY strategy")
        run_id = wh.query("SELECT run_id FROM `{dataset}.runs`")["run_id"].iat[0]
    finally:
        wh.close()
    assert table["strategy"].tolist() == ["dc_only", "hindsight", "min_max", "min_max_tuned", "policy_rebalance"]
    assert (table["days"] == 14).all()
    report = (tmp_path / "artifacts" / "runs" / run_id / "report.html").read_text(encoding="utf-8")
    section = report.split("Replay on held-out demand")[1]
    lost_of = table.set_index("strategy")["lost_units"]
    # Every strategy under the label the command prints, the tuned baseline and the bound too.
    from markupsafe import escape  # as the report's templates escape

    from retailopt.replay import LABELS
    for strategy, label in LABELS.items():
        label = str(escape(label))
        assert label in section, strategy
        assert f"<td>{lost_of[strategy]:,.0f}</td>" in section.split(label)[1].split("</tr>")[0]
    regret = lost_of["policy_rebalance"] - lost_of["hindsight"]
    assert f"Regret of (c) against the hindsight plan: {regret:,.0f} lost units" in section
    # ... and where it comes from, by cost component (issue 15).
    gap = table.set_index("strategy").loc["policy_rebalance"] - table.set_index("strategy").loc["hindsight"]
    assert f"holding {gap['holding_cost']:+,.0f}, lost margin {gap['lost_sales_cost']:+,.0f}" in section
    assert f"in the steady state {gap['steady_total_cost']:+,.0f} of total cost" in section


def test_a_failed_background_replay_says_why(tmp_path):
    from retailopt.replay import ReplayError, ReplayInBackground

    job = ReplayInBackground(tmp_path / "missing", Settings(), weeks=2)
    with pytest.raises(ReplayError, match="sales.parquet"):
        job.result()


def test_engine_replay_plans_the_held_out_promotions():
    """A planner knows their promotions: the held-out promotion days are the forecast's plan."""
    chain = tiny_chain(days=168)
    sales = chain.sales
    days = sales["sale_date"]
    end = days.max()
    # Store B runs a one-week promotion every four weeks at three times its usual sales,
    # including one starting two days into the three held-out weeks.
    promo_start = end - pd.Timedelta(days=20 - 2)
    offset = (days - promo_start).dt.days
    on = (sales["store_id"] == "B") & (offset % 28 < 7) & offset.between(-28 * 5, 6)
    sales.loc[on, "units"] *= 3
    sales.loc[on, "on_promotion"] = True
    assert on.sum() == 6 * 7

    def first_forecast(frame: pd.DataFrame) -> pd.DataFrame:
        forecasts: dict = {}
        run_replay(Chain(chain.stores, chain.dcs, chain.products, chain.inventory, frame), settings=Settings(),
                   weeks=3, forecaster="engine", strategies=("dc_only",), forecasts=forecasts, **QUIET)
        daily = forecasts[0][0]
        return daily[daily["store_id"] == "B"].set_index("forecast_date")["forecast_mean"]

    planned = first_forecast(sales)
    unplanned = first_forecast(sales.assign(on_promotion=False))
    promo_days = pd.date_range(promo_start, periods=7).intersection(planned.index)
    assert len(promo_days) >= 3
    assert (planned[promo_days] > 1.5 * unplanned[promo_days]).all()
    assert planned.drop(promo_days).mean() < unplanned.drop(promo_days).mean()


def test_steady_state_measures_leave_out_the_first_days():
    chain = tiny_chain()
    every = run_replay(chain, settings=Settings(), weeks=3, forecaster="empirical", warmup_days=0,
                       strategies=("dc_only", "policy_rebalance"), **QUIET).set_index("strategy")
    for name, r in every.iterrows():
        assert r["steady_lost_units"] == pytest.approx(r["lost_units"])
        assert r["steady_total_cost"] == pytest.approx(r["total_cost"])
        assert r["steady_fill_rate"] == pytest.approx(r["fill_rate"])
    later = run_replay(chain, settings=Settings(), weeks=3, forecaster="empirical", warmup_days=10,
                       strategies=("dc_only", "policy_rebalance"), **QUIET).set_index("strategy")
    held_out = chain.sales.sort_values("sale_date").groupby("store_id").tail(21)
    after = held_out[held_out["sale_date"] >= held_out["sale_date"].min() + pd.Timedelta(days=10)]["units"].sum()
    assert (later["warmup_days"] == 10).all() and (later["steady_demand_units"] == after).all()
    assert (later["steady_lost_units"] <= later["lost_units"]).all()
    assert (later["steady_total_cost"] < later["total_cost"]).all()
    # B starts empty: the first days' stockout is what rebalancing saves; the steady state shows
    # how the two compare once both strategies' own orders have arrived.
    gap_all = later.at["dc_only", "lost_units"] - later.at["policy_rebalance", "lost_units"]
    gap_steady = later.at["dc_only", "steady_lost_units"] - later.at["policy_rebalance", "steady_lost_units"]
    assert gap_all > gap_steady


def test_min_max_is_tuned_on_the_weeks_before_the_window_not_on_it():
    import json

    chain = tiny_chain(days=112)
    res = run_replay(chain, settings=Settings(), weeks=3, forecaster="empirical",
                     strategies=("min_max", "min_max_tuned"), **QUIET).set_index("strategy")
    params = json.loads(res.at["min_max_tuned", "parameters"])
    grid = pd.DataFrame(params["tuning_grid"])
    assert len(grid) == 16 and params["tuning_days"] == 21
    best = grid.sort_values(["total_cost", "min_days", "max_days"]).iloc[0]
    assert (params["tuned_min_days"], params["tuned_max_days"]) == (best["min_days"], best["max_days"])
    # The shipped defaults are on the grid (review period + 3, and 14 days more).
    assert ((grid["min_days"] == 10) & (grid["max_days"] == 24)).any()
    # The window's own demand does not move the choice.
    sales = chain.sales.copy()
    window = sales["sale_date"] > sales["sale_date"].max() - pd.Timedelta(days=21)
    sales.loc[window, "units"] *= 3
    again = run_replay(Chain(chain.stores, chain.dcs, chain.products, chain.inventory, sales), settings=Settings(),
                       weeks=3, forecaster="empirical", strategies=("min_max_tuned",), **QUIET)
    params2 = json.loads(again["parameters"].iat[0])
    assert (params2["tuned_min_days"], params2["tuned_max_days"]) == (best["min_days"], best["max_days"])


def test_a_neutral_opening_gives_rebalancing_no_head_start():
    chain = tiny_chain()
    kw = {"settings": Settings(), "weeks": 3, "forecaster": "empirical", "strategies": ("dc_only", "policy_rebalance")}
    snap = run_replay(chain, opening="snapshot", **kw, **QUIET).set_index("strategy")
    neutral = run_replay(chain, opening="neutral", **kw, **QUIET).set_index("strategy")
    # The snapshot's pile at A and empty B is a gift to rebalancing; the same cover everywhere is not.
    assert snap.at["policy_rebalance", "units_moved"] > 0
    assert neutral.at["policy_rebalance", "units_moved"] == 0
    assert neutral.at["dc_only", "total_cost"] == pytest.approx(neutral.at["policy_rebalance", "total_cost"])
    import json

    assert json.loads(neutral["parameters"].iat[0])["opening"] == "neutral"
    with pytest.raises(ValueError, match="opening"):
        run_replay(chain, opening="generous", **kw, **QUIET)


def test_a_chain_with_weekly_sales_replays_with_the_engine_forecasting_weeks(tmp_path):
    from retailopt.config import load_settings
    from retailopt.sample import generate_sample_chain

    generate_sample_chain(tmp_path / "chain", seed=6, n_stores=3, n_products=5, days=196, frequency="weekly")
    chain = load_chain(tmp_path / "chain")
    settings = load_settings({"data_frequency": "weekly"}, environ={})
    forecasts: dict = {}
    res = run_replay(chain, settings=settings, weeks=3, forecaster="engine", forecasts=forecasts,
                     strategies=("dc_only", "policy_rebalance", "min_max"), **QUIET).set_index("strategy")
    # Every re-plan forecast weeks (rows a week apart), its windows restated in days.
    for daily, protection in forecasts.values():
        gaps = pd.to_datetime(daily["forecast_date"]).drop_duplicates().sort_values().diff().dropna()
        assert (gaps == pd.Timedelta(days=7)).all()
        assert protection["window_days"].max() < 7 * 4 and protection["demand_mean"].notna().all()
    held_out = chain.sales[chain.sales["sale_date"] > chain.sales["sale_date"].max() - pd.Timedelta(days=21)]
    for _, r in res.iterrows():
        assert r["demand_units"] == held_out["units"].sum()
        assert r["sold_units"] + r["lost_units"] == pytest.approx(r["demand_units"])


def test_the_oracle_forecaster_is_the_actual_demand_and_loses_nothing_once_orders_can_arrive():
    """`--forecaster oracle` (a diagnostic): the window quantiles are the demand that happened;
    the policy planned on it loses nothing after its first orders arrive, so what it still costs
    against the hindsight plan is its rules', not forecast error."""
    from retailopt.replay import oracle_forecast

    demand = np.arange(40, dtype=float).reshape(2, 20)
    keys = pd.DataFrame({"store_id": ["A", "B"], "product_id": ["P", "P"]})
    daily, prot = oracle_forecast(demand, 15, np.array([3, 8]), keys, date(2026, 1, 1), 8)
    # 20 recorded days: past the last, the trailing mean (of days 0..14 here: 7 and 27).
    assert prot["demand_mean"].tolist() == [15 + 16 + 17, 35 + 36 + 37 + 38 + 39 + 3 * 27]
    assert (prot[["q50", "q80", "q90", "q95", "q99"]].to_numpy() == prot[["demand_mean"]].to_numpy()).all()
    assert daily["forecast_mean"].tolist()[:8] == [15, 16, 17, 18, 19, 7, 7, 7]
    res = run_replay(tiny_chain(), settings=Settings(slow_mover_daily_demand=0), weeks=3, forecaster="oracle",
                     strategies=("dc_only",), warmup_days=10, **QUIET)
    row = res.iloc[0]
    assert row["forecaster"] == "oracle"
    assert row["lost_units"] > 0  # B opens empty: nothing can arrive before the lead time
    assert row["steady_lost_units"] == 0
    with pytest.raises(ValueError, match="oracle"):
        run_replay(tiny_chain(), settings=Settings(), weeks=3, forecaster="crystal ball", **QUIET)


def test_cost_components_split_the_total_into_warm_up_and_steady_state():
    """Issue 15: every strategy's total cost by component (holding, lost margin, ordering,
    transfers) over the warm-up days and the steady state; the parts add up to the totals, and
    the summary gives (c)'s regret against the hindsight bound component by component."""
    from retailopt.replay import COST_COMPONENTS, cost_components, summary_lines

    chain = tiny_chain()
    res = run_replay(chain, settings=Settings(), weeks=3, forecaster="empirical", warmup_days=10,
                     strategies=("dc_only", "policy_rebalance", "hindsight"), hindsight_time_limit_s=20, **QUIET)
    for _, r in res.iterrows():
        steady = sum(r[cols[1]] for cols in COST_COMPONENTS.values())
        assert steady == pytest.approx(r["steady_total_cost"])
        assert r["steady_holding_cost"] + r["steady_ordering_cost"] + r["steady_transfer_cost"] == \
            pytest.approx(r["steady_operating_cost"])
        for name, (whole, part) in COST_COMPONENTS.items():
            assert 0 <= r[part] <= r[whole] + 1e-9, (r["strategy"], name)
        assert r["steady_avg_on_hand_value"] > 0 and r["end_on_hand_value"] >= 0
    parts = cost_components(res).set_index(["strategy", "part"])
    for name in res["strategy"]:
        warm, steady, window = (parts.loc[(name, p)] for p in ("warm-up", "steady", "window"))
        assert (warm + steady).to_numpy() == pytest.approx(window.to_numpy())
        assert window["total"] == pytest.approx(res.set_index("strategy").at[name, "total_cost"])
        assert warm["total"] > 0  # B starts empty: the first days lose sales
    # With no warm-up the steady state is the window.
    every = run_replay(chain, settings=Settings(), weeks=3, forecaster="empirical", warmup_days=0,
                       strategies=("dc_only",), **QUIET).iloc[0]
    assert every["steady_holding_cost"] == pytest.approx(every["holding_cost"])
    assert every["steady_ordering_cost"] == pytest.approx(every["ordering_cost"])
    assert every["steady_avg_on_hand_value"] == pytest.approx(every["avg_on_hand_value"])
    text = "\n".join(summary_lines(res))
    gap = parts.loc[("policy_rebalance", "steady")] - parts.loc[("hindsight", "steady")]
    assert "regret of (c) by component" in text
    assert f"holding {gap['holding']:>+10,.0f}" in text


def test_rebalancing_is_charged_the_routes_solved_for_its_transfers():
    """With a fleet the replay charges each day's transfers their handling plus the routes solved
    to carry them (a van's fixed cost at least, per trip here: one store pair, one van a day);
    without one, the per-unit estimate. Here the van from the centre 30 km away costs more than
    A's pile is worth to B: planned by the per-unit estimate the transfers go and pay for their
    van; planned by their routes they do not go, and the replay costs less."""
    from datetime import time

    chain = tiny_chain()
    hours = {"receiving_open": time(5), "receiving_close": time(20)}
    fleet = pd.DataFrame([{"vehicle_id": "V1", "depot_id": "D", "capacity_units": 2000, "capacity_kg": 2500.0,
                           "cost_per_km": 0.7, "cost_per_hour": 35.0, "fixed_cost": 90.0,
                           "shift_start": "06:00:00", "shift_end": "16:00:00"}])
    routed = Chain(stores=chain.stores.assign(**hours),
                   dcs=chain.dcs.assign(open_time=time(4), close_time=time(22)), products=chain.products,
                   inventory=chain.inventory, sales=chain.sales, vehicles=fleet)
    # The search carries a load while it costs up to ten times its value: the per-unit plan's trips
    # are driven (and paid for), not left behind.
    settings = Settings(routing_penalty_factor=10.0)
    common = dict(settings=settings, weeks=3, forecaster="empirical", strategies=("policy_rebalance",), **QUIET)
    by_proxy = run_replay(chain, **common).iloc[0]
    by_routes = run_replay(routed, **common).iloc[0]
    per_unit = run_replay(routed, reprice_transfers=False, **common).iloc[0]
    handling = settings.handling_cost_per_unit
    assert by_proxy["units_moved"] > 0 and per_unit["units_moved"] == by_proxy["units_moved"]
    assert by_proxy["transfer_cost"] == pytest.approx(
        by_proxy["units_moved"] * (handling + settings.transport_cost_per_unit_km * 3.0), rel=0.05)
    assert per_unit["trips"] > 0
    assert per_unit["transfer_cost"] >= per_unit["units_moved"] * handling + 90.0 * per_unit["trips"]
    assert by_routes["units_moved"] == 0 and by_routes["transfer_cost"] == 0
    assert by_routes["total_cost"] < per_unit["total_cost"]
    assert json.loads(per_unit["parameters"])["transfer_pricing"] == "per-unit"
