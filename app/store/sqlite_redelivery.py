"""What the redelivery sweep keeps, in the SQLite store: its lease and the redeliveries it asked for.

See :mod:`app.events.redelivery`. The lease is judged by the store's clock: every process sharing
the file runs on this machine, on one clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.store.sqlite_connections import Connections

_CHUNK = 500  # ids per query (SQLite's default limit of bound parameters is far above)


class SQLiteRedelivery:
    """Mixed into :class:`app.store.sqlite.SQLiteStore` (shares its connections and clock)."""

    _db: Connections
    _clock: Callable[[], float]

    def known_deliveries(self, ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        with self._db.failing_as("store-unavailable", "the queued deliveries cannot be read"):
            conn = self._db.get()
            for start in range(0, len(ids), _CHUNK):
                chunk = list(ids[start : start + _CHUNK])
                marks = ", ".join("?" for _ in chunk)
                rows = conn.execute(f"SELECT id FROM jobs WHERE id IN ({marks})", chunk).fetchall()  # noqa: S608  # placeholders only
                known.update(str(r[0]) for r in rows)
        return known

    def redeliveries_asked(self, guids: Sequence[str]) -> dict[str, set[int]]:
        asked: dict[str, set[int]] = {}
        with self._db.failing_as("store-unavailable", "the redeliveries asked cannot be read"):
            conn = self._db.get()
            for start in range(0, len(guids), _CHUNK):
                chunk = list(guids[start : start + _CHUNK])
                marks = ", ".join("?" for _ in chunk)
                rows = conn.execute(
                    f"SELECT guid, delivery_id FROM redeliveries WHERE guid IN ({marks})",  # noqa: S608  # placeholders only
                    chunk,
                ).fetchall()
                for guid, delivery_id in rows:
                    asked.setdefault(str(guid), set()).add(int(delivery_id))
        return asked

    def record_redelivery(self, delivery_id: int, guid: str, *, now: int) -> bool:
        with self._db.failing_as("store-unavailable", "the redelivery cannot be recorded"):
            cur = self._db.get().execute(
                "INSERT INTO redeliveries (delivery_id, guid, asked_at) VALUES (?, ?, ?) "
                "ON CONFLICT (delivery_id) DO NOTHING",
                (int(delivery_id), guid, now),
            )
        return cur.rowcount == 1

    def forget_redeliveries(self, before: int) -> int:
        with self._db.failing_as("store-unavailable", "old redeliveries cannot be purged"):
            cur = self._db.get().execute("DELETE FROM redeliveries WHERE asked_at < ?", (before,))
        return int(cur.rowcount)

    def take_lease(self, name: str, owner: str, seconds: int) -> bool:
        now = int(self._clock())
        with (
            self._db.failing_as("store-unavailable", "the lease cannot be taken"),
            self._db.transaction(durable=False) as conn,
        ):
            cur = conn.execute(
                "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET owner = excluded.owner, until = excluded.until "
                "WHERE leases.until <= ? OR leases.owner = excluded.owner",
                (name, owner, now + int(seconds), now),
            )
            return cur.rowcount == 1
