"""What is asked of the gate and what it answers: the request and the Decision models.

These are the API's JSON shapes too (``/openapi.json`` is built from them), so field names are a
contract with workflow authors and the composite action.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DecisionRequest(BaseModel):
    """The body of ``POST /v1/decisions``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,63}$",
        description="The action to decide, e.g. deploy, merge, open-pull-request.",
        examples=["deploy"],
    )
    environment: str | None = Field(
        None, min_length=1, max_length=255, description="The environment being deployed, if any."
    )
    pull_request: int | None = Field(
        None, ge=1, le=2**31, description="The pull request the action is about."
    )
    sha: str | None = Field(
        None,
        pattern=r"^([0-9a-f]{40}|[0-9a-f]{64})$",
        description="The commit the action is about; defaults to the token's sha.",
    )
    grant: bool = Field(False, description="Ask for a just-in-time grant (and GitHub token) when allowed.")


class Reason(BaseModel):
    """One condition the decision checked: ``ok`` says whether it held.

    ``checked`` False: the condition could not be checked or is checked elsewhere (change provenance
    without the GitHub App; a held job's runner, known only once it runs). It does not block (``ok``)
    and is never shown as a pass.
    """

    code: str
    ok: bool
    message: str
    checked: bool = True


RemedyFor = Literal["reviewer", "workflow", "operator"]


class Signal(BaseModel):
    """One piece of evidence that an AI agent was involved."""

    name: str = Field(
        description="actor, triggering-actor, pr-author, commit-author, commit-committer, "
        "co-author-trailer, agent-footer, branch-prefix, label"
    )
    detail: str
    agent: str | None = Field(
        None, description="The agent this signal names, as the agent catalog calls it (e.g. Claude)."
    )


# Why an approval counted or not, for logic (audit mode, break-glass); ``why`` says it for people.
ApprovalCode = Literal[
    "counted",  # an independent human with write permission approved the exact change
    "superseded",  # a later review of the same reviewer replaced it
    "not-approved",  # the latest review (or the environment review) is not an approval
    "source-not-counted",  # the rule does not count this kind of approval
    "stale",  # it approved another commit
    "wrong-environment",  # it approved another environment
    "agent",  # from an AI agent: only humans approve
    "bot",  # from a bot
    "self",  # from the actor, triggering actor, PR author, a commit author or committer
    "requester",  # from the person who asked the agent for the change
    "co-author",  # from a co-author of the change
    "last-pusher",  # from the last pusher, under a rule that requires last-push approval
    "no-write-access",  # the approver has less than write permission
    "not-in-team",  # the approver is in none of the rule's teams
]


class ApprovalAssessment(BaseModel):
    """An approval the gate considered, and why it counted or not."""

    source: Literal["review", "environment"]
    login: str
    id: int | None = None
    state: str
    commit: str | None = None
    counted: bool
    code: ApprovalCode | None = Field(
        None, description="Why it counted or not, as a code (null in records made before codes)."
    )
    why: str
    submitted_at: datetime | None = Field(None, description="When the review was submitted (reviews only).")
    after_commit_seconds: int | None = Field(
        None,
        description="Seconds from the approved commit's committer date to the review: how long the reviewer "
        "had the change at most (a review-quality signal, OWASP AISVS C14.8.3).",
    )


class Subject(BaseModel):
    """The workload the decision is about (ids are the identity; names are for display)."""

    repository: str
    repository_id: int
    owner: str
    owner_id: int
    actor: str
    actor_id: int
    agent: bool
    agent_signals: list[Signal]
    workflow: str
    workflow_sha: str | None = None
    ref: str
    sha: str
    event: str
    run_id: int
    run_attempt: int
    environment: str | None = None
    runner_environment: str
    pull_request: int | None = None
    triggering_actor: str | None = None
    commit_named: bool = Field(False, description="The request named the commit (sha) it is about.")


class Decision(BaseModel):
    """The gate's answer. 200 when ``allowed``, 403 otherwise; the body is the same."""

    decision_id: str
    allowed: bool
    action: str
    permission: Literal["read", "propose", "execute"] | None = Field(
        description="The action's permission class; null when the action is unknown."
    )
    approval_action: bool = False
    rule: str | None = Field(description="The rule that allowed it, or the one that came closest.")
    subject: Subject
    reasons: list[Reason]
    remedy: str | None = Field(
        description="What would make it pass; null when allowed (kept when allowed with would_deny)."
    )
    remedy_for: RemedyFor | None = Field(
        None,
        description="Who can act on the remedy: a reviewer (an approval is missing), the workflow's author "
        "(the job asks wrongly), or the gate's operator (policy or App configuration).",
    )
    would_deny: bool = Field(
        False,
        description="Allowed only because the rule or policy is in audit mode: enforced, it would be "
        "denied for the failed reasons. No grant or GitHub token is issued with it.",
    )
    policy_digest: str
    approvals: list[ApprovalAssessment] = Field(default_factory=list)
    break_glass: str | None = Field(
        None,
        description="The break-glass override that allowed this otherwise denied decision "
        "(docs/governance.md#break-glass); no grant or GitHub token is issued with it.",
    )
    evidence_source: Literal["github", "file", "none"] = "none"
    github_api_calls: int = 0
    decided_at: datetime
    details_url: str | None = None

    @property
    def summary(self) -> str:
        """One line for a person: the first failed reason, or that it was allowed."""
        failed = next((r for r in self.reasons if not r.ok), None)
        if self.would_deny:
            return f"Would deny (audit mode): {failed.message if failed else self.action}"
        if self.break_glass:
            return f"Allowed by break-glass {self.break_glass}, otherwise denied: {failed.message if failed else ''}"
        if self.allowed:
            return f"Allowed: {self.action} by rule {self.rule}"
        return f"Denied: {failed.message}" if failed else f"Denied: {self.action}"


def new_decision_id() -> str:
    """Unguessable: 128 random bits."""
    return "dec_" + secrets.token_urlsafe(16)
