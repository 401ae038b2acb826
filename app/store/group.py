"""Group commit for the audit chain: one durable commit for the appends that arrive together.

Every audit append (a decision with its page and its token's replay record, a refused token, a grant)
is a :class:`PendingAppend`, encoded by the caller's thread. :meth:`GroupCommit.submit` queues it and
waits. The first waiting thread with no batch in flight becomes the *leader*: it takes everything
queued (up to ``max_batch``) and writes it in one transaction with one commit (one fsync on SQLite,
one WAL flush on PostgreSQL); then every thread of the batch returns its own outcome. A thread that
arrives while a batch is being written queues behind it and is written by the next leader, so a
lone request pays no waiting at all and concurrent ones share the commit's cost.

Nothing is answered before it is durable: ``submit`` returns only after the commit of the batch that
holds its append, and a failed commit fails every append of the batch (the caller answers 503).

Within a batch, an append whose token was already used (its replay record exists, or an earlier
append of the same batch carries the same token) is skipped (:func:`admit`): it gets
:class:`app.errors.AlreadyUsed` and writes nothing; the others are written. :func:`chain` assigns
``seq`` and hashes in batch order from the chain head read inside the transaction.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.errors import AlreadyUsed, GateError, Unavailable
from app.observe.metrics import metrics
from app.store.base import AuditRecord, Replay
from app.store.canonical import GENESIS, encode_audit, record_hash_of_text, with_request_id
from app.store.rows import DeploymentRow, JobRow, KeptRows

log = logging.getLogger("agent_gate.store")

MAX_BATCH = 64  # appends per commit: bounds the time one transaction holds the write lock

# The seconds the batch being written may still take, when its GroupCommit has a budget: read by the
# writer (PostgreSQL sets its lock and statement timeouts to it), set by the leader around write().
_time_left: ContextVar[float | None] = ContextVar("agent_gate_batch_time_left", default=None)


def batch_time_left() -> float | None:
    """Seconds the batch being written may still take (None: no budget)."""
    return _time_left.get()


@dataclass(frozen=True)
class PendingAppend:
    """One audit record, encoded, with what is written in its transaction."""

    kind: str
    when: datetime
    normal: dict[str, Any]  # the payload as it reads back (hashed)
    payload_text: str
    time_text: str
    decision: tuple[str, str] | None = None  # (decision_id, encoded record) for the decision page
    replay: Replay | None = None  # the token this append spends
    kept: KeptRows | None = None  # what the decision's origin keeps with it (jobs, a held deployment)


@dataclass(frozen=True)
class Linked:
    """A pending append placed in the chain: its ``seq``, ``prev_hash`` and ``hash``."""

    item: PendingAppend
    seq: int
    prev: str
    digest: str

    def row(self) -> tuple[int, str, str, str, str, str]:
        """(seq, time, kind, payload, prev_hash, hash): the audit table's columns, in order."""
        return (self.seq, self.item.time_text, self.item.kind, self.item.payload_text, self.prev, self.digest)

    def record(self) -> AuditRecord:
        return AuditRecord(
            seq=self.seq,
            time=self.item.when.astimezone(UTC),
            kind=self.item.kind,
            payload=self.item.normal,
            prev_hash=self.prev,
            hash=self.digest,
        )


Outcome = AuditRecord | GateError


def admit(items: Sequence[PendingAppend], claimed: Callable[[Replay], bool]) -> list[bool]:
    """Which appends are written: those without a token, and those whose replay record is new.

    ``claimed(replay)`` writes the replay record in the batch's transaction and says whether it was
    new; it is called in batch order, so of two appends with one token the first is kept.
    """
    return [item.replay is None or claimed(item.replay) for item in items]


def chain(items: Sequence[PendingAppend], head: tuple[int, str] | None) -> list[Linked]:
    """Link ``items`` after ``head`` (the last committed record's (seq, hash), read in the transaction)."""
    seq, prev = head if head is not None else (0, GENESIS)
    linked: list[Linked] = []
    for item in items:
        seq += 1
        digest = record_hash_of_text(seq, item.time_text, item.kind, item.payload_text, prev)
        linked.append(Linked(item, seq, prev, digest))
        prev = digest
    return linked


def settle(admitted: Sequence[bool], linked: Sequence[Linked]) -> list[Outcome]:
    """One outcome per append of the batch: its record, or :class:`AlreadyUsed` when not admitted."""
    records = iter(linked)
    return [next(records).record() if ok else AlreadyUsed() for ok in admitted]


_fork_lock = threading.Lock()


def _reset_fork_lock() -> None:
    global _fork_lock
    _fork_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_fork_lock)


@dataclass
class _Slot:
    item: PendingAppend
    queued_at: float = field(default_factory=time.monotonic)
    outcome: Outcome | None = None
    failure: BaseException | None = None
    done: bool = False


