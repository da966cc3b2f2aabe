"""The workbench's per-run tables (plan_worklist, plan_lines, plan_overview), written when a run is
published, and the pages read from them: on a real planned chain in DuckDB, every page of every
filter and sort equals the whole listing sorted in memory; a failed run leaves none of them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from workbench_support import PLAN_SETTINGS, copy_data, planned_chain

from retailopt import pipeline, sqlfiles
from retailopt.config import load_settings
from retailopt.warehouse import open_warehouse
from retailopt.workbench import decisions, store, views

SIZE = 7  # small pages, so that the chain's few lines span many


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> tuple[Path, str]:
    return planned_chain(tmp_path_factory.mktemp("wb-store-chain"))


@pytest.fixture()
def wh(chain, tmp_path):
    settings = load_settings({"data_dir": copy_data(chain[0], tmp_path / "data"), **PLAN_SETTINGS}, environ={})
    warehouse = open_warehouse(settings)
    yield warehouse
    warehouse.close()


def _live_worklist(wh, run_id: str) -> pd.DataFrame:
    """The worklist query over every store, as the publish step runs it block by block."""
    return wh.query(sqlfiles.read_sql("queries/wb_worklist.sql"),
                    {"run_id": run_id, "store_from": "", "store_to": "\uffff"})


def test_publishing_writes_the_worklist_lines_and_figures_of_the_run(wh, chain):
    run_id = chain[1]
    figures = store.published(wh, run_id)
    assert figures is not None  # written by the publish step of the planning run
    live = _live_worklist(wh, run_id).sort_values(["store_id", "product_id"]).reset_index(drop=True)
    stored = wh.query("SELECT * FROM `{dataset}.plan_worklist` WHERE run_id = @r ORDER BY store_id, product_id",
                      {"r": run_id})
    assert len(stored) == len(live) == figures["worklist_positions"] > 0
    for column in ("reason_code", "status_after_plan", "units_unrouted", "position_after", "exception_reasons"):
        assert stored[column].fillna(-1).tolist() == live[column].fillna(-1).tolist(), column
    assert stored.value_at_risk.round(6).tolist() == live.value_at_risk.round(6).tolist()
    # Ranks: dense, and in the order of value at risk (then store and product) overall and per filter.
    order = stored.sort_values(["value_at_risk", "store_id", "product_id"], ascending=[False, True, True])
    assert order.position_rank.tolist() == list(range(1, len(order) + 1))
    for column, rank in (("store_id", "store_rank"), ("category", "category_rank"), ("reason_code", "reason_rank")):
        for _, group in order.groupby(column):
            assert group[rank].tolist() == list(range(1, len(group) + 1)), (column, group[rank].tolist()[:5])
    lines = wh.query("SELECT line_type, COUNT(*) AS n FROM `{dataset}.plan_lines` WHERE run_id = @r "
                     "GROUP BY line_type", {"r": run_id})
    counts = dict(zip(lines.line_type, lines.n))
    kpis = json.loads(wh.query("SELECT kpis FROM `{dataset}.runs` WHERE run_id = @r", {"r": run_id}).kpis[0])
    assert counts == {"TRANSFER": kpis["transfers"], "ORDER": kpis["orders"]}
    assert (figures["transfer_lines"], figures["order_lines"]) == (kpis["transfers"], kpis["orders"])
    lost = wh.query("SELECT SUM(expected_lost_units) AS u FROM `{dataset}.inventory_policy` WHERE run_id = @r",
                    {"r": run_id}).u[0]
    assert figures["lost_units_before"] == pytest.approx(lost) and figures["positions"] == kpis["positions"]


def test_publishing_again_replaces_and_works_through_blocks_of_stores(wh, chain, monkeypatch):
    run_id = chain[1]
    before = wh.query("SELECT * FROM `{dataset}.plan_worklist` WHERE run_id = @r ORDER BY position_rank",
                      {"r": run_id})
    monkeypatch.setattr(store, "BLOCK_POSITIONS", 40)  # a block is one or two stores of 30 products
    assert len(store._store_blocks(wh, run_id)) > 3
    store.publish(wh, run_id)
    after = wh.query("SELECT * FROM `{dataset}.plan_worklist` WHERE run_id = @r ORDER BY position_rank",
                     {"r": run_id})
    pd.testing.assert_frame_equal(before, after)
    assert store.publish(wh, run_id, replace=False)["worklist_positions"] == len(before)


def test_worklist_pages_equal_the_sorted_listing_for_every_filter(wh, chain):
    run_id = chain[1]
    full = pd.DataFrame(views.worklist(wh, run_id, store_id=None, category=None, reason=None, page=1,
                                       size=100_000).rows)
    assert full.position_rank.tolist() == list(range(1, len(full) + 1)) and len(full) > 3 * SIZE
    store_id, category, reason = full.store_id[0], full.category[0], full.reason_code[0]
    for flt in ({}, {"store_id": store_id}, {"category": category}, {"reason": reason},
                {"store_id": store_id, "reason": reason}, {"category": category, "reason": reason},
                {"store_id": store_id, "category": category, "reason": reason}):
        mask = pd.Series(True, index=full.index)
        for key, column in (("store_id", "store_id"), ("category", "category"), ("reason", "reason_code")):
            if key in flt:
                mask &= full[column] == flt[key]
        want = full[mask][["store_id", "product_id"]].values.tolist()
        args = {"store_id": None, "category": None, "reason": None, **flt}
        got = []
        for page in range(1, len(want) // SIZE + 3):
            listing = views.worklist(wh, run_id, page=page, size=SIZE, **args)
            assert listing.total == len(want), flt
            got += [[r["store_id"], r["product_id"]] for r in listing.rows]
        assert got == want, flt
    summary = views.worklist_summary(wh, run_id, store_id=store_id, category=None)
    assert sum(s["positions"] for s in summary) == int((full.store_id == store_id).sum())


def _decide_some(wh, run_id: str) -> None:
    run = pipeline.get_run(wh, run_id)
    requests = []
    for kind, line_type in (("orders", "ORDER"), ("transfers", "TRANSFER")):
        ids = [r["line_id"] for r in views.all_lines(wh, kind, run_id)]
        requests += [decisions.Request(line_type, i, "APPROVE") for i in ids[1::4]]
        requests += [decisions.Request(line_type, i, "REJECT", reason="no") for i in ids[2::5]]
        requests += [decisions.Request(line_type, i, "EDIT", quantity=0) for i in ids[3::7]]
    decisions.decide(wh, run, "ann", requests)


_KEY_COLUMNS = {"value": "planned_value", "quantity": "planned_quantity", "product": "product_rank",
                "from": "source_rank", "to": "store_rank", "store": "store_rank", "km": "distance_rank",
                "arrival": "arrival_rank", "line": "line_id"}


def test_line_pages_equal_the_sorted_listing_for_every_sort_and_decision(wh, chain):
    run_id = chain[1]
    _decide_some(wh, run_id)
    for kind in ("orders", "transfers"):
        everything = pd.DataFrame(views.all_lines(wh, kind, run_id))
        assert set(everything.decision) == {"APPROVED", "REJECTED", "PENDING"}
        keys = views.TRANSFER_SORTS if kind == "transfers" else views.ORDER_SORTS
        some_store = everything.store_id.iloc[0]
        for key, descending, decision, filtered in itertools.product(
                keys, (False, True), (None, "PENDING", "APPROVED", "REJECTED"), (False, True)):
            rows = everything if decision is None else everything[everything.decision == decision]
            if filtered:
                rows = rows[(rows.store_id == some_store) | ((rows.line_type == "TRANSFER")
                                                             & (rows.source_id == some_store))]
            if key == "decision":
                want = rows.sort_values(["decision", "line_id"], ascending=[not descending, True])
            elif filtered and key in ("product", "from", "to", "store"):
                names = {"product": ["product_name", "product_id"], "from": ["source_name", "source_id"],
                         "to": ["store_name", "store_id"], "store": ["store_name", "store_id"]}[key]
                want = rows.sort_values([*names, "line_id"], ascending=not descending)
            else:
                want = rows.sort_values([_KEY_COLUMNS[key], "line_id"], ascending=not descending,
                                        na_position="last" if descending else "first")
            got = []
            for page in range(1, len(want) // SIZE + 3):
                listing, sort = views.lines(wh, kind, run_id, decision=decision, page=page, size=SIZE,
                                            sort=("-" if descending else "") + key,
                                            store_id=some_store if filtered else None)
                assert listing.total == len(want) and sort == ("-" if descending else "") + key
                got += [r["line_id"] for r in listing.rows]
            assert got == want.line_id.tolist(), (kind, key, descending, decision, filtered)


def test_a_run_failed_after_its_workbench_tables_were_written_leaves_none(chain, tmp_path, monkeypatch):
    from retailopt import report

    data = copy_data(chain[0], tmp_path / "data")
    settings = load_settings({"data_dir": data, **PLAN_SETTINGS}, environ={})
    wh = open_warehouse(settings)
    try:
        run_id = pipeline.start_run(wh, settings)
        pipeline.forecast_step(wh, settings, run_id)
        pipeline.plan_step(wh, settings, run_id)

        def broken(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(report, "routes_geojson", broken)  # after store.publish, before COMPLETE
        with pytest.raises(RuntimeError, match="disk full"):
            pipeline.publish_step(wh, settings, run_id, tmp_path / "artifacts")
        assert store.published(wh, run_id) is not None  # written, and the run is not complete
        pipeline.fail_run(wh, run_id, "disk full")
        for table in store.TABLES:
            assert pipeline.read_run_rows(wh, table, run_id).empty, table
    finally:
        wh.close()


def test_a_run_published_before_the_tables_existed_gets_them_when_read(wh, chain):
    run_id = chain[1]
    for table in store.TABLES:
        wh.execute(f"DELETE FROM `{{dataset}}.{table}` WHERE run_id = @r", {"r": run_id})
    assert store.published(wh, run_id) is None
    run = pipeline.get_run(wh, run_id)
    figures = views.overview(wh, run)
    assert figures["worklist_positions"] > 0 and store.published(wh, run_id) == figures


def test_a_batch_of_decisions_looks_its_lines_up_in_one_query_per_kind(wh, chain, monkeypatch):
    """In BigQuery every query is a billed job: a batch approving every line of a big run must not
    cost one job per line (it did: 6.5 million jobs for a 1,000-store chain's release)."""
    run_id = chain[1]
    run = pipeline.get_run(wh, run_id)
    requests = [decisions.Request(line_type, r["line_id"], "APPROVE")
                for kind, line_type in (("orders", "ORDER"), ("transfers", "TRANSFER"))
                for r in views.all_lines(wh, kind, run_id)]
    assert len(requests) > 20
    queries: list[str] = []
    real_query = wh.query
    monkeypatch.setattr(wh, "query", lambda sql, *a, **k: queries.append(sql) or real_query(sql, *a, **k))
    rows = decisions.decide(wh, run, "ann", requests)
    assert len(rows) == len(requests)
    assert len([q for q in queries if "plan_lines" in q]) == 2
    with pytest.raises(decisions.DecisionError, match="has no order line nope"):
        decisions.decide(wh, run, "ann", [requests[0], decisions.Request("ORDER", "nope", "APPROVE")])
