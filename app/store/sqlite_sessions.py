"""Page sessions in the SQLite store (the table is migration 5 of ``app.store.sqlite_schema``).

A login to the decision pages is valid only while its row is live: logging out ends the row, and an
operator's ``agent-gate sessions end-all`` ends every row, so a copied cookie stops working at once.
The row is keyed by the sha256 of the session's random id: the store never holds the id itself.
"""

from __future__ import annotations

from app.store.sqlite_connections import Connections


class SQLiteSessions:
    """The page-session half of :class:`app.store.sqlite.SQLiteStore` (mixed in; shares its connections)."""

    _db: Connections

    def start_session(self, session_hash: str, user_id: int, *, now: int, expires_at: int) -> None:
        with self._db.failing_as("store-unavailable", "the login cannot be recorded"):
            conn = self._db.get()
            conn.execute("DELETE FROM page_sessions WHERE expires_at <= ?", (now,))  # expired ones go
            conn.execute(
                "INSERT OR REPLACE INTO page_sessions (id, user_id, started_at, expires_at) VALUES (?, ?, ?, ?)",
                (session_hash, user_id, now, expires_at),
            )

    def session_live(self, session_hash: str, *, now: int) -> bool:
        with self._db.failing_as("store-unavailable", "the login cannot be checked"):
            row = (
                self._db.get()
                .execute(
                    "SELECT 1 FROM page_sessions WHERE id = ? AND ended_at IS NULL AND expires_at > ?",
                    (session_hash, now),
                )
                .fetchone()
            )
        return row is not None

    def end_session(self, session_hash: str, *, now: int) -> bool:
        with self._db.failing_as("store-unavailable", "the logout cannot be recorded"):
            cur = self._db.get().execute(
                "UPDATE page_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (now, session_hash)
            )
        return cur.rowcount > 0

    def end_all_sessions(self, *, now: int) -> int:
        with self._db.failing_as("store-unavailable", "the sessions cannot be ended"):
            cur = self._db.get().execute(
                "UPDATE page_sessions SET ended_at = ? WHERE ended_at IS NULL AND expires_at > ?", (now, now)
            )
        return cur.rowcount
