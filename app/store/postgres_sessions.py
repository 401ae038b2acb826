"""Page sessions in the PostgreSQL store (the table is migration 5 of ``app.store.postgres_schema``);
the same contract as :mod:`app.store.sqlite_sessions`."""

from __future__ import annotations

from app.store.postgres_pool import Pool


class PostgresSessions:
    """The page-session half of :class:`app.store.postgres.PostgresStore` (mixed in; shares its pool)."""

    _db: Pool

    def start_session(self, session_hash: str, user_id: int, *, now: int, expires_at: int) -> None:
        with (
            self._db.failing_as("store-unavailable", "the login cannot be recorded"),
            self._db.transaction() as cur,
        ):
            cur.execute("DELETE FROM page_sessions WHERE expires_at <= %s", (now,))  # expired ones go
            cur.execute(
                "INSERT INTO page_sessions (id, user_id, started_at, expires_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                (session_hash, user_id, now, expires_at),
            )

    def session_live(self, session_hash: str, *, now: int) -> bool:
        with (
            self._db.failing_as("store-unavailable", "the login cannot be checked"),
            self._db.read() as cur,
        ):
            cur.execute(
                "SELECT 1 FROM page_sessions WHERE id = %s AND ended_at IS NULL AND expires_at > %s",
                (session_hash, now),
            )
            return cur.fetchone() is not None

    def end_session(self, session_hash: str, *, now: int) -> bool:
        with (
            self._db.failing_as("store-unavailable", "the logout cannot be recorded"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "UPDATE page_sessions SET ended_at = %s WHERE id = %s AND ended_at IS NULL",
                (now, session_hash),
            )
            return cur.rowcount > 0

    def end_all_sessions(self, *, now: int) -> int:
        with (
            self._db.failing_as("store-unavailable", "the sessions cannot be ended"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "UPDATE page_sessions SET ended_at = %s WHERE ended_at IS NULL AND expires_at > %s",
                (now, now),
            )
            return cur.rowcount
