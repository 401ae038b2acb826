"""What the redelivery sweep keeps, in the PostgreSQL store: its lease and the redeliveries it asked for.

See :mod:`app.events.redelivery`. The lease is judged by the database's clock
(``clock_timestamp()``), never a replica's: a replica whose clock runs ahead cannot take a lease
another replica still holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.store.postgres_pool import Pool

_NOW = "floor(extract(epoch FROM clock_timestamp()))::bigint"


class PostgresRedelivery:
    """Mixed into :class:`app.store.postgres.PostgresStore` (shares its pool)."""

    _db: Pool

    def known_deliveries(self, ids: Sequence[str]) -> set[str]:
        with (
            self._db.failing_as("store-unavailable", "the queued deliveries cannot be read"),
            self._db.read() as cur,
        ):
            cur.execute("SELECT id FROM jobs WHERE id = ANY(%s::text[])", (list(ids),))
            return {str(r[0]) for r in cur.fetchall()}

    def redeliveries_asked(self, guids: Sequence[str]) -> dict[str, set[int]]:
        asked: dict[str, set[int]] = {}
        with (
            self._db.failing_as("store-unavailable", "the redeliveries asked cannot be read"),
            self._db.read() as cur,
        ):
            cur.execute(
                "SELECT guid, delivery_id FROM redeliveries WHERE guid = ANY(%s::text[])", (list(guids),)
            )
            for guid, delivery_id in cur.fetchall():
                asked.setdefault(str(guid), set()).add(int(delivery_id))
        return asked

    def record_redelivery(self, delivery_id: int, guid: str, *, now: int) -> bool:
        with (
            self._db.failing_as("store-unavailable", "the redelivery cannot be recorded"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "INSERT INTO redeliveries (delivery_id, guid, asked_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (delivery_id) DO NOTHING",
                (int(delivery_id), guid, now),
            )
            return cur.rowcount == 1

    def forget_redeliveries(self, before: int) -> int:
        with (
            self._db.failing_as("store-unavailable", "old redeliveries cannot be purged"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute("DELETE FROM redeliveries WHERE asked_at < %s", (before,))
            return int(cur.rowcount)

    def take_lease(self, name: str, owner: str, seconds: int) -> bool:
        with (
            self._db.failing_as("store-unavailable", "the lease cannot be taken"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute(
                f"INSERT INTO leases (name, owner, until) VALUES (%s, %s, {_NOW} + %s) "  # noqa: S608  # a constant
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                f"WHERE leases.until <= {_NOW} OR leases.owner = excluded.owner",
                (name, owner, int(seconds)),
            )
            return cur.rowcount == 1
