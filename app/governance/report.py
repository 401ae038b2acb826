"""``agent-gate audit report``: what audit-mode rules would have denied, by rule and repository.

A team switches a rule from ``mode: audit`` to ``mode: enforce`` with this evidence: how many
decisions it would have denied, for which repositories, and the most common reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.governance.history import DecisionRecord


@dataclass
class WouldDeny:
    """The would-deny decisions of one rule in one repository."""

    rule: str
    repository: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    decisions: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "repository": self.repository,
            "would_deny": self.count,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "reasons": [{"reason": r, "count": n} for r, n in self.reasons.most_common()],
            "decisions": self.decisions[-10:],
        }


@dataclass
class AuditModeReport:
    since: datetime | None
    decisions: int = 0
    rows: list[WouldDeny] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "decisions": self.decisions,
            "would_deny": sum(r.count for r in self.rows),
            "by_rule_and_repository": [r.as_json() for r in self.rows],
        }

    def text(self) -> str:
        since = self.since.isoformat() if self.since else "the beginning of the log"
        total = sum(r.count for r in self.rows)
        lines = [f"audit mode since {since}: {total} of {self.decisions} decision(s) would have been denied"]
        for row in self.rows:
            lines.append(f"  rule {row.rule} on {row.repository}: {row.count} would deny")
            lines += [f"    {n} x {reason}" for reason, n in row.reasons.most_common(5)]
        if not self.rows:
            lines.append("  nothing would have been denied: the rules in audit mode can be enforced")
        return "\n".join(lines) + "\n"


def audit_mode_report(decisions: Iterable[DecisionRecord], since: datetime | None) -> AuditModeReport:
    """Group the would-deny decisions by (rule, repository), most frequent first."""
    report = AuditModeReport(since=since)
    groups: dict[tuple[str, str], WouldDeny] = {}
    for record in decisions:
        report.decisions += 1
        if record.body.get("would_deny") is not True:
            continue
        rule = str(record.body.get("rule") or "(no rule)")
        repository = str(record.subject.get("repository") or "?")
        row = groups.setdefault((rule, repository), WouldDeny(rule, repository))
        row.count += 1
        row.first = row.first or record.time
        row.last = record.time
        row.decisions.append(str(record.body["decision_id"]))
        for reason in record.body.get("reasons") or []:
            if isinstance(reason, dict) and reason.get("ok") is False:
                row.reasons[str(reason.get("message"))] += 1
    report.rows = sorted(groups.values(), key=lambda r: (-r.count, r.rule, r.repository))
    return report
