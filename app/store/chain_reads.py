"""Reading the audit chain, the same on every store: records in order, and the whole-chain check.

A store provides two queries, :meth:`AuditReads._audit_rows` (raw rows from a ``seq`` on, a page at
a time) and :meth:`AuditReads._first_seq_at` (the first record at or after a time); the rest is here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from app.errors import GateError
from app.store.base import AuditRecord, ChainReport
from app.store.canonical import ChainVerifier, record_from_row


class AuditReads:
    """``iter_audit`` and ``verify_audit`` of the Store protocol, over the store's two queries."""

    def _audit_rows(self, first_seq: int) -> Iterator[tuple[Any, ...]]:
        """(seq, time, kind, payload, prev_hash, hash) rows from ``first_seq`` on, in order."""
        raise NotImplementedError

    def _first_seq_at(self, since: datetime) -> int | None:
        """The ``seq`` of the first record at or after ``since``; None when there is none."""
        raise NotImplementedError

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
