"""The facts a decision rests on, in the shape the GitHub client produces.

This is the engine's input about the change (who wrote it, whether an agent was involved) and its
approvals (who approved which commit). ``app.evidence.gather`` fills it from GitHub; an admin can
write the same shape in a file for ``agent-gate explain``. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Account(_Model):
    """A GitHub account as the REST API shows it (``simple-user``): login, numeric id, type."""

    login: str
    id: int | None = None
    type: str = "User"  # "User", "Bot", "Organization", "Mannequin"


class CommitFacts(_Model):
    """One commit of the change. ``author``/``committer`` are the linked GitHub accounts, when any."""

    sha: str
    message: str = ""
    author: Account | None = None
    author_email: str | None = None
    author_name: str | None = None
    committer: Account | None = None
    committer_email: str | None = None
    committer_name: str | None = None


class PullRequestFacts(_Model):
    number: int
    author: Account
    head_sha: str
    head_ref: str
    base_ref: str
    state: Literal["open", "closed"]
    merged: bool = False
    merge_commit_sha: str | None = None
    draft: bool = False
    labels: list[str] = Field(default_factory=list)
    commits: list[CommitFacts] = Field(default_factory=list)
    # Who pushed the head commit, as far as GitHub tells (its committer's account, or its author's
    # when GitHub itself committed it).
    last_pusher: Account | None = None


class Review(_Model):
    """A pull-request review (``pull-request-review``)."""

    id: int
    reviewer: Account
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    commit_id: str | None = None
    submitted_at: datetime | None = None


class EnvironmentApproval(_Model):
    """An environment deployment review of the run (``environment-approvals``)."""

    approver: Account
    state: str  # approved, rejected, pending
    environments: list[str] = Field(default_factory=list)
    comment: str = ""


class RunFacts(_Model):
    """The Actions run (``workflow-run``): who triggered it and at which commit."""

    id: int
    triggering_actor: Account | None = None
    actor: Account | None = None
    head_sha: str | None = None
    head_branch: str | None = None
    event: str | None = None


class Standing(_Model):
    """An approver's standing in the repository: permission and active team memberships."""

    permission: str | None = None  # admin, maintain, write, triage, read, none; None: unknown
    teams: list[str] = Field(default_factory=list)  # slugs of the rule's teams they actively belong to


class Evidence(_Model):
    """Everything gathered for one decision. ``source`` says where it came from."""

    source: Literal["github", "file", "none"] = "none"
    # Why no evidence is available, when source == "none" and a decision needed it.
    unavailable_reason: str | None = None
    pull_request: PullRequestFacts | None = None
    run: RunFacts | None = None
    reviews: list[Review] = Field(default_factory=list)
    environment_approvals: list[EnvironmentApproval] = Field(default_factory=list)
    # Keyed by lower-cased login.
    standings: dict[str, Standing] = Field(default_factory=dict)
    github_api_calls: int = 0

    @classmethod
    def none(cls, reason: str | None = None) -> Evidence:
        return cls(source="none", unavailable_reason=reason)


class EvidenceNeeds(_Model):
    """What the decision needs gathered, worked out from the policy before any GitHub call."""

    # Team slugs (in the owner org) whose active membership must be checked for each approver.
    teams: list[str] = Field(default_factory=list)
    # The environment being deployed, for environment approvals.
    environment: str | None = None


class Question(Protocol):
    """What evidence gathering reads of a decision request (``DecisionRequest`` has these fields).

    A Protocol keeps this layer below the decision models: gathering needs only which pull request
    or commit the request names.
    """

    @property
    def pull_request(self) -> int | None: ...

    @property
    def sha(self) -> str | None: ...


@dataclass(frozen=True)
class EvidenceChange:
    """The evidence behind earlier decisions changed (reported by the webhook).

    Listeners (grant revocation) act on it: e.g. reason "approval by @bob dismissed",
    "new commits pushed", "pull request closed".
    """

    repository_id: int
    pull_request: int | None
    head_sha: str | None  # the head the earlier decisions were about (None: any)
    reason: str
