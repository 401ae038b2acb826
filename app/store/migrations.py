"""Versioned schema migrations, shared by both stores.

Each backend lists its steps in order (``app.store.sqlite_schema``, ``app.store.postgres_schema``):
a step is a version number and plain SQL statements. The database records the versions applied in a table
``schema_migrations`` (one row a step). An upgrade runs under the backend's writer lock, applies
the missing steps in order, each in the same transaction as its row, and refuses a database whose
schema is newer than this gate knows: an older gate must never write to a schema it does not know.

A tiny explicit runner rather than a migration framework (alembic, yoyo): two backends with a dozen
tables, no ORM, and the same five lines of logic on both; the steps are reviewed as plain SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import ConfigError

MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One step of a backend's schema: applied once, in version order, never edited once released."""

    version: int
    name: str
    statements: tuple[str, ...]


class SchemaTooNew(ConfigError):
    """The database was upgraded by a newer gate; this gate refuses to start on it."""

    default_code = "schema-too-new"


def latest(steps: Sequence[Migration]) -> int:
    """The newest version ``steps`` lead to (0 for none)."""
    return steps[-1].version if steps else 0


def pending(current: int, steps: Sequence[Migration], *, where: str) -> list[Migration]:
    """The steps to apply to a database at version ``current``, in order.

    Raises :class:`SchemaTooNew` when the database is at a version ``steps`` do not reach.
    """
    known = latest(steps)
    if current > known:
        raise SchemaTooNew(
            f"the store {where} has schema version {current}, newer than this gate knows ({known}): "
            "a newer agent-gate upgraded it. Run that version (or newer) of the gate; an older gate never "
            "writes to a schema it does not know"
        )
    return [step for step in steps if step.version > current]


def check_order(steps: Sequence[Migration]) -> None:
    """Versions run 1, 2, 3... without gaps (a programming error otherwise)."""
    for index, step in enumerate(steps, 1):
        if step.version != index:
            raise AssertionError(f"migration {step.name!r} has version {step.version}, expected {index}")
