import os
import time

import pytest
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from retailopt.services.storage import REJECTED_KEY, GcsStore, LocalStore
from services_support import free_port


@pytest.fixture(scope="module")
def gcs_client():
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="raw-bucket")
    server.start()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        yield storage.Client(project="test-project", credentials=AnonymousCredentials())
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        server.stop()


def _drop(store_bucket, prefix):
    for name, text in {"stores.csv": "store_id\nS1\n", "sales.csv": "x\n1\n", "_READY": "",
                       "nested/ignored.csv": "y"}.items():
        store_bucket.blob(f"{prefix}{name}").upload_from_string(text)


def test_gcs_store_downloads_a_drop_and_marks_rejected_files(gcs_client, tmp_path):
    store = GcsStore(gcs_client, "raw-bucket")
    _drop(store.bucket, "acme/2026-01-01/")
    files = store.download_prefix("acme/2026-01-01", tmp_path / "in")
    assert sorted(p.name for p in files) == ["sales.csv", "stores.csv"]
    assert (tmp_path / "in" / "stores.csv").read_text() == "store_id\nS1\n"
    store.mark_rejected("acme/2026-01-01/sales.csv", "missing column store_id")
    assert store.metadata("acme/2026-01-01/sales.csv")[REJECTED_KEY] == "missing column store_id"
    # The rejected file is still there.
    assert "acme/2026-01-01/sales.csv" in store.list("acme/")
    out = tmp_path / "artifacts"
    out.mkdir()
    (out / "plan.json").write_text("{}")
    assert store.upload_dir(out, "runs/r1") == ["runs/r1/plan.json"]
    assert store.bucket.blob("runs/r1/plan.json").download_as_bytes() == b"{}"


def test_local_store_has_the_same_behaviour(tmp_path):
    store = LocalStore(tmp_path / "raw")
    folder = tmp_path / "raw" / "acme" / "2026-01-01"
    folder.mkdir(parents=True)
    (folder / "stores.csv").write_text("a")
    (folder / "_READY").write_text("")
    assert [p.name for p in store.download_prefix("acme/2026-01-01/", tmp_path / "in")] == ["stores.csv"]
    store.mark_rejected("acme/2026-01-01/stores.csv", "bad")
    assert (folder / "stores.csv.rejected.json").exists() and (folder / "stores.csv").exists()
    with pytest.raises(ValueError):
        store.download_prefix("../outside", tmp_path / "x")
