"""`retailopt run` and `retailopt serve` keep a run's artifacts in one layout: `runs/<run id>/` of the
artifacts bucket, which on one machine is the folder `<data dir>/artifacts`."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench_support import PLAN_SETTINGS, planned_chain

from retailopt import pipeline
from retailopt.config import load_settings
from retailopt.services.local import start_local


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> tuple[Path, str]:
    return planned_chain(tmp_path_factory.mktemp("artifacts-chain"))


def test_run_and_serve_write_a_run_artifacts_to_the_same_place(chain, tmp_path):
    data, run_id = chain
    written = data / "artifacts" / "runs" / run_id  # where `retailopt run` (run_planning) put them
    assert {"report.html", "plan.json", "summary.json", "routes.geojson"} <= {p.name for p in written.iterdir()}
    assert not (data / "runs").exists()
    # `retailopt serve` on the same data dir: its artifacts store is <data dir>/artifacts and the
    # plan step uploads under the same prefix.
    settings = load_settings({"data_dir": tmp_path / "serve", **PLAN_SETTINGS}, environ={})
    served = start_local(settings)
    try:
        store = served.runtime.artifacts_store
        assert Path(store.root) == Path(settings.data_dir) / "artifacts"
        assert Path(store.root) / pipeline.artifacts_prefix(run_id) == \
            Path(settings.data_dir) / written.relative_to(data)
    finally:
        served.close()
