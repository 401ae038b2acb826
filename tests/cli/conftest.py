"""Every command test runs with its own data directory and the repository's example policies."""

from __future__ import annotations

from pathlib import Path

import pytest

# The store's fixtures, for `db upgrade` on both backends (tests/cli/test_db.py).
from tests.store.conftest import (  # noqa: F401  # pytest finds fixtures by name, unused here
    backend,
    db_path,
    pg_database,
    pg_url,
    store_url,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GATE_POLICY_PATH", str(REPO / "policies"))
    return tmp_path / "var"
