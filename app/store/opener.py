"""Open the store that ``GATE_DATABASE`` names: a SQLite file, or a PostgreSQL database for replicas."""

from __future__ import annotations

from app.errors import ConfigError
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


def upgrade_store(url_or_path: str) -> str:
    """Apply the missing migrations (``agent-gate db upgrade``); says what it did.

    Raises SchemaTooNew for a store upgraded by a newer gate, or ``Unavailable``.
    """
    store = open_store(url_or_path, pool_size=1, migrate=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    return (
        f"schema version {after} (up to date)" if before == after else f"schema version {before} -> {after}"
    )
