"""The shared store for several replicas: PostgreSQL through psycopg 3 and a bounded pool.

Replay: ``(issuer, jti)`` is the primary key and a claim is an INSERT that does nothing on conflict,
so exactly one claim succeeds whatever replica, worker or thread makes it. Audit: appends are
serialised by a transaction-scoped advisory lock (:data:`AUDIT_LOCK`), taken before the head is read
and released by the commit, so every replica appends after the last committed record and ``seq`` (a
primary key) stays gap-free; the lock is held for a batch's insert and its commit, one batch at a
time across all replicas. Appends of one process that arrive together form that batch
(``app.store.group``), with their tokens' replay records and their decision pages, in one
transaction. The queue is in :mod:`app.store.postgres_queue`. Every psycopg error is wrapped into
:class:`app.errors.Unavailable` (see :mod:`app.store.postgres_pool`); no message carries the password.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.errors import GateError, Unavailable
from app.store.base import Replay
from app.store.canonical import encode_decision, utc_iso
from app.store.chain import AuditChain
from app.store.group import GroupCommit, Linked, Outcome, PendingAppend, admit, chain, kept_of, settle
from app.store.migrations import MIGRATIONS_TABLE, pending
from app.store.postgres_breakglass import PostgresBreakGlass
from app.store.postgres_freeze import PostgresFreeze
from app.store.postgres_pool import Pool
from app.store.postgres_queue import PostgresQueue
from app.store.postgres_redelivery import PostgresRedelivery
from app.store.postgres_schema import STEPS

log = logging.getLogger("agent_gate.store")

# Same margin as the SQLite store (see app.store.sqlite.REPLAY_MARGIN_SECONDS for why).
REPLAY_MARGIN_SECONDS = 120

# Advisory lock keys (one 64-bit space per database, shared with any other application in it):
# "agent-gate audit" and "agent-gate migrations" as big-endian integers, truncated to 63 bits.
AUDIT_LOCK = int.from_bytes(b"ag-audit", "big") & (2**63 - 1)
MIGRATION_LOCK = int.from_bytes(b"ag-migr8", "big") & (2**63 - 1)

_PAGE = 500


class PostgresStore(AuditChain, PostgresQueue, PostgresRedelivery, PostgresBreakGlass, PostgresFreeze):
    """The :class:`app.store.base.Store` on one PostgreSQL database, shared by every replica."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        pool_timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
        migrate: bool = True,
    ) -> None:
        """Open the pool; with ``migrate``, bring the schema to the newest version."""
        self._clock = clock
        self._db = Pool(url, size=pool_size, timeout=pool_timeout)
        self._group = GroupCommit(self._write_batch)
        self.where = self._db.where
        try:
            with self._db.failing_as(
                "store-unavailable",
                f"the store at {self.where} cannot be opened",
                "check that the server runs and the URL, user and database are right",
            ):
                self._db.open()
                if migrate:
                    self._migrate()
        except GateError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    # -- schema --------------------------------------------------------------------------------
    def _migrate(self) -> tuple[int, int]:
        """Apply the missing steps under the migration lock. Raises SchemaTooNew, psycopg.Error."""
        # A read first: an up-to-date database (every open but the first) takes no lock at all.
        with self._db.transaction() as cur:
            current = _version(cur)
        if not pending(current, STEPS, where=self.where):
            return current, current
        with self._db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            current = _version(cur)
            steps = pending(current, STEPS, where=self.where)
            for step in steps:
                for statement in step.statements:
                    cur.execute(statement)  # plain SQL, no parameters
                cur.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (%s, %s, %s)",  # noqa: S608  # a constant
                    (step.version, step.name, int(self._clock())),
                )
        after = steps[-1].version if steps else current
        if steps:
            log.info("store %s: schema upgraded from version %d to %d", self.where, current, after)
        return current, after

    def upgrade(self) -> tuple[int, int]:
        """Bring the schema to the newest version; returns (version before, version after)."""
        with self._db.failing_as("store-unavailable", "the schema cannot be upgraded"):
            return self._migrate()

    def schema_version(self) -> int:
        with (
            self._db.failing_as("store-unavailable", "the schema version cannot be read"),
            self._db.transaction() as cur,
        ):
            return _version(cur)

    # -- audit ---------------------------------------------------------------------------------
    def _write_batch(self, batch: list[PendingAppend]) -> list[Outcome]:
        """One transaction: the replay records, then the chain and the decision pages under
        :data:`AUDIT_LOCK`."""
        with (
            self._db.failing_as(
                "audit-unavailable",
                "the audit log cannot be written, so nothing was allowed",
                "retry, and tell the gate's operators if it persists",
            ),
            self._db.transaction() as cur,
        ):
            # Before the lock, which is held for as little as possible: the replay records (a
            # conflict with another replica's uncommitted record waits for its commit, then skips)...
            fresh = self._claim_replays(cur, [item.replay for item in batch if item.replay is not None])

            def claimed(replay: Replay) -> bool:
                key = (replay.issuer, replay.jti)
                if key not in fresh:
                    return False
                fresh.discard(key)  # a second append of the same batch with this token is a replay
                return True

            admitted = admit(batch, claimed)
            kept = [item for item, ok in zip(batch, admitted, strict=True) if ok]
            # ...then the chain. The lock is released by the commit (or rollback) of this
            # transaction, never earlier: the next appender's head read is a new statement (with a
            # new snapshot), so it sees this batch committed.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
            cur.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
            linked = chain(kept, (int(row[0]), str(row[1])) if row else None)
            self._insert_records(cur, linked)
            self._write_kept(cur, *kept_of(linked))
        return settle(admitted, linked)

    def _insert_records(self, cur: psycopg.Cursor[Any], linked: list[Linked]) -> None:
        """The batch's audit records and decision pages in one statement (one round trip; psycopg's
        executemany pipelines, which measured slower here than one statement over arrays)."""
        if not linked:
            return
        pages = {
            item.decision[0]: item.decision[1] for item in (link.item for link in linked) if item.decision
        }
        columns = list(zip(*(link.row() for link in linked), strict=True))
        cur.execute(
            "WITH pages AS (INSERT INTO decisions (decision_id, record, created_at) "
            "SELECT d, r, %s FROM unnest(%s::text[], %s::text[]) AS p(d, r) "
            "ON CONFLICT (decision_id) DO UPDATE SET created_at = excluded.created_at, record = excluded.record) "
            "INSERT INTO audit (seq, time, kind, payload, prev_hash, hash) "
            "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])",
            (int(self._clock()), list(pages), list(pages.values()), *(list(c) for c in columns)),
        )

    @staticmethod
    def _claim_replays(cur: psycopg.Cursor[Any], replays: list[Replay]) -> set[tuple[str, str]]:
        """Insert the replay records; the (issuer, jti) that were new.

        In sorted order: two replicas' batches holding the same tokens then wait for each other's
        rows in the same order, never in a circle (a deadlock would fail both batches).
        """
        if not replays:
            return set()
        replays = sorted(replays, key=lambda r: (r.issuer, r.jti))
        cur.execute(
            "INSERT INTO replay (issuer, jti, expires_at) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
            "ON CONFLICT (issuer, jti) DO NOTHING RETURNING issuer, jti",
            ([r.issuer for r in replays], [r.jti for r in replays], [r.expires_at for r in replays]),
        )
        return {(str(issuer), str(jti)) for issuer, jti in cur.fetchall()}

    def _audit_rows(self, first_seq: int) -> Iterator[tuple[Any, ...]]:
        after = first_seq - 1
        while True:
            with (
                self._db.failing_as("store-unavailable", "the audit log cannot be read"),
                self._db.transaction() as cur,
            ):
                cur.execute(
                    "SELECT seq, time, kind, payload, prev_hash, hash FROM audit WHERE seq > %s "
                    "ORDER BY seq LIMIT %s",
                    (after, _PAGE),
                )
                rows = cur.fetchall()
            yield from rows
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def _first_seq_at(self, since: datetime) -> int | None:
        row = self._one(
            "the audit log cannot be read", "SELECT MIN(seq) FROM audit WHERE time >= %s", (utc_iso(since),)
        )
        return None if row is None or row[0] is None else int(row[0])

    def head(self) -> tuple[int, str] | None:
        row = self._one(
            "the audit log cannot be read", "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
        )
        return (int(row[0]), str(row[1])) if row else None

    # -- replay --------------------------------------------------------------------------------
    def jti_used(self, issuer: str, jti: str) -> bool:
        """Whether (issuer, jti) has a committed replay record."""
        return (
            self._one(
                "the replay record cannot be read, so the token was not accepted",
                "SELECT 1 FROM replay WHERE issuer = %s AND jti = %s",
                (issuer, jti),
            )
            is not None
        )

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        """True the first time (issuer, jti) is seen by any replica, False ever after (until purged)."""
        return (
            self._write(
                "the replay record cannot be written, so the token was not accepted",
                "INSERT INTO replay (issuer, jti, expires_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (issuer, jti) DO NOTHING",
                (issuer, jti, int(expires_at)),
            )
            == 1
        )

    def purge_expired(self) -> int:
        """Drop replay records whose token expired more than ``REPLAY_MARGIN_SECONDS`` ago by the
        database's clock: a replica whose own clock runs ahead purges nothing the others still need."""
        return self._write(
            "expired replay records cannot be purged",
            "DELETE FROM replay WHERE expires_at < floor(extract(epoch FROM clock_timestamp()))::bigint - %s",
            (REPLAY_MARGIN_SECONDS,),
        )

    def database_time(self) -> float:
        """PostgreSQL's ``clock_timestamp()`` in unix seconds: the one clock of every replica."""
        row = self._one(
            "the database's clock cannot be read", "SELECT extract(epoch FROM clock_timestamp())::float8"
        )
        if row is None:  # pragma: no cover - a SELECT without FROM always answers one row
            raise Unavailable("the database's clock cannot be read", code="store-unavailable")
        return float(row[0])

    # -- decisions -------------------------------------------------------------------------------
    def save_decision(self, decision_id: str, record: dict[str, Any]) -> None:
        self._write(
            "the decision record cannot be written",
            "INSERT INTO decisions (decision_id, created_at, record) VALUES (%s, %s, %s) "
            "ON CONFLICT (decision_id) DO UPDATE SET created_at = excluded.created_at, record = excluded.record",
            (decision_id, int(self._clock()), encode_decision(record)),
        )

    def purge_retained(self, before: int) -> int:
        """Drop decision pages and finished jobs (done or given up) last touched before ``before``.

        The audit chain is never purged here: its export and anchors are the archive.
        """
        with (
            self._db.failing_as("store-unavailable", "old decisions and jobs cannot be purged"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute("DELETE FROM decisions WHERE created_at < %s", (before,))
            decisions = cur.rowcount
            cur.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'dead', 'coalesced') AND updated_at < %s", (before,)
            )
            return int(decisions) + int(cur.rowcount)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        row = self._one(
            "the decision record cannot be read",
            "SELECT record FROM decisions WHERE decision_id = %s",
            (decision_id,),
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
        marks = ", ".join("%s" for _ in record)
        self._write(
            "the grant cannot be recorded, so it was not issued",
            f"INSERT INTO grants ({columns}) VALUES ({marks})",  # noqa: S608  # column names are ours
            tuple(record.values()),
        )

    def get_grant(self, jti: str) -> dict[str, Any] | None:
        rows = self._dicts("the grant record cannot be read", "SELECT * FROM grants WHERE jti = %s", (jti,))
        return rows[0] if rows else None

    def find_grants(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Unrevoked grants matching a fixed SQL condition (``?`` placeholders) written by the grant service."""
        condition = where.replace("?", "%s")  # callers pass constants without literals
        return self._dicts(
            "the grant records cannot be read",
            f"SELECT * FROM grants WHERE revoked_at IS NULL AND ({condition})",  # noqa: S608  # callers pass constants
            args,
        )

    def revoke_grant(self, jti: str, reason: str, at: int) -> bool:
        return (
            self._write(
                "the revocation cannot be recorded",
                "UPDATE grants SET revoked_at = %s, revoked_reason = %s, github_token_sealed = NULL "
                "WHERE jti = %s AND revoked_at IS NULL",
                (at, reason, jti),
                advice="retry",
                durable=True,
            )
            == 1
        )

    def purge_grants(self, before: int) -> int:
        return self._write(
            "expired grants cannot be purged", "DELETE FROM grants WHERE expires_at < %s", (before,)
        )

    def signing_keys(self) -> list[dict[str, Any]]:
        rows = self._dicts(
            "the signing keys cannot be read",
            "SELECT kid, private_pem, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        for row in rows:
            row["private_pem"] = bytes(row["private_pem"])
        return rows

    def add_signing_key(self, kid: str, private_pem: bytes, created_at: int) -> None:
        """Add the current signing key and retire the previous ones, in one transaction."""
        with (
            self._db.failing_as("store-unavailable", "the signing key cannot be stored"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "UPDATE signing_keys SET retired_at = %s WHERE retired_at IS NULL AND kid != '__seal__'",
                (created_at,),
            )
            cur.execute(
                "INSERT INTO signing_keys (kid, private_pem, created_at) VALUES (%s, %s, %s)",
                (kid, private_pem, created_at),
            )

    def add_seal_key(self, kid: str, key: bytes, created_at: int) -> None:
        self._write(
            "the sealing key cannot be stored",
            "INSERT INTO signing_keys (kid, private_pem, created_at, retired_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (kid) DO NOTHING",
            (kid, key, created_at, created_at),
            durable=True,
        )

    def max_grant_expiry(self, kid: str) -> int | None:
        row = self._one(
            "the grant records cannot be read", "SELECT MAX(expires_at) FROM grants WHERE kid = %s", (kid,)
        )
        return int(row[0]) if row and row[0] is not None else None

    # -- health --------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """A real write (a heartbeat row). Raises ``Unavailable(code='store-unavailable')``."""
        with (
            self._db.failing_as("store-unavailable", "the store cannot be written", "see the gate's log"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (int(self._clock()),),
            )

    # -- one-statement helpers -------------------------------------------------------------------
    def _write(
        self,
        what: str,
        sql: str,
        args: tuple[Any, ...] = (),
        *,
        advice: str = "retry later",
        durable: bool = False,
    ) -> int:
        """One statement in its own transaction; its row count. Not fsynced unless ``durable``."""
        with (
            self._db.failing_as("store-unavailable", what, advice),
            self._db.transaction(durable=durable) as cur,
        ):
            cur.execute(sql, args)
            return int(cur.rowcount)

    def _one(self, what: str, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._db.failing_as("store-unavailable", what), self._db.read() as cur:
            cur.execute(sql, args)
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

    def _dicts(self, what: str, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._db.failing_as("store-unavailable", what), self._db.read(dict_row) as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())


def _version(cur: psycopg.Cursor[Any]) -> int:
    """The recorded schema version; 0 before the first migration."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))
    exists = cur.fetchone()
    if not exists or not exists[0]:
        return 0
    cur.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}")  # noqa: S608  # a constant
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0
