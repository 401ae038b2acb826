"""Open a store that must already exist: for the audit and key commands, which never create one.

``open_store`` creates a fresh store where none is (the gate's first start). An auditor's command
must not: a mistyped ``--database``, or a command run outside the deployment's directory, would
otherwise verify a new empty store as "0 records, chain intact".
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.errors import GateError
from app.store.base import Store
from app.store.opener import open_store


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
