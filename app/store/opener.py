"""Open the store that ``GATE_DATABASE`` names: a SQLite file, or a PostgreSQL database for replicas.

``open_store`` creates a fresh store where none is (the gate's first start). An auditor's command
must not: ``open_existing_store`` opens one that must already exist, for the audit and key
commands. A mistyped ``--database``, or a command run outside the deployment's directory, would
otherwise verify a new empty store as "0 records, chain intact".
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.errors import ConfigError, GateError
from app.store.base import Store
from app.store.postgres import PostgresStore
from app.store.sqlite import open_sqlite

POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(url_or_path: str, *, pool_size: int = 4, migrate: bool = True) -> Store:
    """Open (creating or upgrading its schema) the store named by ``url_or_path``.

    ``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``) opens the shared PostgreSQL store with a
    pool of at most ``pool_size`` connections per process; ``sqlite:///ABSOLUTE/PATH.db`` or a path,
    the embedded SQLite store. ``migrate=False`` leaves the schema as it is (``db upgrade``). Raises ConfigError for anything else, SchemaTooNew for a database
    upgraded by a newer gate, ``Unavailable(code='store-unavailable')`` when it cannot be reached.
    """
    value = url_or_path.strip()
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme in POSTGRES_SCHEMES:
        return PostgresStore(value, pool_size=pool_size, migrate=migrate)
    if value.lower().startswith(POSTGRES_SCHEMES):
        # A mistyped URL is not a file name: never create it, and never echo it (it may hold a password).
        raise ConfigError(
            "GATE_DATABASE: this looks like a PostgreSQL URL but is not one; expected "
            "postgresql://USER@HOST:PORT/DB"
        )
    return open_sqlite(value, migrate=migrate)


def upgrade_store(url_or_path: str) -> tuple[int, int]:
    """Apply the missing migrations (``agent-gate db upgrade``); the schema versions before and after.

    Raises SchemaTooNew for a store upgraded by a newer gate, or ``Unavailable``.
    """
    store = open_store(url_or_path, pool_size=1, migrate=False)
    try:
        return store.upgrade()
    finally:
        store.close()


def open_existing_store(url_or_path: str, *, given: bool) -> Store:
    """Open the store at ``url_or_path`` (``given`` on the command line, or configured), refusing one
    that is not there.

    Raises :class:`GateError` (``no-store``) when a SQLite file is missing or holds no audit log.
    """
    path = sqlite_path(url_or_path)
    if path is not None:
        _require_sqlite_store(path, source="--database" if given else "GATE_DATABASE (or GATE_DATA_DIR)")
    # PostgreSQL: never create the schema in a database that has none (migrate=False).
    return open_store(url_or_path, pool_size=1, migrate=path is not None)


def sqlite_path(url_or_path: str) -> Path | None:
    """The file of a SQLite store URL or path; None for other stores."""
    value = url_or_path.strip()
    if "://" not in value:
        return Path(value)
    scheme, rest = value.split("://", 1)
    return Path("/" + rest.lstrip("/")) if scheme.lower() == "sqlite" else None


def _require_sqlite_store(path: Path, *, source: str) -> None:
    if not path.is_file():
        raise GateError(
            f"no store at {path} (from {source}); check the path: this command reads the store the gate "
            "writes and never creates one",
            code="no-store",
        )
    try:
        # Read-only: looking must not create or change anything.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'"
            ).fetchone()
    except sqlite3.Error as exc:
        raise GateError(f"{path} is not an agent-gate store: {exc}", code="no-store") from exc
    if found is None:
        raise GateError(f"{path} is not an agent-gate store: it has no audit log", code="no-store")
