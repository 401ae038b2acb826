"""Opening a store that must exist (audit and key commands): nothing is created where none is."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import GateError
from app.store.audit import verify_chain
from app.store.opener import open_existing_store
from tests.store.conftest import open_any


@pytest.mark.parametrize(
    "name", ["missing.db", "notes.txt", "empty.db"], ids=["missing", "not-sqlite", "sqlite-without-audit"]
)
def test_a_sqlite_path_without_a_store_is_refused_and_not_created(tmp_path: Path, name: str):
    (tmp_path / "notes.txt").write_text("not a database")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(GateError, match=r"no store at|is not an agent-gate store") as info:
        open_existing_store(str(tmp_path / name), given=True)
    assert info.value.code == "no-store"
    assert not (tmp_path / "missing.db").exists()


def test_an_existing_store_opens(store_url: str):
    open_any(store_url).close()
    store = open_existing_store(store_url, given=True)
    try:
        assert verify_chain(store).ok
    finally:
        store.close()


def test_an_empty_postgresql_schema_is_never_verified_as_intact(pg_url: str):
    store = open_existing_store(pg_url, given=True)
    try:
        with pytest.raises(GateError):
            verify_chain(store)
    finally:
        store.close()
