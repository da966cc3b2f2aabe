"""The local forecast of a whole chain in bounded chunks of series, on the available cores.

A chain's sales history does not have to fit in memory: the positions are cut into chunks of
whole stores (weekday profiles pool per store; holiday effects and calibration pool within a
chunk, thousands of series), each chunk's history is read from the warehouse on its own
(`read_history(first_store, last_store)`), its anomalies are found and its forecast is made in a
worker process, and its rows are handed to `write` as soon as they are back. At most one chunk
per worker, and one more queued, is in flight, so memory depends on the chunk size and the number
of workers, not on the chain. A progress bar (stderr, on a terminal) shows series per second and the time left.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

# Series per chunk: a few thousand keep a chunk's dense matrices within a few hundred MB. A chunk
# also has a fixed cost (interval calibration on a sample of up to 300,000 scored days, about a
# second), so the worker pool, which runs only on chains of POOL_MIN_SERIES and more, takes
# larger chunks.
CHUNK_SERIES = 2000
POOL_CHUNK_SERIES = 5000
# Fewer series than this are forecast in this process: starting a worker (a new interpreter
# importing numpy and pandas, a few seconds) pays off only when each has minutes of work, and one
# process holds one chunk at a time instead of one per worker (the sample chain: 7,500 series).
POOL_MIN_SERIES = 20_000


@dataclass
class ChunkResult:
    """What a chunk gives the forecast step's tables (without run_id), and its counts. The rows are
    frames, or with the parameter `arrow_rows` Arrow tables typed by their tables (`handoff.py`)."""

    daily: pd.DataFrame | pa.Table
    protection: pd.DataFrame | pa.Table
    components: pd.DataFrame | pa.Table
    anomalies: pd.DataFrame | pa.Table
    series: int
    history_rows: int
    excluded_days: int
    promoted_days: int
    models: dict[str, int]


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def store_chunks(positions: pd.DataFrame, chunk_series: int) -> list[tuple[str, str, pd.DataFrame]]:
    """(first store, last store, positions) of consecutive whole stores, about `chunk_series` series
    each (a store larger than that is a chunk of its own). Pure."""
    # Other columns (a product's category, for products without history) travel with the keys.
    keys = positions.astype({"store_id": str, "product_id": str}).drop_duplicates(["store_id", "product_id"])
    counts = keys.groupby("store_id", sort=True).size()
    chunks: list[list[str]] = []
    filled = 0
    for store, n in counts.items():
        if not chunks or (filled and filled + n > chunk_series):
            chunks.append([])
            filled = 0
        chunks[-1].append(store)
        filled += n
    out = []
    for stores in chunks:
        out.append((stores[0], stores[-1], keys[keys.store_id.isin(stores)].reset_index(drop=True)))
    return out


def chunk_windows(window: pd.DataFrame, chunks: list[tuple[str, str, pd.DataFrame]]
                  ) -> dict[tuple[str, str], pd.DataFrame]:
    """Each chunk's window rows, `window.merge(keys, how="inner")` for its keys: merged once and
    split by store (merging the chain's whole window for every chunk cost the main process
    O(positions) a chunk, a million rows 250 times at 500 x 2,000). Pure."""
    if not chunks:
        return {}
    merged = window.merge(pd.concat([keys for _, _, keys in chunks], ignore_index=True),
                          on=["store_id", "product_id"], how="inner")
    rows_of = merged.groupby(merged["store_id"].astype(str), sort=False).indices
    out = {}
    for first, last, keys in chunks:
        parts = [rows_of[store] for store in keys["store_id"].unique() if store in rows_of]
        rows = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        out[(first, last)] = merged.iloc[rows].reset_index(drop=True)
    return out


def forecast_chunk(history: pd.DataFrame | pa.Table, positions: pd.DataFrame, window: pd.DataFrame,
                   plan: pd.DataFrame | None, params: dict[str, Any]) -> ChunkResult:
    """Anomalies and forecast of one chunk (runs in a worker process). A history read as an Arrow
    table becomes the engine's frame here, and with `params["arrow_rows"]` the result's rows
    become Arrow tables here: work the worker does instead of the main process (`handoff.py`)."""
    from retailopt.forecasting.handoff import history_frame, result_tables

    if isinstance(history, pa.Table):
        history = history_frame(history)
    result = _forecast_chunk(history, positions, window, plan, params)
    return result_tables(result) if params.get("arrow_rows") else result


def _forecast_chunk(history: pd.DataFrame, positions: pd.DataFrame, window: pd.DataFrame,
                    plan: pd.DataFrame | None, params: dict[str, Any]) -> ChunkResult:
    from retailopt.forecasting import forecast
    from retailopt.forecasting.anomalies import ANOMALY_COLUMNS, detect_anomalies
    from retailopt.forecasting.anomalies import recent as recent_anomalies

    run_date: date = params["run_date"]
    history_rows = len(history)
    freq = params.get("frequency")
    if freq is None and len(history):  # the chain's dates fit no one grid: this chunk's series decide
        from retailopt.forecasting.frequency import history_frequency

        freq = history_frequency(params.get("data_frequency"), history)[0]
    if freq is not None and not freq.daily:
        # Weekly or monthly sales: horizon, history and window in whole periods, the window's demand
        # restated for its own days; anomalies and planned promotions are daily-only.
        from retailopt.forecasting.periodic import forecast_for_days

        result = forecast_for_days(history, positions, freq, forecast_start=run_date,
                                   horizon_days=params["horizon_days"], window_days=window,
                                   history_days=params["history_days"], confidence_level=params["confidence_level"],
                                   holiday_country=params["holiday_country"],
                                   holiday_subdivision=params["holiday_subdivision"], seed=params["seed"])
        models = result.protection.model.value_counts().to_dict()
        return ChunkResult(daily=result.daily, protection=result.protection, components=result.components,
                           anomalies=pd.DataFrame(columns=ANOMALY_COLUMNS), series=len(positions),
                           history_rows=history_rows, excluded_days=0, promoted_days=0,
                           models={str(k): int(v) for k, v in models.items()})
    detection = detect_anomalies(history, positions, forecast_start=run_date, exclude=params["exclude_anomalies"],
                                 holiday_country=params["holiday_country"],
                                 holiday_subdivision=params["holiday_subdivision"])
    anomalies, excluded = recent_anomalies(detection.anomalies, run_date), detection.excluded
    history = detection.history
    del detection
    result = forecast(history, positions, forecast_start=run_date, horizon=params["horizon_days"],
                      window_days=window, confidence_level=params["confidence_level"],
                      holiday_country=params["holiday_country"], holiday_subdivision=params["holiday_subdivision"],
                      seed=params["seed"], component_days=params["component_days"], future_promotions=plan,
                      max_chunk_series=max(len(positions), 1), frequency=freq)
    models = result.protection.model.value_counts().to_dict()
    return ChunkResult(daily=result.daily, protection=result.protection, components=result.components,
                       anomalies=anomalies, series=len(positions), history_rows=history_rows,
                       excluded_days=int(excluded), promoted_days=0 if plan is None else len(plan),
                       models={str(k): int(v) for k, v in models.items()})


def forecast_in_chunks(positions: pd.DataFrame, window: pd.DataFrame, *,
                       read_history: Callable[[str, str], pd.DataFrame],
                       plan_for: Callable[[pd.DataFrame], pd.DataFrame | None],
                       write: Callable[[ChunkResult], None], params: dict[str, Any],
                       chunk_series: int | None = None, workers: int | None = None,
                       show_progress: bool | None = None) -> dict[str, Any]:
    """Forecast every position chunk by chunk; `write` receives each chunk's rows in the order the
    chunks finish. Returns the step's counts. `workers` defaults to the available cores from
    `POOL_MIN_SERIES` positions on, else 1; with one worker (or one chunk) everything runs in
    this process. A failing chunk raises (the step fails; the caller's transaction keeps nothing)."""
    if workers is None:
        workers = available_cores() if len(positions) >= POOL_MIN_SERIES else 1
    chunks = store_chunks(positions, chunk_series or (POOL_CHUNK_SERIES if workers > 1 else CHUNK_SERIES))
    workers = min(workers, len(chunks)) or 1
    totals: dict[str, Any] = {"series": 0, "history_rows": 0, "forecast_rows": 0, "component_rows": 0,
                              "promoted_days": 0, "anomaly_rows": 0, "excluded_spike_days": 0, "models": {},
                              "chunks": len(chunks), "workers": workers}
    # show_progress None: a bar only on a terminal.
    bar = tqdm(total=int(sum(len(c[2]) for c in chunks)), desc="forecast", unit="series",
               disable=None if show_progress is None else not show_progress, leave=False, position=1,
               dynamic_ncols=True)

    windows = chunk_windows(window, chunks)

    def inputs(first: str, last: str, keys: pd.DataFrame) -> tuple:
        history = read_history(first, last)
        return history, keys, windows[(first, last)], plan_for(keys)

    def absorb(result: ChunkResult) -> None:
        write(result)
        totals["series"] += result.series
        totals["history_rows"] += result.history_rows
        totals["forecast_rows"] += len(result.daily)
        totals["component_rows"] += len(result.components)
        totals["promoted_days"] += result.promoted_days
        totals["anomaly_rows"] += len(result.anomalies)
        totals["excluded_spike_days"] += result.excluded_days
        for k, v in result.models.items():
            totals["models"][k] = totals["models"].get(k, 0) + v
        bar.update(result.series)

    try:
        if workers <= 1:
            for first, last, keys in chunks:
                absorb(forecast_chunk(*inputs(first, last, keys), params))
            return totals
        # Spawned workers: the parent holds the warehouse connection and a heartbeat thread,
        # which a forked child must not inherit.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: set[Future] = set()
            todo = iter(chunks)

            def submit_next() -> None:
                nxt = next(todo, None)
                if nxt is not None:
                    pending.add(pool.submit(forecast_chunk, *inputs(*nxt), params))

            # One chunk more than workers in flight: a worker that finishes starts on the queued
            # chunk at once, instead of idling while this process writes its rows and reads the
            # next chunk's history (memory: one more chunk's history).
            for _ in range(workers + 1):
                submit_next()
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        pending.discard(future)
                        result = future.result()
                        submit_next()
                        absorb(result)
            except BaseException:
                # The step fails: chunks not started yet are dropped rather than waited for.
                for future in pending:
                    future.cancel()
                raise
        return totals
    finally:
        bar.close()
