"""Break-glass overrides in the PostgreSQL store (the table is migration 3 of
``app.store.postgres_schema``); the same contract as :mod:`app.store.sqlite_breakglass`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from psycopg.rows import tuple_row

from app.errors import Unavailable
from app.store.postgres_pool import Pool


class PostgresBreakGlass:
    """The break-glass half of :class:`app.store.postgres.PostgresStore` (mixed in; shares its pool)."""

    _db: Pool
    _clock: Callable[[], float]

    def save_break_glass(self, record: dict[str, Any]) -> None:
        try:
            row = (
                str(record["id"]), int(record["repository_id"]), str(record["action"]), str(record["state"]),
                int(record["expires_at"]), int(record["created_at"]),
                json.dumps(record, separators=(",", ":"), sort_keys=True),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable(
                f"the break-glass cannot be recorded ({exc.__class__.__name__})", code="store-unavailable"
            ) from exc
        with (
            self._db.failing_as("store-unavailable", "the break-glass cannot be recorded"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "INSERT INTO break_glass (id, repository_id, action, state, expires_at, created_at, record) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                "expires_at = excluded.expires_at, record = excluded.record",
                row,
            )

    def find_break_glass(
        self, *, id: str | None = None, repository_id: int | None = None, action: str | None = None,
        state: str | None = None, live_at: int | None = None, since: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Break-glass records matching every given condition, oldest first."""
        with (
            self._db.failing_as("store-unavailable", "the break-glass records cannot be read"),
            self._db.transaction(tuple_row) as cur,
        ):
            cur.execute(
                "SELECT record FROM break_glass WHERE (%s::text IS NULL OR id = %s) "
                "AND (%s::bigint IS NULL OR repository_id = %s) AND (%s::text IS NULL OR action = %s) "
                "AND (%s::text IS NULL OR state = %s) AND (%s::bigint IS NULL OR expires_at > %s) "
                "AND (%s::bigint IS NULL OR created_at >= %s) ORDER BY created_at, id",
                (
                    id,
                    id,
                    repository_id,
                    repository_id,
                    action,
                    action,
                    state,
                    state,
                    live_at,
                    live_at,
                    since,
                    since,
                ),
            )
            rows = cur.fetchall()
        try:
            return [r for (text,) in rows if isinstance(r := json.loads(text), dict)]
        except ValueError as exc:
            raise Unavailable(
                "a break-glass record cannot be read (it is not JSON)", code="store-unavailable"
            ) from exc
