"""Answers to GitHub's deployment protection rule: approve, reject, or a progress comment.

GitHub holds every job that targets an environment the App protects until the App answers through
``POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule`` with
``{"environment_name", "state": "approved" | "rejected", "comment"}``; a body without ``state``
posts a progress comment. A deployment gets at most 10 progress comments of at most 1,024
characters each (GitHub's limits): the comments are rendered from the same explanation model as
check runs and decision pages, cut to fit, and always keep the decision page's link.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any, Protocol

from app.decide.decision import Decision
from app.decide.explain import explanation

MAX_COMMENT_CHARS = 1024
MAX_PROGRESS_COMMENTS = 10
# The failed checks a person can fix while the job waits: it lacks independent human approvals
# (of the change, or those its paths call for).
FIXABLE_CODES = frozenset({"approvals", "path-approvals"})


class Verdict(StrEnum):
    APPROVE = "approved"
    REJECT = "rejected"
    WAIT = "waiting"  # a person can fix it: comment, keep the job held, decide again on new evidence


class ProtectionRuleAPI(Protocol):
    """The callback the publisher needs (implemented by the GitHub client)."""

    def review_deployment_protection_rule(
        self, repository: str, run_id: int, body: dict[str, Any]
    ) -> None: ...


def verdict(decision: Decision) -> Verdict:
    """Approve only an allowed decision; wait when the only failed checks are fixable; else reject."""
    if decision.allowed:
        return Verdict.APPROVE
    failed = {r.code for r in decision.reasons if not r.ok}
    return Verdict.WAIT if failed and failed <= FIXABLE_CODES else Verdict.REJECT


def _fit(parts: list[str], link: str | None) -> str:
    """Join ``parts`` into at most MAX_COMMENT_CHARS characters, cutting the last part that does not
    fit, and always ending with the link."""
    tail = f"\n\nDecision: {link}" if link else ""
    room = MAX_COMMENT_CHARS - len(tail)
    text = ""
    for part in parts:
        piece = part if not text else "\n" + part
        if len(text) + len(piece) <= room:
            text += piece
            continue
        cut = room - len(text) - 1
        if cut > 20:
            text += piece[:cut] + "…"
        break
    return text + tail


def comment(decision: Decision, *, attempt: int | None = None) -> str:
    """The comment shown on the held job: the verdict, what failed, who could unblock it, the link."""
    e = explanation(decision)
    parts = [f"agent-gate: {e.title}"]
    if e.agent and e.agent_signals:
        parts.append("Agent involvement: " + "; ".join(s.split(": ", 1)[-1] for s in e.agent_signals[:3]))
    parts += [f"✖ {c.code}: {c.message}" for c in e.reasons if not c.ok]
    if e.remedy:
        parts.append(f"To pass: {e.remedy}")
    parts += [
        f"Not counted: {a.who} ({a.source} approval): {a.why}"
        for a in e.approvals
        if not a.counted and not e.allowed
    ][:3]
    if attempt is not None and not e.allowed:
        parts.append(
            f"The job stays held; agent-gate decides again when approvals change (update {attempt} of "
            f"{MAX_PROGRESS_COMMENTS})."
        )
    return _fit(parts, e.details_url)


def news(decision: Decision) -> str:
    """A digest of what a progress comment tells (not its counter, nor its decision link): a held
    job is commented again only when there is something new to say."""
    return hashlib.sha256(comment(decision.model_copy(update={"details_url": None})).encode()).hexdigest()


def answer_body(
    decision: Decision, environment: str, kind: Verdict, *, attempt: int | None = None
) -> dict[str, Any]:
    """The callback body: ``state`` for approve/reject; none (a progress comment) while waiting."""
    body: dict[str, Any] = {"environment_name": environment, "comment": comment(decision, attempt=attempt)}
    if kind is not Verdict.WAIT:
        body["state"] = kind.value
    return body
