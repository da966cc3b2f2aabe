"""Shared fixtures.

bqemulator's pytest plugin provides `bqemu_client`; its DuckDB engine needs the spatial extension,
which must come from the pip package (no download here) before the emulator starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# DuckDB installs extensions under ~/.duckdb and refuses to start one without a home folder;
# a bare CI environment may name a HOME that does not exist.
if not Path(os.environ.get("HOME") or "/nonexistent").is_dir():
    os.environ["HOME"] = tempfile.mkdtemp(prefix="retailopt-test-home-")


@pytest.fixture(scope="session")
def bqemu_settings():  # overrides the plugin's fixture of the same name
    import duckdb_extensions
    from bqemulator.config import PersistenceMode, Settings

    duckdb_extensions.import_extension("spatial")
    return Settings(persistence_mode=PersistenceMode.EPHEMERAL, rest_host="127.0.0.1", rest_port=0,
                    grpc_host="127.0.0.1", grpc_port=0)
