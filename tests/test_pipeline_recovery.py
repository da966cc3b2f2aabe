"""Runs that cannot get stuck: leases, heartbeats, and recovery of runs whose process died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from retailopt import pipeline
from retailopt.config import load_settings
from retailopt.sample import generate_sample_chain
from retailopt.services.local import start_local
from retailopt.warehouse import open_warehouse


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain")
    generate_sample_chain(path, n_stores=3, n_products=6, days=90)
    return path


@pytest.fixture
def imported(chain, tmp_path):
    settings = load_settings({"data_dir": str(tmp_path), "run_lease_s": 60})
    wh = open_warehouse(settings)
    wh.ensure_schema()
    run_id = pipeline.import_step(wh, settings, None, chain)["run_id"]
    yield settings, wh, run_id
    wh.close()


def _rows(wh, run_id: str) -> dict[str, int]:
    return {t: len(pipeline.read_run_rows(wh, t, run_id)) for t in pipeline.RESULT_TABLES}


def test_an_expired_lease_fails_the_run_and_removes_its_rows(imported):
    settings, wh, run_id = imported
    pipeline.forecast_step(wh, settings, run_id)
    assert _rows(wh, run_id)["forecasts"] > 0
    now = datetime.now(timezone.utc)
    assert pipeline.recover_runs(wh, now=now) == []  # the lease still runs
    assert pipeline.recover_runs(wh, now=now + timedelta(seconds=settings.run_lease_s + 1)) == [run_id]
    run = pipeline.get_run(wh, run_id)
    assert run["status"] == "FAILED" and "lease expired" in run["error"]
    assert set(_rows(wh, run_id).values()) == {0}


def test_the_heartbeat_moves_the_lease_while_a_step_works(imported):
    settings, wh, run_id = imported
    first = pipeline.get_run(wh, run_id)["heartbeat_at"]
    with pipeline.heartbeat(wh, run_id, lease_s=2):
        time.sleep(1.2)  # two beats at 0.5 s
        renewed = pipeline.get_run(wh, run_id)
    assert renewed["heartbeat_at"] > first and renewed["lease_owner"].endswith(f":{os.getpid()}")
    # The process holding the lease is this one: alive, so nothing is recovered.
    assert pipeline.recover_runs(wh, same_machine=True) == []


def test_a_step_of_a_failed_run_writes_nothing(imported):
    settings, wh, run_id = imported
    assert pipeline.fail_run(wh, run_id, "lease expired meanwhile")
    with pytest.raises(pipeline.RunClosed, match="FAILED"):
        pipeline.forecast_step(wh, settings, run_id)
    assert set(_rows(wh, run_id).values()) == {0}
    with pytest.raises(pipeline.RunClosed):
        pipeline.publish_step(wh, settings, run_id, wh.path.parent / "artifacts")
    assert pipeline.get_run(wh, run_id)["status"] == "FAILED"


def test_a_killed_run_is_recovered_at_the_next_start(chain, tmp_path):
    """SIGKILL a real `retailopt run` half way (forecast written, routing under way)."""
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "retailopt.cli", "run", "--data", str(chain), "--data-dir", str(work),
         "--set", "routing_time_limit_s=60"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while b"planning run: plan" not in seen:  # tqdm's description: the forecast is stored
            chunk = process.stderr.read1(4096)
            if not chunk or time.monotonic() > deadline:
                pytest.fail(f"the run ended or stalled before its plan step: {seen.decode(errors='replace')[-500:]}")
            seen += chunk
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    settings = load_settings({"data_dir": str(work)})
    wh = open_warehouse(settings)
    try:
        runs = wh.query("SELECT run_id, status FROM `{dataset}.runs`")
        assert runs.status.tolist() == ["RUNNING"]
        run_id = runs.run_id.iloc[0]
        assert _rows(wh, run_id)["forecasts"] > 0  # partial rows of the killed run
    finally:
        wh.close()
    local = start_local(settings)  # `serve` starting on the same folder
    try:
        run = pipeline.get_run(local.runtime.warehouse, run_id)
        assert run["status"] == "FAILED" and "is gone" in run["error"]
        assert set(_rows(local.runtime.warehouse, run_id).values()) == {0}
    finally:
        local.close()
