"""Every command test runs with its own data directory and the repository's example policies."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GATE_POLICY_PATH", str(REPO / "policies"))
    return tmp_path / "var"
