"""How reviewers review, over a period: the review-quality signals of OWASP AISVS C14.8.3.

For each reviewer seen in the recorded decisions: how many reviews and approvals, the share of their
reviews that approved, and how long after the approved commit was made they approved it (median and
fastest). A reviewer who approves nearly everything within a minute of the push is rubber-stamping,
and an agent's change that "has a human approval" is then worth less than it looks; this makes that
visible in ``agent-gate audit report``. Signals, not controls: nothing here changes a decision.

A review is counted once however many decisions considered it (a merge check re-decided on every
event sees the same review again): keyed by repository, reviewer, source, commit, state and time.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.decide.explain import duration
from app.governance.history import DecisionRecord

_APPROVED = frozenset({"APPROVED", "approved"})


@dataclass(frozen=True)
class Thresholds:
    """When a reviewer is flagged as a likely rubber stamp (the report's ``flagged``): at least
    ``min_reviews`` reviews, of which at least ``rate`` approved, with a median time from the commit
    to the approval under ``seconds``. Defaults: 5 reviews, 90%, 5 minutes."""

    rate: float = 0.9
    seconds: int = 300
    min_reviews: int = 5


@dataclass
class Reviewer:
    login: str
    reviews: int = 0
    approvals: int = 0
    after_commit: list[int] = field(default_factory=list)  # seconds, of the approvals that know it
    repositories: set[str] = field(default_factory=set)

    @property
    def approval_rate(self) -> float:
        return self.approvals / self.reviews if self.reviews else 0.0

    @property
    def median_after_commit(self) -> int | None:
        return int(statistics.median(self.after_commit)) if self.after_commit else None

    def flagged(self, limits: Thresholds) -> bool:
        median = self.median_after_commit
        return (
            self.reviews >= limits.min_reviews
            and self.approval_rate >= limits.rate
            and median is not None
            and median < limits.seconds
        )

    def as_json(self, limits: Thresholds | None = None) -> dict[str, Any]:
        return {
            "login": self.login,
            "flagged": self.flagged(limits or Thresholds()),
            "reviews": self.reviews,
            "approvals": self.approvals,
            "approval_rate": round(self.approval_rate, 3),
            "median_seconds_after_commit": self.median_after_commit,
            "fastest_seconds_after_commit": min(self.after_commit) if self.after_commit else None,
            "repositories": sorted(self.repositories),
        }


@dataclass
class ReviewQuality:
    """Accumulates reviewers from decisions; :meth:`watch` lets another report read the same pass."""

    limits: Thresholds = field(default_factory=Thresholds)
    _by_login: dict[str, Reviewer] = field(default_factory=dict)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)

    def watch(self, decisions: Iterable[DecisionRecord]) -> Iterator[DecisionRecord]:
        for record in decisions:
            self.add(record)
            yield record

    def add(self, record: DecisionRecord) -> None:
        repository = str(record.subject.get("repository") or "?")
        for a in record.body.get("approvals") or []:
            if not isinstance(a, dict) or not isinstance(a.get("login"), str):
                continue
            key = (
                record.subject.get("repository_id"),
                a["login"].lower(),
                a.get("source"),
                a.get("commit"),
                a.get("state"),
                a.get("submitted_at"),
            )
            if key in self._seen:
                continue
            self._seen.add(key)
            reviewer = self._by_login.setdefault(a["login"].lower(), Reviewer(a["login"]))
            reviewer.reviews += 1
            reviewer.repositories.add(repository)
            if a.get("state") in _APPROVED:
                reviewer.approvals += 1
                seconds = a.get("after_commit_seconds")
                if isinstance(seconds, int) and not isinstance(seconds, bool):
                    reviewer.after_commit.append(seconds)

    @property
    def reviewers(self) -> list[Reviewer]:
        """Most approvals first, then by login."""
        return sorted(self._by_login.values(), key=lambda r: (-r.approvals, r.login.lower()))

    def as_json(self) -> list[dict[str, Any]]:
        return [r.as_json(self.limits) for r in self.reviewers]

    def text(self) -> str:
        rows = self.reviewers
        if not rows:
            return "reviewers: no reviews in the recorded decisions\n"
        lines = ["reviewers (approvals / reviews, approval rate, median and fastest time after the commit):"]
        for r in rows:
            fastest = min(r.after_commit) if r.after_commit else None
            lines.append(
                f"  @{r.login}: {r.approvals}/{r.reviews} approved ({r.approval_rate:.0%}), "
                f"median {duration(r.median_after_commit)}, fastest {duration(fastest)}"
                + ("  FLAGGED: approves nearly everything, fast" if r.flagged(self.limits) else "")
            )
        flagged = sum(r.flagged(self.limits) for r in rows)
        if flagged:
            lines.append(
                f"  {flagged} reviewer(s) flagged: at least {self.limits.min_reviews} reviews, "
                f"{self.limits.rate:.0%} or more approved, median under {duration(self.limits.seconds)} "
                "after the commit: their approvals may be rubber stamps (OWASP AISVS, automation bias)"
            )
        return "\n".join(lines) + "\n"
