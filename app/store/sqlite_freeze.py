"""Agent freezes in the SQLite store (the table is migration 4 of ``app.store.sqlite_schema``).

A row is the freeze's current state (active or lifted); every change is also an audit event of its
own (``freeze-started``, ``freeze-lifted``), so the chain, not this table, is the record a review reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from app.errors import Unavailable
from app.store.sqlite_connections import Connections


class SQLiteFreeze:
    """The freeze half of :class:`app.store.sqlite.SQLiteStore` (mixed in; shares its connections)."""

    _db: Connections
    _clock: Callable[[], float]

    def save_freeze(self, record: dict[str, Any]) -> None:
        try:
            row = (
                str(record["id"]),
                int(record["owner_id"]),
                str(record["state"]),
                int(record["created_at"]),
                json.dumps(record, separators=(",", ":"), sort_keys=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable(
                f"the freeze cannot be recorded ({exc.__class__.__name__})", code="store-unavailable"
            ) from exc
        with self._db.failing_as("store-unavailable", "the freeze cannot be recorded"):
            self._db.get().execute(
                "INSERT OR REPLACE INTO freezes (id, owner_id, state, created_at, record) VALUES (?, ?, ?, ?, ?)",
                row,
            )

    def find_freezes(
        self, *, id: str | None = None, owner_id: int | None = None, state: str | None = None,
        since: int | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Freezes matching every given condition, oldest first."""
        sql, args = "SELECT record FROM freezes WHERE 1 = 1", []
        for column, value in (("id", id), ("owner_id", owner_id), ("state", state)):
            if value is not None:
                sql += f" AND {column} = ?"  # column names are the literals above, never input
                args.append(value)
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(since)
        with self._db.failing_as("store-unavailable", "the freezes cannot be read"):
            rows = self._db.get().execute(sql + " ORDER BY created_at, id", args).fetchall()
        try:
            return [r for (text,) in rows if isinstance(r := json.loads(text), dict)]
        except ValueError as exc:
            raise Unavailable(
                "a freeze record cannot be read (it is not JSON)", code="store-unavailable"
            ) from exc
