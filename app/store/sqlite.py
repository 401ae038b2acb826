"""The embedded store: SQLite in WAL mode, safe with several gunicorn worker processes.

Audit appends are serialised by ``BEGIN IMMEDIATE`` (one writer at a time across processes) and
``seq`` is the chain position with a UNIQUE constraint, so two writers can never both append record
N. Replay records are claimed by an INSERT that fails on conflict: no read-then-write race.
Every sqlite3 error is wrapped into :class:`app.errors.Unavailable` at this boundary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.errors import ConfigError, Unavailable
from app.store.base import AuditRecord, ChainReport, Store
from app.store.canonical import GENESIS, record_hash

log = logging.getLogger("agent_gate.store")

# Replay rows are kept this long past the token's exp: the verifier accepts exp with up to 60 s
# of leeway, so a row must outlive that window or a replay could slip through after a purge.
REPLAY_MARGIN_SECONDS = 120

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
CREATE TABLE IF NOT EXISTS replay (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    jti TEXT PRIMARY KEY,
    kid TEXT NOT NULL,
    parent_jti TEXT,
    decision_id TEXT NOT NULL,
    repository_id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    run_attempt INTEGER NOT NULL,
    pull_request INTEGER,
    sha TEXT NOT NULL,
    audience TEXT NOT NULL,
    permission TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    github_token_sha256 TEXT,
    github_token_sealed BLOB,
    revoked_at INTEGER,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS grants_pr ON grants(repository_id, pull_request);
CREATE INDEX IF NOT EXISTS grants_parent ON grants(parent_jti);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    private_pem BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
"""


