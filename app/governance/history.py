"""The decisions in the audit chain, whatever answered them (the API, the merge check, the
deployment protection rule), and the grants issued and revoked with them.

Read from the tamper-evident chain rather than a table of their own, so the inventory and the
reports rest on the records ``agent-gate audit verify`` vouches for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.store.base import AuditRecord

# Audit kinds whose payload is a whole decision (app/web/decisions.py, app/events/).
DECISION_KINDS = frozenset({"decision", "merge-check", "merge-group", "deployment-protection"})


@dataclass(frozen=True)
class DecisionRecord:
    """One recorded decision: when, by which path, and its JSON (the Decision model's shape)."""

    seq: int
    time: datetime
    kind: str
    body: dict[str, Any]

    @property
    def subject(self) -> dict[str, Any]:
        subject = self.body.get("subject")
        return subject if isinstance(subject, dict) else {}


@dataclass
class GrantLedger:
    """Grants by jti: which decision each came from, when it expires, whether it was revoked."""

    decision_of: dict[str, str] = field(default_factory=dict)
    expires_at: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

    def held(self, now: int) -> dict[str, list[str]]:
        """Decision id -> jtis of its grants still live at ``now`` (neither revoked nor expired)."""
        out: dict[str, list[str]] = {}
        for jti, decision_id in self.decision_of.items():
            if jti not in self.revoked and self.expires_at.get(jti, 0) > now:
                out.setdefault(decision_id, []).append(jti)
        return out


def read(records: Iterable[AuditRecord]) -> tuple[list[DecisionRecord], GrantLedger]:
    """Split the chain into decisions and the grant ledger, in chain order."""
    decisions: list[DecisionRecord] = []
    ledger = GrantLedger()
    for record in records:
        payload = record.payload
        if record.kind in DECISION_KINDS and isinstance(payload.get("decision_id"), str):
            decisions.append(DecisionRecord(record.seq, record.time, record.kind, payload))
        elif record.kind == "grant-issued" and isinstance(payload.get("jti"), str):
            ledger.decision_of[payload["jti"]] = str(payload.get("decision_id") or "")
            ledger.expires_at[payload["jti"]] = int(payload.get("expires_at") or 0)
        elif record.kind == "grant-revoked" and isinstance(payload.get("jti"), str):
            ledger.revoked.add(payload["jti"])
    return decisions, ledger


def decisions_only(records: Iterable[AuditRecord]) -> Iterator[DecisionRecord]:
    for record in records:
        if record.kind in DECISION_KINDS and isinstance(record.payload.get("decision_id"), str):
            yield DecisionRecord(record.seq, record.time, record.kind, record.payload)
