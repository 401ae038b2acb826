"""Agent freezes in the PostgreSQL store (the table is migration 4 of ``app.store.postgres_schema``);
the same contract as :mod:`app.store.sqlite_freeze`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from psycopg.rows import tuple_row

from app.errors import Unavailable
from app.store.postgres_pool import Pool


class PostgresFreeze:
    """The freeze half of :class:`app.store.postgres.PostgresStore` (mixed in; shares its pool)."""

    _db: Pool
    _clock: Callable[[], float]

    def save_freeze(self, record: dict[str, Any]) -> None:
        try:
            row = (
                str(record["id"]), int(record["owner_id"]), str(record["state"]), int(record["created_at"]),
                json.dumps(record, separators=(",", ":"), sort_keys=True),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable(
                f"the freeze cannot be recorded ({exc.__class__.__name__})", code="store-unavailable"
            ) from exc
        with (
            self._db.failing_as("store-unavailable", "the freeze cannot be recorded"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "INSERT INTO freezes (id, owner_id, state, created_at, record) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, record = excluded.record",
                row,
            )

    def find_freezes(
        self, *, id: str | None = None, owner_id: int | None = None, state: str | None = None,
        since: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Freezes matching every given condition, oldest first."""
        with (
            self._db.failing_as("store-unavailable", "the freezes cannot be read"),
            self._db.transaction(tuple_row) as cur,
        ):
            cur.execute(
                "SELECT record FROM freezes WHERE (%s::text IS NULL OR id = %s) "
                "AND (%s::bigint IS NULL OR owner_id = %s) AND (%s::text IS NULL OR state = %s) "
                "AND (%s::bigint IS NULL OR created_at >= %s) ORDER BY created_at, id",
                (id, id, owner_id, owner_id, state, state, since, since),
            )
            rows = cur.fetchall()
        try:
            return [r for (text,) in rows if isinstance(r := json.loads(text), dict)]
        except ValueError as exc:
            raise Unavailable(
                "a freeze record cannot be read (it is not JSON)", code="store-unavailable"
            ) from exc
