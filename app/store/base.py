"""The storage interface: audit log, replay records, decision records, deliveries, grants and keys.

SQLite is the embedded default (``app.store.sqlite``); PostgreSQL (``app.store.postgres``), for
several replicas, implements the same Protocol. Every method is safe to call from several threads and from several
processes sharing the same database.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class AuditRecord:
    """One link of the tamper-evident chain.

    ``hash`` = sha256 over the canonical JSON of (seq, time, kind, payload, prev_hash); ``prev_hash``
    is the previous record's ``hash`` (64 zeros for the first record).
    """

    seq: int
    time: datetime
    kind: str  # "decision", "token-refused", "grant-issued", "grant-revoked", ...
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Replay:
    """A token's replay record: ``(issuer, jti)`` used until ``expires_at`` (unix seconds)."""

    issuer: str
    jti: str
    expires_at: int


@dataclass(frozen=True)
class QueuedJob:
    """A job queued in a decision's transaction (the check run of a decision about a commit)."""

    id: str
    kind: str
    topic: str
    body: bytes


@dataclass(frozen=True)
class Kept:
    """What an origin keeps with its decision, written in the decision's own transaction: the jobs it
    queues and the held deployment it records (keyed by repository_id, run_id and environment)."""

    jobs: tuple[QueuedJob, ...] = ()
    deployment: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None  # e.g. "record 17: its contents do not match its hash (edited?)"
    head: tuple[int, str] | None = None  # the last verified record's (seq, hash), when ok


@dataclass(frozen=True)
class Job:
    """A unit of work in the durable queue, leased to one worker at a time.

    ``kind`` says what runs it (``"webhook"``: a verified GitHub delivery whose ``topic`` is the
    event name); ``id`` is the webhook's delivery id (``X-GitHub-Delivery``, shared by GitHub's
    redeliveries of the same event). ``attempts`` counts the leases taken, this one included.
    """

    id: str
    kind: str
    topic: str
    body: bytes
    attempts: int
    created_at: int


@dataclass(frozen=True)
class QueueStats:
    depth: int  # jobs waiting or running
    oldest_age: int | None  # seconds since the oldest of them was queued
    dead: int  # jobs given up on (listed for operators; a redelivery queues them again)


@dataclass(frozen=True)
class JobSummary:
    """A job as operators see it (``agent-gate queue list``): everything but its body."""

    id: str
    kind: str
    topic: str
    state: str  # queued, running, done, dead (given up)
    attempts: int
    due_at: int
    created_at: int
    updated_at: int
    last_error: str | None


# What enqueue_job answers.
QUEUED, DUPLICATE, SAME_BODY = "queued", "duplicate", "same-body"
COALESCED = "coalesced"  # a job about the same subject waits already: it covers this delivery too
FULL = "queue-full"  # the queue holds its bound of pending jobs: nothing was kept


