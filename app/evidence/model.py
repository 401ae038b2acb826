"""The facts a decision rests on, in the shape the GitHub client produces.

This is the engine's input about the change (who wrote it, whether an agent was involved) and its
approvals (who approved which commit). ``app.evidence.gather`` fills it from GitHub; an admin can
write the same shape in a file for ``agent-gate explain``. Nothing here does I/O.
"""

from __future__ import annotations

import re
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


_TRAILER = re.compile(r"^co-authored-by:\s*(?P<name>[^<]*?)\s*<(?P<email>[^<>\s]+)>\s*$", re.IGNORECASE)
NOREPLY_DOMAIN = "@users.noreply.github.com"


@dataclass(frozen=True)
class CoAuthor:
    name: str
    email: str


def co_authors(message: str) -> list[CoAuthor]:
    """``Co-authored-by:`` trailers of a commit message (matched per line, whole line)."""
    found = []
    for line in message.splitlines():
        m = _TRAILER.match(line.strip())
        if m:
            found.append(CoAuthor(m.group("name"), m.group("email")))
    return found


class GitActor(_Model):
    """An author or co-author of a commit as GitHub resolves it (GraphQL ``GitActor``): the address
    from the commit or its ``Co-authored-by:`` trailer, and the account it belongs to, if any."""

    email: str
    name: str = ""
    account: Account | None = None


class CommitFacts(_Model):
    """One commit of the change. ``author``/``committer`` are the linked GitHub accounts, when any.

    ``authors``: GitHub's ``Commit.authors`` (the author, then each co-author, resolved to accounts),
    when it was read; None when it was not (no co-author trailer needed it, or an evidence file).
    """

    sha: str
    message: str = ""
    author: Account | None = None
    author_email: str | None = None
    author_name: str | None = None
    committer: Account | None = None
    committer_email: str | None = None
    committer_name: str | None = None
    authors: list[GitActor] | None = None
    # git's committer date: when the commit was made (GitHub publishes no push time in the REST API;
    # GraphQL's pushedDate is deprecated). A lower bound of when a reviewer could first see it.
    committed_at: datetime | None = None


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


class ChangedFiles(_Model):
    """The files a pull request changes (``GET /pulls/{n}/files``; a renamed file under both names),
    or why they are not all known (``complete`` false: GitHub lists at most 3,000, or could not
    list them, or there is no pull request)."""

    paths: list[str] = Field(default_factory=list)
    complete: bool = False
    problem: str | None = None  # why not complete, for the reason a person reads


class Evidence(_Model):
    """Everything gathered for one decision. ``source`` says where it came from."""

    source: Literal["github", "file", "none"] = "none"
    # Why no evidence is available, when source == "none" and a decision needed it.
    unavailable_reason: str | None = None
    # What would make it available (the remedy of a decision that needed it); None: configure the App.
    unavailable_remedy: str | None = None
    pull_request: PullRequestFacts | None = None
    run: RunFacts | None = None
    reviews: list[Review] = Field(default_factory=list)
    environment_approvals: list[EnvironmentApproval] = Field(default_factory=list)
    # Keyed by lower-cased login.
    standings: dict[str, Standing] = Field(default_factory=dict)
    changed_files: ChangedFiles | None = None  # read only when a rule names paths
    github_api_calls: int = 0

    @classmethod
    def none(cls, reason: str | None = None, remedy: str | None = None) -> Evidence:
        return cls(source="none", unavailable_reason=reason, unavailable_remedy=remedy)


class EvidenceNeeds(_Model):
    """What the decision needs gathered, worked out from the policy before any GitHub call."""

    # Team slugs (in the owner org) whose active membership must be checked for each approver.
    teams: list[str] = Field(default_factory=list)
    # The environment being deployed, for environment approvals.
    environment: str | None = None
    # The pull request's changed files, for rules and approval requirements that name paths.
    files: bool = False


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