class SQLiteStore:
    """The :class:`app.store.base.Store` on one SQLite file; one connection per thread."""

    def __init__(
        self, path: Path, *, busy_timeout_ms: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = self._conn()
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise Unavailable(f"the store cannot be opened: {exc}", code="store-unavailable") from exc

    # -- connections ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so the transaction kinds are explicit.
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None, check_same_thread=True
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: an audit record acknowledged to a client survives a power loss, at the cost of an
            # fsync per commit (decisions are rare next to that cost).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                # Closing another thread's connection may fail; that thread's connection dies with it.
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- audit ---------------------------------------------------------------------------------
    def append_audit(
        self, kind: str, payload: dict[str, Any], *, time: datetime | None = None
    ) -> AuditRecord:
        when = (time or datetime.fromtimestamp(self._clock(), UTC)).astimezone(UTC)
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                digest = record_hash(seq, when, kind, payload, prev)
                conn.execute(
                    "INSERT INTO audit (seq, time, kind, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        _iso(when),
                        kind,
                        json.dumps(payload, sort_keys=True, separators=(",", ":")),
                        prev,
                        digest,
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, TypeError, ValueError) as exc:
            log.error("audit append failed (%s): %s", self.path, exc)
            raise Unavailable(
                "the audit log cannot be written, so nothing was allowed; retry, and tell the gate's operators "
                "if it persists",
                code="audit-unavailable",
            ) from exc
        return AuditRecord(seq=seq, time=when, kind=kind, payload=payload, prev_hash=prev, hash=digest)

    def iter_audit(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        conn = self._conn()
        query = "SELECT seq, time, kind, payload, prev_hash, hash FROM audit"
        args: tuple[Any, ...] = ()
        if since is not None:
            query += " WHERE time >= ?"
            args = (_iso(since.astimezone(UTC)),)
        try:
            rows = conn.execute(query + " ORDER BY seq", args).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"the audit log cannot be read: {exc}", code="store-unavailable") from exc
        for seq, when, kind, payload, prev, digest in rows:
            yield AuditRecord(
                seq=seq,
                time=datetime.fromisoformat(when),
                kind=kind,
                payload=json.loads(payload),
                prev_hash=prev,
                hash=digest,
            )

    def verify_audit(self) -> ChainReport:
        expected_seq = 1
        prev = GENESIS
        count = 0
        for record in self.iter_audit():
            count += 1
            if record.seq != expected_seq:
                return ChainReport(
                    False,
                    count,
                    record.seq,
                    f"record {expected_seq} is missing (the next record is {record.seq}): deleted?",
                )
            if record.prev_hash != prev:
                return ChainReport(
                    False,
                    count,
                    record.seq,
                    f"record {record.seq} does not link to record {record.seq - 1}: deleted or reordered?",
                )
            actual = record_hash(record.seq, record.time, record.kind, record.payload, record.prev_hash)
            if actual != record.hash:
                return ChainReport(
                    False,
                    count,
                    record.seq,
                    f"record {record.seq}: its hash does not match its contents: edited?",
                )
            prev = record.hash
            expected_seq += 1
        return ChainReport(True, count)

    def head(self) -> tuple[int, str] | None:
        """The last record's (seq, hash), for auditors to anchor elsewhere."""
        row = self._conn().execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else None

    # -- replay --------------------------------------------------------------------------------
    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        try:
            self._conn().execute(
                "INSERT INTO replay (issuer, jti, expires_at) VALUES (?, ?, ?)",
                (issuer, jti, int(expires_at)),
            )
            return True
        except sqlite3.IntegrityError:
            return False
        except sqlite3.Error as exc:
            log.error("replay record failed (%s): %s", self.path, exc)
            raise Unavailable(
                "the replay record cannot be written, so the token was not accepted; retry later",
                code="store-unavailable",
            ) from exc

    def purge_expired(self, now: int) -> int:
        try:
            cur = self._conn().execute(
                "DELETE FROM replay WHERE expires_at < ?", (int(now) - REPLAY_MARGIN_SECONDS,)
            )
            return int(cur.rowcount)
        except sqlite3.Error as exc:
            raise Unavailable(f"the store cannot be written: {exc}", code="store-unavailable") from exc

    # -- decisions and deliveries --------------------------------------------------------------
    def save_decision(self, decision_id: str, record: dict[str, Any]) -> None:
        try:
            self._conn().execute(
                "INSERT OR REPLACE INTO decisions (decision_id, created_at, record) VALUES (?, ?, ?)",
                (decision_id, int(self._clock()), json.dumps(record, separators=(",", ":"))),
            )
        except sqlite3.Error as exc:
            raise Unavailable("the decision record cannot be written", code="store-unavailable") from exc

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute("SELECT record FROM decisions WHERE decision_id = ?", (decision_id,))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def claim_delivery(self, delivery_id: str, event: str) -> bool:
        """Record a webhook delivery; False when it was processed already (a redelivery)."""
        try:
            self._conn().execute(
                "INSERT INTO deliveries (delivery_id, event, received_at) VALUES (?, ?, ?)",
                (delivery_id, event, int(self._clock())),
            )
            return True
        except sqlite3.IntegrityError:
            return False
        except sqlite3.Error as exc:
            raise Unavailable("the webhook delivery cannot be recorded", code="store-unavailable") from exc

    # -- grants and signing keys -----------------------------------------------------------------
    def save_grant(self, record: dict[str, Any]) -> None:
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        try:
            self._conn().execute(f"INSERT INTO grants ({columns}) VALUES ({marks})", tuple(record.values()))  # noqa: S608  # column names are ours
        except sqlite3.Error as exc:
            raise Unavailable(
                "the grant cannot be recorded, so it was not issued", code="store-unavailable"
            ) from exc

    def get_grant(self, jti: str) -> dict[str, Any] | None:
        conn = self._conn()
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM grants WHERE jti = ?", (jti,)).fetchone()
        finally:
            conn.row_factory = None
        return dict(row) if row else None

    def find_grants(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Unrevoked grants matching a fixed SQL condition written by the grant service."""
        conn = self._conn()
        conn.row_factory = sqlite3.Row
        try:
            query = f"SELECT * FROM grants WHERE revoked_at IS NULL AND ({where})"  # noqa: S608  # callers pass constants
            rows = conn.execute(query, args).fetchall()
        finally:
            conn.row_factory = None
        return [dict(r) for r in rows]

    def revoke_grant(self, jti: str, reason: str, at: int) -> bool:
        """Mark a grant revoked; False when it already was (revocation is idempotent)."""
        try:
            cur = self._conn().execute(
                "UPDATE grants SET revoked_at = ?, revoked_reason = ?, github_token_sealed = NULL "
                "WHERE jti = ? AND revoked_at IS NULL",
                (at, reason, jti),
            )
        except sqlite3.Error as exc:
            raise Unavailable("the revocation cannot be recorded; retry", code="store-unavailable") from exc
        return cur.rowcount == 1

    def purge_grants(self, before: int) -> int:
        cur = self._conn().execute("DELETE FROM grants WHERE expires_at < ?", (before,))
        return int(cur.rowcount)

    def signing_keys(self) -> list[dict[str, Any]]:
        rows = (
            self._conn()
            .execute(
                "SELECT kid, private_pem, created_at, retired_at FROM signing_keys ORDER BY created_at, kid"
            )
            .fetchall()
        )
        return [
            {"kid": r[0], "private_pem": bytes(r[1]), "created_at": r[2], "retired_at": r[3]} for r in rows
        ]

    def add_signing_key(self, kid: str, private_pem: bytes, created_at: int) -> None:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND kid != '__seal__'",
                (created_at,),
            )
            conn.execute(
                "INSERT INTO signing_keys (kid, private_pem, created_at) VALUES (?, ?, ?)",
                (kid, private_pem, created_at),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise Unavailable("the signing key cannot be stored", code="store-unavailable") from exc

    def add_seal_key(self, kid: str, key: bytes, created_at: int) -> None:
        """Keep the key that seals GitHub tokens at rest (never retired with the signing keys)."""
        try:
            self._conn().execute(
                "INSERT OR IGNORE INTO signing_keys (kid, private_pem, created_at, retired_at) VALUES (?, ?, ?, ?)",
                (kid, key, created_at, created_at),
            )
        except sqlite3.Error as exc:
            raise Unavailable("the sealing key cannot be stored", code="store-unavailable") from exc

    def max_grant_expiry(self, kid: str) -> int | None:
        """The latest expiry of any grant signed with ``kid``: its public key stays published until then."""
        row = self._conn().execute("SELECT MAX(expires_at) FROM grants WHERE kid = ?", (kid,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # -- health --------------------------------------------------------------------------------
    def check_writable(self) -> None:
        try:
            self._conn().execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at",
                (int(self._clock()),),
            )
        except sqlite3.Error as exc:
            log.error("store not writable (%s): %s", self.path, exc)
            raise Unavailable(
                f"the store cannot be written: {exc.__class__.__name__}", code="store-unavailable"
            ) from exc


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def open_store(url_or_path: str) -> Store:
    """Open the store named by ``sqlite:///abs/path.db`` or a plain path."""
    if url_or_path.startswith("sqlite:///"):
        return SQLiteStore(Path(url_or_path.removeprefix("sqlite://")))
    if "://" in url_or_path:
        scheme = url_or_path.split("://", 1)[0]
        raise ConfigError(
            f"GATE_DATABASE: the {scheme!r} store is not supported by this version; expected sqlite:///PATH or a path"
        )
    return SQLiteStore(Path(url_or_path))