class Store(Protocol):
    def append_audit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        time: datetime | None = None,
        replay: Replay | None = None,
    ) -> AuditRecord:
        """Append one record to the chain atomically and durably; with ``replay``, write the token's
        replay record in the same transaction (``AlreadyUsed`` and nothing written when it exists).

        Concurrent appends of one process share a commit (app.store.group); each returns only once
        its record is durable. Raises ``Unavailable(code='audit-unavailable')``.
        """
        ...

    def iter_audit(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        """Records in chain order; with ``since``, from the first record at or after it to the end.

        The result is always a contiguous piece of the chain (a later record with an earlier time,
        from another worker's clock, is kept), so it re-verifies from its first ``prev_hash``.
        """
        ...

    def verify_audit(self, *, anchor: tuple[int, str] | None = None) -> ChainReport:
        """Recompute the whole chain; name the first broken record.

        ``anchor`` = a (seq, hash) taken earlier from :meth:`head` and kept elsewhere: the chain must
        still hold that record with that hash (catches a truncated or re-hashed log).
        """
        ...

    def jti_used(self, issuer: str, jti: str) -> bool:
        """Whether (issuer, jti) has a committed replay record (a read: the early refusal of a replay;
        the replay record itself is written with the decision's audit record)."""
        ...

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Record (issuer, jti) as used until ``expires_at`` (unix seconds). False if already used.

        Raises ``Unavailable(code='store-unavailable')`` when the store cannot be written.
        """
        ...

    def purge_expired(self) -> int:
        """Drop replay records past their expiry plus the replay margin, by the database's clock
        (:meth:`database_time`; SQLite: this machine's), never a replica's; returns how many."""
        ...

    def database_time(self) -> float | None:
        """The clock every replica shares (unix seconds): PostgreSQL's ``clock_timestamp()``. None
        for a store on this machine (SQLite), whose clock is then the database's (app.store.clock).

        Raises ``Unavailable(code='store-unavailable')``.
        """
        ...

    def check_writable(self) -> None:
        """Raise ``Unavailable(code='store-unavailable')`` unless the store accepts writes now."""
        ...

    def head(self) -> tuple[int, str] | None:
        """The last record's (seq, hash), for auditors to anchor elsewhere."""
        ...

    def save_decision(self, decision_id: str, record: dict[str, Any]) -> None:
        """Keep the full decision for the decision page."""
        ...

    def get_decision(self, decision_id: str) -> dict[str, Any] | None: ...

    def record_decision(
        self,
        decision_id: str,
        record: dict[str, Any],
        kind: str,
        payload: dict[str, Any],
        *,
        replay: Replay | None = None,
        keep: Kept | None = None,
    ) -> AuditRecord:
        """Append the audit record ``(kind, payload)``, keep ``record`` for the decision page, write
        the token's replay record and what the origin keeps with it (``keep``), in one durable
        transaction: all or nothing. Raises ``AlreadyUsed`` (nothing written) when the token's replay
        record exists, and ``Unavailable(code='audit-unavailable')``."""
        ...

    def purge_retained(self, before: int) -> int:
        """Drop decision pages and finished jobs last touched before ``before`` (unix seconds); never
        the audit chain. Returns how many rows went."""
        ...

    # The durable queue (webhook deliveries): claimed with a lease, so a worker that dies mid-job
    # releases it when the lease ends, and no two workers run one job at once.
    def enqueue_job(
        self,
        job_id: str,
        kind: str,
        topic: str,
        body: bytes,
        *,
        now: int,
        subject: str | None = None,
        max_pending: int | None = None,
    ) -> str:
        """Keep a job durably. Answers ``QUEUED``; ``DUPLICATE`` when a job with this id is queued,
        running, done or coalesced (a job given up on is queued again: GitHub's redeliveries carry
        the same X-GitHub-Delivery); ``SAME_BODY`` when another id carried the same body and was not
        given up on (GitHub signs the body only, so a replayed body under a new id is not run twice);
        ``COALESCED`` when a job with the same ``subject`` is still waiting (not yet running): this
        id is recorded as covered by it, and nothing more is queued; ``FULL`` when ``max_pending``
        jobs are waiting or running already (nothing is kept)."""
        ...

    def known_deliveries(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the queue holds, in any state (the redelivery sweep skips them)."""
        ...

    def redeliveries_asked(self, guids: Sequence[str]) -> dict[str, set[int]]:
        """Per event (X-GitHub-Delivery), the ids of its failed deliveries the gate asked GitHub to
        redeliver."""
        ...

    def record_redelivery(self, delivery_id: int, guid: str, *, now: int) -> bool:
        """Remember that delivery ``delivery_id`` was asked again; False when it was already."""
        ...

    def forget_redeliveries(self, before: int) -> int:
        """Drop the records of redeliveries asked before ``before`` (past GitHub's retention)."""
        ...

    def take_lease(self, name: str, owner: str, seconds: int) -> bool:
        """Hold the lease ``name`` for ``seconds`` by the database's clock, unless another owner holds
        it now (one sweeper among every replica). Renewing one's own lease succeeds."""
        ...

    def claim_job(self, worker: str, *, now: int, lease: int) -> Job | None:
        """Lease the oldest job that is due (waiting past its retry time, or whose lease ran out)."""
        ...

    def complete_job(self, job_id: str, worker: str, *, now: int) -> bool:
        """Mark a leased job done; False when the lease was lost (another worker took the job)."""
        ...

    def fail_job(self, job_id: str, worker: str, *, now: int, error: str, retry_at: int | None) -> bool:
        """Release a leased job after a failure: due again at ``retry_at``, or given up (``None``)."""
        ...

    def queue_stats(self, *, now: int) -> QueueStats: ...

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobSummary]:
        """Jobs, most recently changed first (``state``: only those in it); for operators."""
        ...

    def retry_job(self, job_id: str, *, now: int) -> str | None:
        """Queue a job given up on again, due ``now`` with its attempts reset; only a ``dead`` one
        changes. Answers the state the job was in (``"dead"``: it is queued again), or None when
        there is no such job."""
        ...

    # Deployments held by the gate's protection rule, waiting for evidence (one per run and environment).
    def save_deployment_gate(self, record: dict[str, Any]) -> None:
        """Insert or replace the record keyed by (repository_id, run_id, environment)."""
        ...

    def find_deployment_gates(
        self, repository_id: int | None, *, run_id: int | None = None, state: str | None = "pending"
    ) -> list[dict[str, Any]]:
        """Held deployments of a repository (``None``: of every repository), by run and environment."""
        ...

    # Grants (app.credentials.grants): records, revocation, and the gate's signing keys.
    def save_grant(self, record: dict[str, Any]) -> None: ...

    def get_grant(self, jti: str) -> dict[str, Any] | None: ...

    def find_grants(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]: ...

    def revoke_grant(self, jti: str, reason: str, at: int) -> bool: ...

    def purge_grants(self, before: int) -> int: ...

    def signing_keys(self) -> list[dict[str, Any]]:
        """Every key: kid, private_pem, created_at, retired_at and purpose ("grant" or "attestation")."""
        ...

    def add_signing_key(
        self, kid: str, private_pem: bytes, created_at: int, *, purpose: str = "grant"
    ) -> None:
        """Add the current key of ``purpose``, retiring the previous ones of that purpose only."""
        ...

    def add_seal_key(self, kid: str, key: bytes, created_at: int) -> None: ...

    def max_grant_expiry(self, kid: str) -> int | None: ...

    # Schema (app.store.migrations): opening a store already upgrades it.
    def upgrade(self) -> tuple[int, int]:
        """Apply the missing migrations; (version before, version after). Raises SchemaTooNew."""
        ...

    def schema_version(self) -> int: ...

    # Break-glass overrides (app/governance/breakglass.py); migration 3 of both schemas.
    def save_break_glass(self, record: dict[str, Any]) -> None: ...

    def find_break_glass(
        self, *, id: str | None = None, repository_id: int | None = None, action: str | None = None,
        state: str | None = None, live_at: int | None = None, since: int | None = None,
    ) -> list[dict[str, Any]]: ...  # fmt: skip

    # Agent freezes (app/governance/freeze.py); migration 5 of both schemas.
    def save_freeze(self, record: dict[str, Any]) -> None: ...

    def find_freezes(
        self, *, id: str | None = None, owner_id: int | None = None, state: str | None = None,
        since: int | None = None,
    ) -> list[dict[str, Any]]: ...  # fmt: skip

    # Page sessions (logins to the decision pages), keyed by the sha256 of the session's random id:
    # a session is valid only while its row is live, so the server can end it (docs/security-model.md).
    def start_session(self, session_hash: str, user_id: int, *, now: int, expires_at: int) -> None:
        """Record a new login; rows expired at ``now`` are deleted."""
        ...

    def session_live(self, session_hash: str, *, now: int) -> bool:
        """Whether the session was started here, is not ended and has not expired."""
        ...

    def end_session(self, session_hash: str, *, now: int) -> bool:
        """End one session (logout); False when it was not live."""
        ...

    def end_all_sessions(self, *, now: int) -> int:
        """End every live session (an operator's "end all sessions"); how many were live."""
        ...

    def close(self) -> None: ...
