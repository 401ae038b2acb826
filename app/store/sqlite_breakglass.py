"""Break-glass overrides in the SQLite store (the table is migration 3 of ``app.store.sqlite_schema``).

A row is the override's current state; every change is also an audit event of its own
(``break-glass-requested``, ``break-glass-confirmed``, ``break-glass-used``), so the chain, not this
table, is the record a review reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from app.errors import Unavailable
from app.store.sqlite_connections import Connections


class SQLiteBreakGlass:
    """The break-glass half of :class:`app.store.sqlite.SQLiteStore` (mixed in; shares its connections)."""

    _db: Connections
    _clock: Callable[[], float]

    def save_break_glass(self, record: dict[str, Any]) -> None:
        try:
            row = (
                str(record["id"]),
                int(record["repository_id"]),
                str(record["action"]),
                str(record["state"]),
                int(record["expires_at"]),
                int(record["created_at"]),
                json.dumps(record, separators=(",", ":"), sort_keys=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable(
                f"the break-glass cannot be recorded ({exc.__class__.__name__})", code="store-unavailable"
            ) from exc
        with self._db.failing_as("store-unavailable", "the break-glass cannot be recorded"):
            self._db.get().execute(
                "INSERT OR REPLACE INTO break_glass "
                "(id, repository_id, action, state, expires_at, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def find_break_glass(
        self, *, id: str | None = None, repository_id: int | None = None, action: str | None = None,
        state: str | None = None, live_at: int | None = None, since: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Break-glass records matching every given condition, oldest first."""
        sql, args = "SELECT record FROM break_glass WHERE 1 = 1", []
        for column, value in (
            ("id", id),
            ("repository_id", repository_id),
            ("action", action),
            ("state", state),
        ):
            if value is not None:
                sql += f" AND {column} = ?"  # column names are the literals above, never input
                args.append(value)
        if live_at is not None:
            sql += " AND expires_at > ?"
            args.append(live_at)
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(since)
        with self._db.failing_as("store-unavailable", "the break-glass records cannot be read"):
            rows = self._db.get().execute(sql + " ORDER BY created_at, id", args).fetchall()
        try:
            return [r for (text,) in rows if isinstance(r := json.loads(text), dict)]
        except ValueError as exc:
            raise Unavailable(
                "a break-glass record cannot be read (it is not JSON)", code="store-unavailable"
            ) from exc
