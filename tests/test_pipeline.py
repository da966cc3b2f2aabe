"""The planning run end to end on a small generated chain, on the embedded warehouse."""

from __future__ import annotations

import json
from datetime import timedelta
import shutil

import pandas as pd
import pytest

from retailopt import pipeline
from retailopt.cli import main
from retailopt.config import load_settings
from retailopt.dispatch import ledger
from retailopt.ingest import InputError
from retailopt.sample import generate_sample_chain
from retailopt.warehouse import open_warehouse


@pytest.fixture(scope="module")
def small_chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain")
    generate_sample_chain(path, n_stores=5, n_products=15, days=200)
    return path


@pytest.fixture(scope="module")
def completed(small_chain, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    settings = load_settings({"data_dir": str(work), "routing_time_limit_s": 2})
    return settings, pipeline.run_planning(settings, small_chain)


def test_run_completes_with_every_result(completed):
    settings, result = completed
    assert result.status == "COMPLETE"
    wh = open_warehouse(settings)
    try:
        run = pipeline.get_run(wh, result.run_id)
        assert run["status"] == "COMPLETE" and run["kpis"]["positions"] == 5 * 15
        forecasts = pipeline.read_run_rows(wh, "forecasts", result.run_id)
        assert len(forecasts) == 5 * 15 * settings.horizon_days
        # Count-distribution quantiles are whole units, so only their order is checked.
        assert (forecasts.lower_bound <= forecasts.upper_bound).all() and (forecasts.forecast_mean >= 0).all()
        assert (forecasts.quantile_50 <= forecasts.quantile_99).all()
        policy = pipeline.read_run_rows(wh, "inventory_policy", result.run_id)
        assert set(policy.status) <= {"STOCKOUT_RISK", "OVERSTOCK", "OK"}
        assert (policy.order_up_to >= policy.reorder_point).all()
        exceptions = pipeline.read_run_rows(wh, "plan_exceptions", result.run_id)
        flagged = policy[policy.exception.notna()]
        assert set(zip(exceptions.store_id, exceptions.product_id)) == set(zip(flagged.store_id, flagged.product_id))
        transfers = pipeline.read_run_rows(wh, "transfers", result.run_id)
        assert (transfers.from_store_id != transfers.to_store_id).all()
        assert (transfers.value > transfers.cost).all()
        routes = pipeline.read_run_rows(wh, "routes", result.run_id)
        stops = pipeline.read_run_rows(wh, "route_stops", result.run_id)
        assert set(stops.route_id) == set(routes.route_id)
        carried = set(stops.shipment_id)
        planned = set(transfers.shipment_id) | set(pipeline.read_run_rows(
            wh, "replenishment_orders", result.run_id).shipment_id)
        assert carried <= planned
        assert pipeline.latest_complete_run(wh) == result.run_id
    finally:
        wh.close()


def test_the_policy_sums_the_same_forecasts_as_from_the_whole_horizon(completed):
    # The plan step reads only the days the policy sums; a store without a lead time takes its
    # fallback lead (its window less the review period), which those days must cover too.
    from retailopt.policy import compute_policy

    settings, result = completed
    wh = open_warehouse(settings)
    try:
        run_date = pipeline.get_run(wh, result.run_id)["run_date"]
        stores, dcs = pipeline.read_table(wh, "stores"), pipeline.read_table(wh, "distribution_centers")
        products = pipeline.read_table(wh, "products")
        inventory = ledger.stock_position(wh, run_date, max_wait_days=settings.transfer_max_wait_days)
        protection = pipeline.read_run_rows(wh, "demand_windows", result.run_id)
        leads = pipeline._lead_times(stores, dcs)
        leads.loc[leads.index[0], "lead_time_days"] = float("nan")  # one store without a lead time
        lead_map = dict(zip(leads.store_id, leads.lead_time_days))
        whole = pipeline.read_run_rows(wh, "forecasts", result.run_id)
        read = pipeline._review_forecasts(wh, result.run_id, run_date, leads["lead_time_days"], protection,
                                          settings.review_period_days)
        assert 0 < len(read) < len(whole)
        plans = [compute_policy(inventory, products, protection, daily, run_date=run_date, lead_time_days=lead_map,
                                settings=settings)[0] for daily in (whole, read)]
        numbers = plans[0].select_dtypes("number").columns
        pd.testing.assert_frame_equal(plans[0][numbers], plans[1][numbers])
    finally:
        wh.close()


def test_artifacts_are_written(completed):
    _, result = completed
    summary = json.loads(result.summary_path.read_text())
    assert summary["run_id"] == result.run_id and summary["kpis"]["positions"] == 75
    plan = json.loads((result.artifacts_dir / "plan.json").read_text())
    assert len(plan["transfers"]) == summary["kpis"]["transfers"]
    geojson = json.loads((result.artifacts_dir / "routes.geojson").read_text())
    assert geojson["type"] == "FeatureCollection"
    html = (result.artifacts_dir / "report.html").read_text()
    assert "data:image/svg+xml;base64," in html and result.run_id in html and "<script" not in html
    request = json.loads((result.artifacts_dir / "routes_request.json").read_text())
    assert "shipments" in request["model"]


def test_steps_are_idempotent(completed):
    settings, result = completed
    wh = open_warehouse(settings)
    try:
        run_id = pipeline.start_run(wh, settings, run_date=result.run_date)
        pipeline.forecast_step(wh, settings, run_id)
        before = {t: len(pipeline.read_run_rows(wh, t, run_id)) for t in pipeline.RESULT_TABLES}
        pipeline.forecast_step(wh, settings, run_id)
        after = {t: len(pipeline.read_run_rows(wh, t, run_id)) for t in pipeline.RESULT_TABLES}
        assert before == after and before["forecasts"] > 0
        pipeline.fail_run(wh, run_id, "test over")
    finally:
        wh.close()


def test_a_complete_run_is_never_rewritten(completed):
    settings, result = completed
    wh = open_warehouse(settings)
    try:
        before = {t: len(pipeline.read_run_rows(wh, t, result.run_id)) for t in pipeline.RESULT_TABLES}
        with pytest.raises(pipeline.RunClosed, match="COMPLETE"):
            pipeline.forecast_step(wh, settings, result.run_id)
        assert not pipeline.fail_run(wh, result.run_id, "too late")
        after = {t: len(pipeline.read_run_rows(wh, t, result.run_id)) for t in pipeline.RESULT_TABLES}
        assert before == after
        assert pipeline.get_run(wh, result.run_id)["status"] == "COMPLETE"
    finally:
        wh.close()


def _running_copy(wh, settings, result, run_date=None) -> str:
    """A new RUNNING run with the complete run's forecast (a complete run is never re-planned)."""
    run_id = pipeline.start_run(wh, settings, run_date=run_date or result.run_date)
    for table in ("forecasts", "demand_windows"):
        rows = pipeline.read_run_rows(wh, table, result.run_id).drop(columns="run_id")
        pipeline.replace_run_rows(wh, table, run_id, rows)
    return run_id


def test_routes_of_a_day_carry_what_arrives_that_day(completed):
    """A plan's own orders arrive after the lead time, so its routes do not carry them; once
    released, the plan of their arrival day routes them (here with a what-if fleet of one vehicle)."""
    settings, result = completed
    wh = open_warehouse(settings)
    try:
        orders = pipeline.read_run_rows(wh, "replenishment_orders", result.run_id)
        assert len(orders) and (pd.to_datetime(orders.expected_arrival) > pd.Timestamp(result.run_date)).all()
        assert pipeline.get_run(wh, result.run_id)["kpis"]["units_arriving_later"] >= int(orders.quantity.sum())
        stops = pipeline.read_run_rows(wh, "route_stops", result.run_id)
        assert not set(stops.shipment_id) & set(orders.shipment_id)
        run = pipeline.get_run(wh, result.run_id)
        assert ledger.commit_as_planned(wh, run, released_by="test", released_at=pd.Timestamp.now(tz="UTC")) > 0
        assert ledger.commit_as_planned(wh, run, released_by="test", released_at=pd.Timestamp.now(tz="UTC")) == 0
        arrival = pd.Timestamp(orders.expected_arrival.min()).date()
        run_id = _running_copy(wh, settings, result, run_date=arrival)
        fleet = pipeline.read_table(wh, "vehicles")
        chosen = fleet.sort_values("capacity_units").vehicle_id.iloc[-1]
        pipeline.plan_step(wh, settings.replace(fleet_vehicle_ids=chosen), run_id)
        carried = pipeline.read_run_rows(wh, "carried_lines", run_id)
        due = orders[pd.to_datetime(orders.expected_arrival) == pd.Timestamp(arrival)]
        assert set(carried.line_id) == set(due.order_id)
        assert int(carried.quantity.sum()) == int(due.quantity.sum())
        assert set(carried.source_run_id) == {result.run_id}
        routes = pipeline.read_run_rows(wh, "routes", run_id)
        assert set(routes.vehicle_id) == {chosen}
        routed = set(pipeline.read_run_rows(wh, "route_stops", run_id).shipment_id)
        assert routed and routed <= set(carried.shipment_id)
        # A carried load no route takes is a plan exception with its units and value, line by line:
        # the same day planned again while the vehicle's shift is over before any store opens.
        vehicles = pipeline.read_table(wh, "vehicles")
        with wh.transaction():
            wh.execute("UPDATE `{dataset}.vehicles` SET shift_end = '06:20:00' WHERE vehicle_id = @v", {"v": chosen})
        try:
            again = _running_copy(wh, settings, result, run_date=arrival)
            pipeline.plan_step(wh, settings.replace(fleet_vehicle_ids=chosen), again)
        finally:
            with wh.transaction():
                wh.execute("DELETE FROM `{dataset}.vehicles` WHERE TRUE")
                wh.insert("vehicles", vehicles)
        left = pipeline.read_run_rows(wh, "carried_lines", again)
        assert len(left) and pipeline.read_run_rows(wh, "route_stops", again).empty
        unrouted = pipeline.read_run_rows(wh, "plan_exceptions", again).query("reason_code == 'UNROUTED_LOAD'")
        assert len(unrouted) == len(left)
        assert set(zip(unrouted.store_id, unrouted.product_id)) == set(zip(left.destination_id, left.product_id))
        for row in left.itertuples():
            assert unrouted.reason.str.contains(f"load {row.shipment_id} (", regex=False).any()
        kpis = pipeline.compute_kpis(wh, again)
        assert kpis["shipments_unrouted"] == left.shipment_id.nunique() and kpis["units_routed"] == 0
        assert kpis["value_unrouted"] == pytest.approx(float(left.value.sum()), abs=0.01)
        pipeline.fail_run(wh, again, "test over")
        # The released orders are on order in the new plan's stock position, not ordered again.
        policy = pipeline.read_run_rows(wh, "inventory_policy", run_id)
        before = pipeline.read_run_rows(wh, "inventory_policy", result.run_id)
        assert int(policy.on_order.sum()) == int(before.on_order.sum()) + int(orders.quantity.sum())
        pipeline.fail_run(wh, run_id, "test over")
    finally:
        wh.close()


def test_a_transfer_no_truck_carries_gives_its_receiver_its_order(completed):
    """Same-day transfers (transfer_lead_days 0) share their day's one van with the orders released
    before. The pricing routes them beside those orders, so it sees the van has no time for them
    and forbids them ("no vehicle carried it"); any the day's routes still leave behind are dropped
    from the plan. Either way their receivers' orders are planned without them. A store never gets
    neither: every position of the sold-out store is at or above its reorder point with the plan's
    orders and transfers, like every position the plan orders for."""
    settings, result = completed
    wh = open_warehouse(settings)
    stock, vehicles = pipeline.read_table(wh, "inventory"), pipeline.read_table(wh, "vehicles")
    try:
        run = pipeline.get_run(wh, result.run_id)
        ledger.commit_as_planned(wh, run, released_by="test", released_at=pd.Timestamp.now(tz="UTC"))
        orders = pipeline.read_run_rows(wh, "replenishment_orders", result.run_id)
        arrival = pd.Timestamp(orders.expected_arrival.min()).date()
        run_id = _running_copy(wh, settings, result, run_date=arrival)
        # Since the snapshot, one store sold out and another has a surplus: transfers are worth it.
        stores = sorted(set(stock.store_id))
        wh.execute("UPDATE `{dataset}.inventory` SET on_hand = 0 WHERE store_id = @s", {"s": stores[0]})
        wh.execute("UPDATE `{dataset}.inventory` SET on_hand = on_hand + 300 WHERE store_id = @s", {"s": stores[1]})
        van = vehicles.sort_values(["capacity_units", "vehicle_id"]).vehicle_id.iloc[0]
        # A three-hour shift: the van can drive the transfer alone but not beside the released
        # orders due today, which are worth more to the search.
        wh.execute("UPDATE `{dataset}.vehicles` SET shift_end = '09:00:00' WHERE vehicle_id = @v", {"v": van})
        same_day = settings.replace(transfer_lead_days=0, fleet_vehicle_ids=van, routing_penalty_factor=10.0,
                                    min_transfer_value=-1e9)
        counts = pipeline.plan_step(wh, same_day, run_id)
        exceptions = pipeline.read_run_rows(wh, "plan_exceptions", run_id)
        dropped = exceptions[(exceptions.reason_code == "UNROUTED_LOAD")
                             & exceptions.action.str.contains("dropped from the plan")]
        pricing = counts["transfer_pricing"]
        assert pricing["background_loads"] > 0  # priced beside the released orders due today
        assert len(dropped) or pricing["trips_forbidden"], str(counts)
        # The released orders the van had no time for stay released and are named too, with the
        # next plan's routes to carry them.
        carried = pipeline.read_run_rows(wh, "carried_lines", run_id)
        waiting = carried[~carried.shipment_id.isin(set(pipeline.read_run_rows(wh, "route_stops", run_id).shipment_id))]
        late = exceptions[(exceptions.reason_code == "UNROUTED_LOAD")
                          & exceptions.action.str.contains("carried by the next plan")]
        assert len(waiting) and set(zip(late.store_id, late.product_id)) == set(
            zip(waiting.destination_id, waiting.product_id))
        transfers = pipeline.read_run_rows(wh, "transfers", run_id)
        stops = pipeline.read_run_rows(wh, "route_stops", run_id)
        # Every transfer the plan keeps is on a route; none of the dropped ones is.
        assert set(transfers.shipment_id) <= set(stops.shipment_id)
        policy = pipeline.read_run_rows(wh, "inventory_policy", run_id).set_index(["store_id", "product_id"])
        new_orders = pipeline.read_run_rows(wh, "replenishment_orders", run_id)
        ordered = new_orders.groupby(["store_id", "product_id"]).quantity.sum()
        inn = transfers.groupby(["to_store_id", "product_id"]).quantity.sum()
        from retailopt.policy import NO_ORDER_CODES, exception_codes

        sold_out = [k for k in policy.index if k[0] == stores[0]]
        for key in set(zip(dropped.store_id, dropped.product_id)) | set(sold_out):
            row = policy.loc[key]
            position = row.on_hand + row.on_order + ordered.get(key, 0) + inn.get(key, 0)
            blocked = bool(exception_codes(row.exception) & (NO_ORDER_CODES | {"STORE_CAPACITY",
                                                                                "SHELF_ROOM_AT_DELIVERY"}))
            assert position >= row.reorder_point or blocked, (key, position, row.reorder_point)
        pipeline.fail_run(wh, run_id, "test over")
    finally:
        wh.execute("DELETE FROM `{dataset}.inventory` WHERE TRUE")
        wh.insert("inventory", stock)
        wh.execute("DELETE FROM `{dataset}.vehicles` WHERE TRUE")
        wh.insert("vehicles", vehicles)
        wh.close()


def test_orders_cut_to_a_full_store_are_plan_exceptions(completed):
    settings, result = completed
    wh = open_warehouse(settings)
    try:
        run_id = _running_copy(wh, settings, result)
        stores = pipeline.read_table(wh, "stores")
        store, room = stores.store_id.iloc[0], int(stores.capacity_units.iloc[0])
        wh.execute("UPDATE `{dataset}.stores` SET capacity_units = 1 WHERE store_id = @s", {"s": store})
        pipeline.plan_step(wh, settings, run_id)
        cut = pipeline.read_run_rows(wh, "plan_exceptions", run_id).query("reason_code == 'STORE_CAPACITY'")
        orders = pipeline.read_run_rows(wh, "replenishment_orders", run_id)
        assert len(cut) and set(cut.store_id) == {store} and store not in set(orders.store_id)
        pipeline.fail_run(wh, run_id, "test over")
    finally:
        wh.execute("UPDATE `{dataset}.stores` SET capacity_units = @c WHERE store_id = @s", {"s": store, "c": room})
        wh.close()


def test_failed_run_leaves_no_partial_result(small_chain, tmp_path, monkeypatch):
    settings = load_settings({"data_dir": str(tmp_path), "routing_time_limit_s": 1})

    def broken(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(pipeline, "solve_day_routes", broken)
    with pytest.raises(RuntimeError, match="solver exploded"):
        pipeline.run_planning(settings, small_chain)
    wh = open_warehouse(settings)
    try:
        runs = wh.query("SELECT run_id, status, error FROM `{dataset}.runs`")
        assert runs.status.tolist() == ["FAILED"] and "solver exploded" in runs.error[0]
        for table in pipeline.RESULT_TABLES:
            assert pipeline.read_run_rows(wh, table, runs.run_id[0]).empty, table
        assert pipeline.latest_complete_run(wh) is None
        views = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.completed_forecasts`")
        assert int(views.n[0]) == 0
    finally:
        wh.close()


def test_bad_rows_are_quarantined_and_the_run_goes_on(small_chain, tmp_path):
    data = tmp_path / "in"
    shutil.copytree(small_chain, data)
    inventory = pd.read_csv(data / "inventory.csv")
    inventory.loc[0, "on_hand"] = -3
    inventory.to_csv(data / "inventory.csv", index=False)
    settings = load_settings({"data_dir": str(tmp_path / "work"), "routing_time_limit_s": 1})
    result = pipeline.run_planning(settings, data)
    assert result.status == "COMPLETE" and result.kpis["quarantined_rows"] == 1
    wh = open_warehouse(settings)
    try:
        q = pipeline.read_run_rows(wh, "quarantine", result.run_id)
        assert q.source_file.tolist() == ["inventory.csv"] and q.row_number.tolist() == [1]
        assert "on_hand" in q.column_name[0]
    finally:
        wh.close()


def test_unplannable_input_exits_non_zero_with_a_message(small_chain, tmp_path, capsys):
    data = tmp_path / "in"
    shutil.copytree(small_chain, data)
    (data / "stores.csv").write_text("store_id,name\n")
    code = main(["run", "--data", str(data), "--data-dir", str(tmp_path / "w"), "--quiet"])
    assert code == 2
    assert "stores" in capsys.readouterr().err
    with pytest.raises(InputError):
        pipeline.run_planning(load_settings({"data_dir": str(tmp_path / "w2")}), data)


def test_cli_run_prints_the_summary_path(small_chain, tmp_path, capsys):
    code = main(["run", "--data", str(small_chain), "--data-dir", str(tmp_path), "--quiet",
                 "--set", "routing_time_limit_s=1", "--set", "service_level=0.9"])
    out = capsys.readouterr().out
    assert code == 0 and "summary: " in out
    summary_path = out.split("summary: ")[1].strip()
    assert json.loads(open(summary_path).read())["status"] == "COMPLETE"


def test_cli_run_releases_as_planned_without_a_review_step(small_chain, tmp_path, capsys, monkeypatch):
    """release_mode "auto": `retailopt run` releases its plan as `--release` does."""
    monkeypatch.setenv("RETAILOPT_RELEASE_MODE", "auto")
    code = main(["run", "--data", str(small_chain), "--data-dir", str(tmp_path), "--quiet",
                 "--set", "routing_time_limit_s=1"])
    out = capsys.readouterr().out
    assert code == 0 and "released: " in out
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    wh = open_warehouse(settings)
    try:
        run_id = pipeline.latest_complete_run(wh)
        orders = pipeline.read_run_rows(wh, "replenishment_orders", run_id)
        committed = wh.query("SELECT SUM(quantity) AS units FROM `{dataset}.committed_lines` "
                             "WHERE run_id = @r AND line_type = 'ORDER'", {"r": run_id})
        assert len(orders) and int(committed.units.iloc[0]) == int(orders.quantity.sum())
    finally:
        wh.close()


def test_report_shows_the_latest_replay(completed, tmp_path):
    from retailopt import report, schema

    settings, result = completed
    samples = {"STRING": "x", "INT64": 1, "FLOAT64": 0.5, "BOOL": True, "DATE": "2026-01-01",
               "TIMESTAMP": "2026-01-01T00:00:00Z"}
    columns = schema.table("replay_results").columns
    row = {c.name: samples.get(c.type, "x") for c in columns}
    wh = open_warehouse(settings)
    try:
        wh.insert("replay_results", pd.DataFrame([{**row, "strategy": "c_policy_rebalancing_marker"}]))
        run = pipeline.get_run(wh, result.run_id)
        paths = report.write_artifacts(wh, run, run["kpis"], {}, tmp_path)
        assert "c_policy_rebalancing_marker" in paths["report"].read_text()
    finally:
        wh.close()


def _forecast_with(data, tmp_path, name):
    settings = load_settings({"data_dir": str(tmp_path / name)})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        run_id = pipeline.import_step(wh, settings, None, data)["run_id"]
        counts = pipeline.forecast_step(wh, settings, run_id)
        return counts, pipeline.read_run_rows(wh, "forecasts", run_id)
    finally:
        wh.close()


def test_forecast_step_lifts_the_planned_promotion_days(small_chain, tmp_path):
    data = tmp_path / "in"
    shutil.copytree(small_chain, data)
    # A store-specific promotion next to the generated chain-wide ones.
    promotions = pd.read_csv(data / "promotions.csv", dtype=str, keep_default_na=False)
    assert len(promotions) > 0 and (promotions.store_id == "").all()
    extra = {"store_id": "S001", "product_id": "P0001", "start_date": "2026-11-29", "end_date": "2026-12-05"}
    pd.concat([promotions, pd.DataFrame([extra])]).to_csv(data / "promotions.csv", index=False)
    with_plan, planned = _forecast_with(data, tmp_path, "plan")
    (data / "promotions.csv").unlink()
    without, plain = _forecast_with(data, tmp_path, "plain")
    assert without["promoted_days"] == 0
    keys = ["store_id", "product_id", "forecast_date"]
    both = planned.merge(plain, on=keys, suffixes=("_plan", "_plain"))
    assert len(both) == len(planned) == len(plain) == 5 * 15 * 28
    horizon = set(both.forecast_date)
    expected = set()
    for row in pd.concat([promotions, pd.DataFrame([extra])]).itertuples():
        stores = [row.store_id] if row.store_id else sorted(set(both.store_id))
        for day in pd.date_range(row.start_date, row.end_date):
            if day in horizon:
                expected |= {(store, row.product_id, day) for store in stores}
    assert with_plan["promoted_days"] == len(expected) > 7
    on = pd.Series([k in expected for k in zip(both.store_id, both.product_id, both.forecast_date)],
                   index=both.index)
    lifted = both[on]
    assert (lifted.forecast_mean_plan > lifted.forecast_mean_plain).all()
    # The store promotion lifts S001 only, not P0001 elsewhere on the same days.
    assert len(lifted[(lifted.store_id == "S001") & (lifted.product_id == "P0001")]) == 7
    assert not on[(both.store_id != "S001") & (both.product_id == "P0001")].any()


def test_a_chain_with_weekly_sales_is_forecast_per_week_and_planned(tmp_path):
    data = tmp_path / "weekly"
    generate_sample_chain(data, seed=8, n_stores=3, n_products=6, days=210, frequency="weekly")
    settings = load_settings({"data_dir": str(tmp_path / "w"), "routing_time_limit_s": 1,
                              "data_frequency": "weekly"})
    result = pipeline.run_planning(settings, data)
    assert result.status == "COMPLETE"
    wh = open_warehouse(settings)
    try:
        fc = pipeline.read_run_rows(wh, "forecasts", result.run_id)
        windows = pipeline.read_run_rows(wh, "demand_windows", result.run_id)
        policy = pipeline.read_run_rows(wh, "inventory_policy", result.run_id)
        sales = wh.query("SELECT MAX(sale_date) AS last FROM `{dataset}.sales`")
    finally:
        wh.close()
    dates = pd.to_datetime(fc["forecast_date"])
    last = pd.Timestamp(sales["last"].iloc[0])
    # Four weeks (horizon_days 28), dated on the sales' own weekly grid.
    assert sorted(dates.unique()) == list(pd.date_range(last + pd.Timedelta(days=7), periods=4, freq="7D"))
    assert fc[["forecast_mean", "lower_bound", "upper_bound"]].notna().all().all()
    assert not fc["model"].str.startswith("fallback").all()
    # The protection window is the lead time + review period in days, as with daily data, and the
    # policy's daily rate is a seventh of the weekly forecast.
    both = windows.merge(policy, on=["store_id", "product_id"])
    assert len(both) == 18
    assert (both["window_days"] == both["lead_time_days"] + both["review_period_days"]).all()
    weekly_total = fc.groupby(dates)["forecast_mean"].sum().iloc[0]
    assert policy["mean_daily_demand"].sum() == pytest.approx(weekly_total / 7, rel=0.25)


def test_a_later_days_loads_never_share_a_label_with_todays():
    """A centre's order to a store released two days ago (carried, due today) and today's order to
    the same store (due in two days) are one consignment: today's request carries only the first,
    and the second's load is labelled with its day, so a stop of today's routes names one of them."""
    from test_routing import RUN, _orders, _products, _vehicles

    today = _orders().assign(expected_arrival=pd.Timestamp(RUN) + pd.Timedelta(days=2))
    carried = pd.DataFrame([{"source_run_id": "R0", "line_type": "ORDER", "line_id": "O0", "product_id": "P1",
                             "origin_id": "DC1", "destination_id": "S4", "quantity": 60, "value": 120.0,
                             "expected_arrival": pd.Timestamp(RUN)}])
    empty = pd.DataFrame(columns=["run_date", "transfer_id", "product_id", "from_store_id", "to_store_id", "quantity",
                                  "value", "cost", "distance_km", "expected_arrival"])
    t, o, c, day_t, day_o = pipeline.day_loads(empty, today, carried, RUN, _vehicles(), _products())
    assert list(c.shipment_id) == ["O-DC1-S4-1"] and list(day_o.order_id) == ["O0"] and day_t.empty
    assert list(o.shipment_id) == [f"O-DC1-S4-1@{RUN + timedelta(days=2):%Y%m%d}"]
    assert list(o.order_id) == ["O1"] and int(o.quantity.sum()) == 48 and t.empty
