"""The local forecast in chunks of whole stores: same rows whether one process or a pool makes them,
every position once, and a chunk's history read on its own."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from retailopt.forecasting.anomalies import detect_anomalies
from retailopt.forecasting.chunks import forecast_in_chunks, store_chunks
from retailopt.forecasting.engine import forecast
from retailopt.forecasting.synthetic import synthetic_history

END = date(2025, 6, 30)
START = END + timedelta(days=1)
PARAMS = {"run_date": START, "horizon_days": 14, "confidence_level": 0.9, "holiday_country": "US",
          "holiday_subdivision": None, "seed": 42, "exclude_anomalies": "isolated_spikes", "component_days": 0}


@pytest.fixture(scope="module")
def chain():
    history = synthetic_history(6, 40, 400, END, seed=3)
    positions = history[["store_id", "product_id"]].astype(str).drop_duplicates().reset_index(drop=True)
    window = positions.assign(window_days=9)
    return history, positions, window


def _run(chain, **kw):
    history, positions, window = chain
    reads: list[tuple[str, str, int]] = []
    written = []

    def read_history(first, last):
        part = history[(history.store_id.astype(str) >= first) & (history.store_id.astype(str) <= last)]
        reads.append((first, last, len(part)))
        return part.reset_index(drop=True)

    counts = forecast_in_chunks(positions, window, read_history=read_history, plan_for=lambda keys: None,
                                write=written.append, params=PARAMS, show_progress=False, **kw)
    daily = pd.concat([c.daily for c in written]).sort_values(["store_id", "product_id", "forecast_date"])
    protection = pd.concat([c.protection for c in written]).sort_values(["store_id", "product_id"])
    return counts, reads, daily.reset_index(drop=True), protection.reset_index(drop=True)


def test_store_chunks_hold_whole_consecutive_stores_and_every_position_once(chain):
    _, positions, _ = chain
    chunks = store_chunks(positions, 90)  # 40 series a store: two stores a chunk
    assert [(a, b, len(k)) for a, b, k in chunks] == [("S000", "S001", 80), ("S002", "S003", 80),
                                                       ("S004", "S005", 80)]
    joined = pd.concat([k for _, _, k in chunks])
    assert len(joined) == len(positions) and not joined.duplicated().any()
    for first, last, keys in chunks:
        assert set(keys.store_id) == {s for s in positions.store_id if first <= s <= last}
    assert len(store_chunks(positions, 10)) == 6  # a store larger than a chunk is a chunk of its own


def test_a_pool_of_workers_gives_the_rows_one_process_gives(chain):
    one, reads_one, daily_one, prot_one = _run(chain, chunk_series=90, workers=1)
    two, reads_two, daily_two, prot_two = _run(chain, chunk_series=90, workers=2)
    assert one["chunks"] == two["chunks"] == 3 and (one["workers"], two["workers"]) == (1, 2)
    assert sorted(reads_one) == sorted(reads_two) and len(reads_one) == 3  # each chunk read once, alone
    pd.testing.assert_frame_equal(daily_one, daily_two)
    pd.testing.assert_frame_equal(prot_one, prot_two)
    assert one["series"] == 240 and one["forecast_rows"] == 240 * 14 == len(daily_one)
    assert one["history_rows"] == len(chain[0])


def test_one_chunk_is_the_engine_on_the_whole_history(chain):
    history, positions, window = chain
    _, _, daily, protection = _run(chain, chunk_series=10_000, workers=1)
    detection = detect_anomalies(history, positions, forecast_start=START)
    direct = forecast(detection.history, positions, forecast_start=START, horizon=14, window_days=window)
    expected = direct.daily.sort_values(["store_id", "product_id", "forecast_date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(daily, expected, check_dtype=False)


def test_a_failing_chunk_fails_the_whole_forecast(chain):
    _, positions, window = chain

    def read_history(first, last):
        raise RuntimeError(f"warehouse gone while reading {first}..{last}")

    with pytest.raises(RuntimeError, match="warehouse gone"):
        forecast_in_chunks(positions, window, read_history=read_history, plan_for=lambda keys: None,
                           write=lambda c: None, params=PARAMS, chunk_series=90, workers=2, show_progress=False)


def test_the_forecast_step_writes_chunk_by_chunk_and_a_failing_chunk_leaves_no_row(tmp_path, monkeypatch):
    from retailopt import pipeline
    from retailopt.config import load_settings
    from retailopt.forecasting import chunks
    from retailopt.sample import generate_sample_chain
    from retailopt.warehouse import open_warehouse

    data = tmp_path / "chain"
    generate_sample_chain(data, n_stores=4, n_products=12, days=120)
    settings = load_settings({"data_dir": str(tmp_path / "w")})
    wh = open_warehouse(settings)
    try:
        wh.ensure_schema()
        run_id = pipeline.import_step(wh, settings, None, data)["run_id"]
        monkeypatch.setattr(chunks, "CHUNK_SERIES", 12)  # a store a chunk
        monkeypatch.setattr(chunks, "available_cores", lambda: 1)  # in this process, so the fault below applies
        counts = pipeline.forecast_step(wh, settings, run_id)
        assert counts["chunks"] == 4 and counts["series"] == 48
        rows = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.forecasts` WHERE run_id = @r", {"r": run_id})
        assert int(rows.n.iloc[0]) == 48 * settings.horizon_days

        real, calls = chunks.forecast_chunk, []

        def third_fails(*args):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("worker lost")
            return real(*args)

        monkeypatch.setattr(chunks, "forecast_chunk", third_fails)
        with pytest.raises(RuntimeError, match="worker lost"):
            pipeline.forecast_step(wh, settings, run_id)
        for table in ("forecasts", "demand_windows", "forecast_components"):
            rows = wh.query(f"SELECT COUNT(*) AS n FROM `{{dataset}}.{table}` WHERE run_id = @r", {"r": run_id})
            assert int(rows.n.iloc[0]) == 0, table
    finally:
        wh.close()


def test_chunk_windows_are_the_merge_of_each_chunks_keys(chain):
    from retailopt.forecasting.chunks import chunk_windows, store_chunks

    _, positions, window = chain
    # A window in another order than the keys, with a position no chunk holds and a missing one.
    shuffled = window.sample(frac=1.0, random_state=1).reset_index(drop=True)
    shuffled.loc[len(shuffled)] = {"store_id": "S999", "product_id": "P001", "window_days": 4}
    shuffled = shuffled.iloc[1:].reset_index(drop=True)
    chunks = store_chunks(positions.assign(category="c"), 70)
    assert len(chunks) > 2
    windows = chunk_windows(shuffled, chunks)
    for first, last, keys in chunks:
        expected = shuffled.merge(keys, on=["store_id", "product_id"], how="inner")
        pd.testing.assert_frame_equal(windows[(first, last)], expected)


def test_the_pool_reads_at_most_one_chunk_ahead_of_its_workers(chain):
    history, positions, window = chain
    events: list[str] = []

    def read_history(first, last):
        events.append("read")
        return history[(history.store_id >= first) & (history.store_id <= last)].reset_index(drop=True)

    counts = forecast_in_chunks(positions, window, read_history=read_history, plan_for=lambda keys: None,
                                write=lambda c: events.append("write"), params=PARAMS, chunk_series=40,
                                workers=2, show_progress=False)
    assert counts["chunks"] == 6 and events.count("read") == events.count("write") == 6
    in_flight = [events[:i + 1].count("read") - events[:i + 1].count("write") for i in range(len(events))]
    # Two workers busy, one chunk queued, and the chunk just back whose rows are written after the
    # next chunk is handed out: memory stays bounded by the chunk size.
    assert max(in_flight) == 4


def test_the_engine_builds_the_same_matrix_from_categorical_ids(chain):
    from retailopt.forecasting.engine import _dense_of, _densify

    history, positions, _ = chain
    coded = history.astype({"store_id": "category", "product_id": "category"})
    fast, plain = _dense_of(coded, positions, START, 1100), _densify(history, positions, START, 1100)
    pd.testing.assert_frame_equal(fast.keys, plain.keys)
    pd.testing.assert_index_equal(fast.days, plain.days)
    for field in ("units", "promo", "has_rows", "first"):
        assert (getattr(fast, field) == getattr(plain, field)).all(), field
