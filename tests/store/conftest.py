"""Builders for the store specifications: a store of each backend, records, raw SQL edits."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.store.base import Store
from app.store.postgres import PostgresStore
from app.store.sqlite import SQLiteStore
from tests import pg

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


# --- the same specifications on both stores ------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this test run's own on the real server, dropped at the end."""
    url = pg.create_database()
    yield url
    pg.drop_database(url)


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A store URL on a fresh schema of the run's database (one per test)."""
    schema, url = pg.create_schema(pg_database)
    yield url
    pg.drop_schema(pg_database, schema)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, db_path: Path) -> str:
    """The URL of an empty store of the backend under test (not opened yet)."""
    if backend == "sqlite":
        return f"sqlite:///{db_path}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def any_store(store_url: str) -> Iterator[Store]:
    """An open store of each backend, its clock at T0."""
    s = open_any(store_url)
    yield s
    s.close()


def open_any(url: str, *, migrate: bool = True, clock: Callable[[], float] | None = None) -> Store:
    clock = clock or (lambda: T0.timestamp())
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite://")), clock=clock, migrate=migrate)
    return PostgresStore(url, clock=clock, migrate=migrate, pool_timeout=2.0)


def raw_sql(url: str, statement: str) -> None:
    """Edit either backend's database behind the store's back."""
    if url.startswith("sqlite:///"):
        run_sql(Path(url.removeprefix("sqlite://")), statement)
    else:
        pg.run_sql(url, statement)
