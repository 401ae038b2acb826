"""Builders for the store specifications: a store on a temporary file, records, raw SQL edits."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.store.sqlite import SQLiteStore

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "gate.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db_path, clock=lambda: T0.timestamp())
    yield s
    s.close()


@pytest.fixture
def fill(store: SQLiteStore) -> Callable[[int], None]:
    """Append ``n`` decision records, one minute apart from T0."""

    def _fill(n: int) -> None:
        for i in range(n):
            store.append_audit(
                "decision",
                {"decision_id": f"dec_{i + 1}", "allowed": i % 2 == 0},
                time=T0 + timedelta(minutes=i),
            )

    return _fill


def run_sql(path: Path, script: str) -> None:
    """Edit the database behind the store's back, as someone with file access could."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
        conn.commit()
    finally:
        conn.close()
