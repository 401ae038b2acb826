"""The audit chain's half of the Store protocol, the same on every store: appends (through group
commit), records in order, and the whole-chain check.

A store provides its batch writer (:meth:`AuditChain._write_batch`: one transaction, see
:mod:`app.store.group`) and two queries, :meth:`AuditChain._audit_rows` (raw rows from a ``seq``
on, a page at a time) and :meth:`AuditChain._first_seq_at` (the first record at or after a time);
the rest is here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from app.errors import GateError
from app.store.base import AuditRecord, ChainReport, Kept, Replay
from app.store.canonical import ChainVerifier, encode_decision, record_from_row
from app.store.group import GroupCommit, Outcome, PendingAppend, prepare
from app.store.rows import kept_rows


class AuditChain(ABC):
    """``append_audit``, ``record_decision``, ``iter_audit`` and ``verify_audit`` of the Store protocol."""

    _clock: Callable[[], float]
    _group: GroupCommit  # GroupCommit(self._write_batch), made by the store when it opens

    @abstractmethod
    def _write_batch(self, batch: list[PendingAppend]) -> list[Outcome]:
        """Write ``batch`` in one durable transaction; one outcome per append (app.store.group)."""

    @abstractmethod
    def _audit_rows(self, first_seq: int) -> Iterator[tuple[Any, ...]]:
        """(seq, time, kind, payload, prev_hash, hash) rows from ``first_seq`` on, in order."""

    @abstractmethod
    def _first_seq_at(self, since: datetime) -> int | None:
        """The ``seq`` of the first record at or after ``since``; None when there is none."""

    def append_audit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        time: datetime | None = None,
        replay: Replay | None = None,
    ) -> AuditRecord:
        """Append one record atomically and durably. Raises ``Unavailable(code='audit-unavailable')``."""
        when = datetime.fromtimestamp(self._clock(), UTC) if time is None else time
        return self._group.submit(prepare(kind, payload, when, replay=replay))

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
        """The decision's audit record, its page, its token's replay record and what its origin keeps
        with it in one durable transaction, shared with the appends of this process that arrive
        together (one commit)."""
        now = self._clock()
        when = datetime.fromtimestamp(now, UTC)
        page = (decision_id, encode_decision(record))
        kept = kept_rows(keep, int(now)) if keep is not None else None
        return self._group.submit(prepare(kind, payload, when, decision=page, replay=replay, kept=kept))

    def iter_audit(self, since: datetime | None = None) -> Iterator[AuditRecord]:
        """Records in chain order; with ``since``, from the first record at or after it to the end.

        Raises ``GateError(code='audit-corrupt')`` on a record that cannot be parsed (run verify).
        """
        first = 1
        if since is not None:
            found = self._first_seq_at(since)
            if found is None:
                return
            first = found
        for row in self._audit_rows(first):
            try:
                yield record_from_row(row)
            except ValueError as exc:
                raise GateError(
                    f"audit record {row[0]} cannot be read: {exc}; run `agent-gate audit verify`",
                    code="audit-corrupt",
                ) from exc

    def verify_audit(self, *, anchor: tuple[int, str] | None = None) -> ChainReport:
        """Recompute every hash and link; the report names the first broken record."""
        verifier = ChainVerifier(anchor=anchor)
        for row in self._audit_rows(1):
            try:
                record = record_from_row(row)
            except ValueError as exc:
                return verifier.unreadable(int(row[0]), str(exc))
            broken = verifier.check(record)
            if broken is not None:
                return broken
        return verifier.result()