@dataclass
class GroupCommit:
    """Batches concurrent appends of one process into shared commits (see the module's docstring).

    ``write(batch)`` writes a batch in one transaction and returns one outcome per item; it raises
    (a :class:`GateError`, normally ``Unavailable``) when the transaction did not commit.

    With a ``budget`` (seconds), an append's whole wait is bounded: queued behind a batch that waits
    on a lock, then written in its own, it fails once ``budget`` has passed since it was queued. A
    batch is not started once its oldest append is out of time, and the writer is told the time left
    (:func:`batch_time_left`) to bound its own waits.
    """

    write: Callable[[list[PendingAppend]], list[Outcome]]
    max_batch: int = MAX_BATCH
    budget: float | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _queue: list[_Slot] = field(default_factory=list, repr=False)
    _writing: bool = field(default=False, repr=False)
    commits: int = 0  # batches committed or failed: for tests and benchmarks
    appends: int = 0
    _pid: int = field(default_factory=os.getpid, repr=False)

    def submit(self, item: PendingAppend) -> AuditRecord:
        """Write ``item`` durably with whatever else is waiting; its record once committed.

        Raises the batch's failure (``Unavailable``) or :class:`AlreadyUsed` for this item.
        """
        slot = _Slot(item)
        if self._pid != os.getpid():
            self._after_fork()
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while not slot.done and self._writing:
                    self._cond.wait()
                if slot.done:
                    return _result(slot)
                # No batch in flight and ours not written: lead the next one. The queue is served in
                # order, so ours is in this batch or, past max_batch others, in a later one.
                self._writing = True
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._lead(batch)

    def waiting(self) -> int:
        """Appends queued behind the batch being written (for tests and benchmarks)."""
        with self._cond:
            return len(self._queue)

    def _after_fork(self) -> None:
        # A forked child inherits the parent's queue and, if a parent thread was writing, a batch
        # that no thread of the child will ever finish: it starts afresh (the parent's appends are
        # the parent's to answer). The lock and the second pid check make one thread do it.
        with _fork_lock:
            if self._pid == os.getpid():
                return
            self._cond = threading.Condition()
            self._queue = []
            self._writing = False
            self._pid = os.getpid()

    def _lead(self, batch: list[_Slot]) -> None:
        failure: BaseException | None = None
        outcomes: list[Outcome] = []
        left = None if self.budget is None else self.budget - (time.monotonic() - batch[0].queued_at)
        bound = _time_left.set(left)
        try:
            if left is not None and left <= 0:
                raise Unavailable(
                    f"the audit log cannot be written, so nothing was allowed: it was not free within "
                    f"{self.budget:g} s (another writer holds it); retry, and tell the gate's operators if it "
                    "persists",
                    code="audit-unavailable",
                )
            outcomes = self.write([s.item for s in batch])
            if len(outcomes) != len(batch):  # a writer's bug: never leave a waiter without an answer
                raise Unavailable(
                    "the audit log's writer answered for the wrong number of records; nothing was "
                    "allowed; tell the gate's operators",
                    code="audit-unavailable",
                )
        except BaseException as exc:  # noqa: BLE001  # handed to every append of the batch
            failure = exc
        finally:
            _time_left.reset(bound)
        counters = metrics()
        counters.audit_commits.inc()
        counters.audit_appends.inc(len(batch))
        with self._cond:
            self.commits += 1
            self.appends += len(batch)
            for i, s in enumerate(batch):
                if failure is None:
                    s.outcome = outcomes[i]
                else:
                    s.failure = failure
                s.done = True
            self._writing = False
            self._cond.notify_all()


def _result(slot: _Slot) -> AuditRecord:
    if slot.failure is not None:
        # Each waiter raises its own copy: one exception object raised in several threads would
        # collect all their tracebacks.
        failure = _fresh(slot.failure)
        raise failure from slot.failure.__cause__
    outcome = slot.outcome
    if isinstance(outcome, GateError):
        raise outcome
    assert outcome is not None  # done implies an outcome or a failure
    return outcome


def _fresh(exc: BaseException) -> BaseException:
    """A copy of ``exc`` (same class, message and attributes) without its traceback."""
    twin = exc.__class__.__new__(exc.__class__, *exc.args)
    twin.args = exc.args
    twin.__dict__.update(exc.__dict__)
    return twin


def prepare(
    kind: str,
    payload: dict[str, Any],
    when: datetime,
    *,
    decision: tuple[str, str] | None = None,
    replay: Replay | None = None,
    kept: KeptRows | None = None,
) -> PendingAppend:
    """Encode one append (the request's id added). Raises ``Unavailable`` for a payload JSON cannot hold."""
    try:
        normal, payload_text, time_text = encode_audit(kind, with_request_id(payload), when)
    except Unavailable:
        log.error("audit record %r not written, its payload cannot be encoded", kind)
        raise
    return PendingAppend(kind, when, normal, payload_text, time_text, decision, replay, kept)


def kept_of(linked: Sequence[Linked]) -> tuple[list[JobRow], list[DeploymentRow]]:
    """The job rows and held-deployment rows the written appends of a batch keep, in batch order."""
    jobs: list[JobRow] = []
    deployments: list[DeploymentRow] = []
    for link in linked:
        if link.item.kept is not None:
            jobs.extend(link.item.kept.jobs)
            deployments.extend(link.item.kept.deployments)
    return jobs, deployments
