"""The embedded store: SQLite in WAL mode, safe with several gunicorn worker processes and threads.

Write transactions queue on the writer lock (``app.store.sqlite_connections``) and run in
``BEGIN IMMEDIATE`` (one writer at a time across processes); ``seq`` is the chain position, a
primary key, so two writers can never both append record N. Audit appends that arrive together
share one transaction and one fsync (``app.store.group``); a decision's replay record, audit record
and page are written in that transaction. Replay records are claimed by an INSERT that does nothing
on conflict: no read-then-write race. Queued jobs are leased inside ``BEGIN IMMEDIATE``
(``app.store.sqlite_queue``). Every sqlite3 error is wrapped into :class:`app.errors.Unavailable`
here; messages for HTTP answers never carry a filesystem path (the log does).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from app.errors import ConfigError, GateError, Unavailable
from app.store.base import Replay, Store
from app.store.canonical import encode_decision, utc_iso
from app.store.chain import AuditChain
from app.store.group import GroupCommit, Outcome, PendingAppend, admit, chain, kept_of, settle
from app.store.migrations import Migration
from app.store.sqlite_breakglass import SQLiteBreakGlass
from app.store.sqlite_connections import Connections
from app.store.sqlite_freeze import SQLiteFreeze
from app.store.sqlite_queue import SQLiteQueue
from app.store.sqlite_redelivery import SQLiteRedelivery
from app.store.sqlite_schema import has_migrations_table, migrate, version

log = logging.getLogger("agent_gate.store")

# Replay rows are kept this long past the token's exp. The verifier accepts a token up to `leeway`
# (at most 60 s) after exp, and clocks of the workers sharing the store may differ a little: a row
# purged while its token is still accepted somewhere would let that token be replayed.
REPLAY_MARGIN_SECONDS = 120

_PAGE = 500  # audit rows read per query: bounded memory, and no read transaction held across pages


class SQLiteStore(AuditChain, SQLiteQueue, SQLiteRedelivery, SQLiteBreakGlass, SQLiteFreeze):
    """The :class:`app.store.base.Store` on one SQLite file; one connection per thread and process."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        clock: Callable[[], float] = time.time,
        migrate: bool = True,
    ) -> None:
        """Open (creating) the file; with ``migrate``, bring its schema to the newest version."""
        self.path = Path(path)
        self._migrate_on_open = migrate
        self._clock = clock
        self._db = Connections(self.path, busy_timeout_ms=busy_timeout_ms)
        self._group = GroupCommit(self._write_batch)
        try:
            self._open(busy_timeout_ms)
        except GateError:
            self._db.close()
            raise

    def _open(self, busy_timeout_ms: int) -> None:
        # Several gunicorn workers may open a fresh file at once. Switching the journal mode can
        # answer "database is locked" at once, without waiting on the busy timeout, so the one-time
        # set-up is retried until the busy timeout has passed.
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                mode = self._set_up()
                break
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._fail_to_open(exc)
            except (OSError, sqlite3.Error) as exc:
                self._fail_to_open(exc)
        if mode.lower() != "wal":
            log.warning(
                "the store %s runs in %r journal mode, not WAL (a network filesystem?): writers still "
                "exclude each other, but readers wait for them",
                self.path,
                mode,
            )

    def _set_up(self) -> str:
        self._db.create_file()
        conn = self._db.get()
        # WAL lets readers work while one writer appends; it persists in the file once set.
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        if self._migrate_on_open:
            self._migrate(conn)
        return mode

    def _migrate(self, conn: sqlite3.Connection) -> list[Migration]:
        steps = migrate(conn, where=str(self.path), now=int(self._clock()))
        if steps:
            log.info("store %s: schema upgraded to version %d", self.path, steps[-1].version)
        return steps

    def upgrade(self) -> tuple[int, int]:
        """Bring the schema to the newest version; returns (version before, version after).

        Opening the store already does this; ``agent-gate db upgrade`` calls it to say what it did.
        Raises SchemaTooNew or ``Unavailable(code='store-unavailable')``.
        """
        with self._db.failing_as("store-unavailable", "the schema cannot be upgraded"):
            conn = self._db.get()
            before = version(conn) if has_migrations_table(conn) else 0
            self._migrate(conn)
            return before, version(conn)

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._db.failing_as("store-unavailable", "the schema version cannot be read"):
            conn = self._db.get()
            return version(conn) if has_migrations_table(conn) else 0

    def _fail_to_open(self, exc: BaseException) -> NoReturn:
        log.error("cannot open the store %s: %s", self.path, exc)
        raise Unavailable(
            f"the store at {self.path} cannot be opened ({exc}); check that its directory is writable "
            "by the gate's user",
            code="store-unavailable",
        ) from exc

    def close(self) -> None:
        """Close every connection; the store refuses further use."""
        self._db.close()

    # -- audit ---------------------------------------------------------------------------------
    def _write_batch(self, batch: list[PendingAppend]) -> list[Outcome]:
        """One ``BEGIN IMMEDIATE`` transaction, committed with one fsync (see app.store.group)."""
        with (
            self._db.failing_as(
                "audit-unavailable",
                "the audit log cannot be written, so nothing was allowed",
                "retry, and tell the gate's operators if it persists",
            ),
            self._db.transaction(durable=True) as conn,
        ):
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()

            def claimed(replay: Replay) -> bool:
                return bool(
                    conn.execute(
                        "INSERT INTO replay (issuer, jti, expires_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (issuer, jti) DO NOTHING",
                        (replay.issuer, replay.jti, replay.expires_at),
                    ).rowcount
                    == 1
                )

            admitted = admit(batch, claimed)
            linked = chain([item for item, ok in zip(batch, admitted, strict=True) if ok], _head(row))
            conn.executemany(
                "INSERT INTO audit (seq, time, kind, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
                [link.row() for link in linked],
            )
            now = int(self._clock())
            pages = [(*link.item.decision, now) for link in linked if link.item.decision is not None]
            if pages:
                conn.executemany(
                    "INSERT OR REPLACE INTO decisions (decision_id, record, created_at) VALUES (?, ?, ?)",
                    pages,
                )
            self._write_kept(conn, *kept_of(linked))
        return settle(admitted, linked)

    def _audit_rows(self, first_seq: int) -> Iterator[tuple[Any, ...]]:
        """Raw rows from ``first_seq`` on, a page per query (keyset: each query is its own snapshot)."""
        after = first_seq - 1
        while True:
            with self._db.failing_as("store-unavailable", "the audit log cannot be read"):
                rows = (
                    self._db.get()
                    .execute(
                        "SELECT seq, time, kind, payload, prev_hash, hash FROM audit WHERE seq > ? "
                        "ORDER BY seq LIMIT ?",
                        (after, _PAGE),
                    )
                    .fetchall()
                )
            yield from rows
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def _first_seq_at(self, since: datetime) -> int | None:
        with self._db.failing_as("store-unavailable", "the audit log cannot be read"):
            row = (
                self._db.get()
                .execute("SELECT MIN(seq) FROM audit WHERE time >= ?", (utc_iso(since),))
                .fetchone()
            )
        return None if row[0] is None else int(row[0])

    def head(self) -> tuple[int, str] | None:
        """The last record's (seq, hash), for auditors to anchor elsewhere."""
        with self._db.failing_as("store-unavailable", "the audit log cannot be read"):
            row = self._db.get().execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else None

    # -- replay --------------------------------------------------------------------------------
    def jti_used(self, issuer: str, jti: str) -> bool:
        """Whether (issuer, jti) has a replay record: a read, no write lock."""
        with self._db.failing_as(
            "store-unavailable", "the replay record cannot be read, so the token was not accepted"
        ):
            row = (
                self._db.get()
                .execute("SELECT 1 FROM replay WHERE issuer = ? AND jti = ?", (issuer, jti))
                .fetchone()
            )
        return row is not None

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        """True the first time (issuer, jti) is seen, False ever after (until purged past expiry)."""
        with self._db.failing_as(
            "store-unavailable", "the replay record cannot be written, so the token was not accepted"
        ):
            cur = self._db.get().execute(
                "INSERT INTO replay (issuer, jti, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (issuer, jti) DO NOTHING",
                (issuer, jti, int(expires_at)),
            )
        return cur.rowcount == 1

    def purge_expired(self) -> int:
        """Drop replay records whose token expired more than ``REPLAY_MARGIN_SECONDS`` ago by the
        store's clock (every worker sharing the file runs on this machine, on this clock)."""
        with self._db.failing_as("store-unavailable", "expired replay records cannot be purged"):
            cur = self._db.get().execute(
                "DELETE FROM replay WHERE expires_at < ?", (int(self._clock()) - REPLAY_MARGIN_SECONDS,)
            )
        return int(cur.rowcount)

    def database_time(self) -> None:
        """None: the file lives on this machine, so the local clock is the database's."""
        return None

    # -- decisions --------------------------------------------------------------
    def save_decision(self, decision_id: str, record: dict[str, Any]) -> None:
        """Keep the full decision for the decision page (replacing one saved under the same id)."""
        text = encode_decision(record)
        with self._db.failing_as("store-unavailable", "the decision record cannot be written"):
            self._db.get().execute(
                "INSERT OR REPLACE INTO decisions (decision_id, created_at, record) VALUES (?, ?, ?)",
                (decision_id, int(self._clock()), text),
            )

    def purge_retained(self, before: int) -> int:
        """Drop decision pages and finished jobs (done or given up) last touched before ``before``.

        The audit chain is never purged here: its export and anchors are the archive.
        """
        with (
            self._db.failing_as("store-unavailable", "old decisions and jobs cannot be purged"),
            self._db.transaction(durable=False) as conn,
        ):
            decisions = conn.execute("DELETE FROM decisions WHERE created_at < ?", (before,)).rowcount
            jobs = conn.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'dead', 'coalesced') AND updated_at < ?", (before,)
            ).rowcount
        return int(decisions) + int(jobs)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        with self._db.failing_as("store-unavailable", "the decision record cannot be read"):
            row = (
                self._db.get()
                .execute("SELECT record FROM decisions WHERE decision_id = ?", (decision_id,))
                .fetchone()
            )
        if row is None:
            return None
        try:
            record = json.loads(row[0])
        except (TypeError, ValueError) as exc:
            raise Unavailable(
                "the decision record cannot be read (it is not JSON)", code="store-unavailable"
            ) from exc
        return record if isinstance(record, dict) else None

    # -- grants and signing keys -----------------------------------------------------------------
    def save_grant(self, record: dict[str, Any]) -> None:
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        with self._db.failing_as("store-unavailable", "the grant cannot be recorded, so it was not issued"):
            self._db.get().execute(f"INSERT INTO grants ({columns}) VALUES ({marks})", tuple(record.values()))  # noqa: S608  # column names are ours

    def get_grant(self, jti: str) -> dict[str, Any] | None:
        with self._db.failing_as("store-unavailable", "the grant record cannot be read"):
            cur = self._db.get().cursor()
            cur.row_factory = sqlite3.Row
            row = cur.execute("SELECT * FROM grants WHERE jti = ?", (jti,)).fetchone()
        return dict(row) if row else None

    def find_grants(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Unrevoked grants matching a fixed SQL condition written by the grant service."""
        query = f"SELECT * FROM grants WHERE revoked_at IS NULL AND ({where})"  # noqa: S608  # callers pass constants
        with self._db.failing_as("store-unavailable", "the grant records cannot be read"):
            cur = self._db.get().cursor()
            cur.row_factory = sqlite3.Row
            rows = cur.execute(query, args).fetchall()
        return [dict(r) for r in rows]

    def revoke_grant(self, jti: str, reason: str, at: int) -> bool:
        """Mark a grant revoked, durably; False when it already was (revocation is idempotent)."""
        with (
            self._db.failing_as("store-unavailable", "the revocation cannot be recorded", "retry"),
            self._db.transaction(durable=True) as conn,
        ):
            cur = conn.execute(
                "UPDATE grants SET revoked_at = ?, revoked_reason = ?, github_token_sealed = NULL "
                "WHERE jti = ? AND revoked_at IS NULL",
                (at, reason, jti),
            )
        return cur.rowcount == 1

    def purge_grants(self, before: int) -> int:
        with self._db.failing_as("store-unavailable", "expired grants cannot be purged"):
            cur = self._db.get().execute("DELETE FROM grants WHERE expires_at < ?", (before,))
        return int(cur.rowcount)

    def signing_keys(self) -> list[dict[str, Any]]:
        with self._db.failing_as("store-unavailable", "the signing keys cannot be read"):
            rows = (
                self._db.get()
                .execute(
                    "SELECT kid, private_pem, created_at, retired_at FROM signing_keys ORDER BY created_at, kid"
                )
                .fetchall()
            )
        return [
            {"kid": r[0], "private_pem": bytes(r[1]), "created_at": r[2], "retired_at": r[3]} for r in rows
        ]

    def add_signing_key(self, kid: str, private_pem: bytes, created_at: int) -> None:
        """Add the current signing key and retire the previous ones, in one durable transaction."""
        with (
            self._db.failing_as("store-unavailable", "the signing key cannot be stored"),
            self._db.transaction(durable=True) as conn,
        ):
            conn.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND kid != '__seal__'",
                (created_at,),
            )
            conn.execute(
                "INSERT INTO signing_keys (kid, private_pem, created_at) VALUES (?, ?, ?)",
                (kid, private_pem, created_at),
            )

    def add_seal_key(self, kid: str, key: bytes, created_at: int) -> None:
        """Keep the key that seals GitHub tokens at rest (never retired with the signing keys)."""
        with (
            self._db.failing_as("store-unavailable", "the sealing key cannot be stored"),
            self._db.transaction(durable=True) as conn,
        ):
            conn.execute(
                "INSERT OR IGNORE INTO signing_keys (kid, private_pem, created_at, retired_at) "
                "VALUES (?, ?, ?, ?)",
                (kid, key, created_at, created_at),
            )

    def max_grant_expiry(self, kid: str) -> int | None:
        """The latest expiry of any grant signed with ``kid``: its public key stays published until then."""
        with self._db.failing_as("store-unavailable", "the grant records cannot be read"):
            row = (
                self._db.get().execute("SELECT MAX(expires_at) FROM grants WHERE kid = ?", (kid,)).fetchone()
            )
        return int(row[0]) if row and row[0] is not None else None

    # -- health --------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """A real write (a heartbeat row). Raises ``Unavailable(code='store-unavailable')``."""
        with self._db.failing_as("store-unavailable", "the store cannot be written", "see the gate's log"):
            self._db.get().execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at",
                (int(self._clock()),),
            )


def _head(row: tuple[Any, ...] | None) -> tuple[int, str] | None:
    return (int(row[0]), str(row[1])) if row else None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def open_sqlite(url_or_path: str, *, migrate: bool = True) -> Store:
    """Open the store named by ``sqlite:///ABSOLUTE/PATH.db`` or a plain file path.

    Raises :class:`ConfigError` for any other form (``postgresql://`` is opened by
    :func:`app.store.opener.open_store`).
    """
    supported = "expected sqlite:///ABSOLUTE/PATH.db, a file path or postgresql://USER@HOST:PORT/DB"
    value = url_or_path.strip()
    if "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() != "sqlite":
            raise ConfigError(
                f"GATE_DATABASE: the {scheme!r} store is not supported by this version; {supported}"
            )
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"GATE_DATABASE: {value!r} names no absolute file path; {supported}")
        if "?" in rest or "#" in rest:
            raise ConfigError(
                f"GATE_DATABASE: {value!r} has URL options, which are not supported; {supported}"
            )
        value = "/" + rest.lstrip("/")  # sqlite:////abs/path.db is the same file
    if not value or value == ":memory:":
        raise ConfigError(
            f"GATE_DATABASE: {url_or_path!r} is not a file; the store must be a file that every worker opens; {supported}"
        )
    return SQLiteStore(Path(value), migrate=migrate)
