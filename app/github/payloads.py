"""The parts of GitHub's REST payloads the gate reads, as pydantic models.

Field names and shapes follow GitHub's OpenAPI description (tests/fixtures/github-openapi): the
schemas ``simple-user``, ``repository``, ``pull-request`` / ``pull-request-simple``, ``commit``,
``pull-request-review``, ``workflow-run``, ``environment-approvals`` and ``hook-delivery-item``. Unknown fields are
ignored; a missing required field is a ``GitHubError`` (the gate never decides on a payload it
could not read).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from app.errors import GitHubError


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GhUser(_Payload):
    """``simple-user``."""

    login: str
    id: int
    type: str = "User"


def _empty_is_none(value: Any) -> Any:
    # GitHub sends `{}` (empty-object) rather than null for a commit author it cannot link.
    return None if value == {} else value


# A commit's linked account: a user, or none (null or `{}`).
LinkedUser = Annotated[GhUser | None, BeforeValidator(_empty_is_none)]


class GhRepository(_Payload):
    """``repository`` (also the ``repository`` of every webhook payload)."""

    id: int
    full_name: str
    owner: GhUser


class GhRef(_Payload):
    ref: str
    sha: str


class GhLabel(_Payload):
    name: str


class GhPull(_Payload):
    """``pull-request`` (``GET /pulls/{n}``) or ``pull-request-simple`` (lists)."""

    number: int
    user: GhUser | None = None
    head: GhRef
    base: GhRef
    state: str
    merged: bool | None = None  # only on the full pull request
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    draft: bool = False
    labels: list[GhLabel] = Field(default_factory=list)
    commits: int | None = None  # only on the full pull request
    changed_files: int | None = None  # only on the full pull request

    @property
    def is_merged(self) -> bool:
        return bool(self.merged) if self.merged is not None else self.merged_at is not None


class GhDiffEntry(_Payload):
    """``diff-entry`` (``GET /pulls/{n}/files``): one changed file, and its old name when renamed."""

    filename: str
    status: str
    previous_filename: str | None = None


class GhGitActor(_Payload):
    name: str | None = None
    email: str | None = None
    date: datetime | None = None  # git's own time of the authoring or committing (``git-user``)


class GhGitCommit(_Payload):
    message: str = ""
    author: GhGitActor | None = None
    committer: GhGitActor | None = None


class GhCommit(_Payload):
    """``commit`` (``GET /pulls/{n}/commits``): the linked accounts and the raw git identity."""

    sha: str
    commit: GhGitCommit
    author: LinkedUser = None
    committer: LinkedUser = None


class GhReview(_Payload):
    """``pull-request-review``."""

    id: int
    user: GhUser | None = None
    state: str
    commit_id: str | None = None
    submitted_at: datetime | None = None


class GhRun(_Payload):
    """``workflow-run``."""

    id: int
    actor: GhUser | None = None
    triggering_actor: GhUser | None = None
    head_sha: str
    head_branch: str | None = None
    event: str
    path: str  # the workflow file, ``.github/workflows/deploy.yml``; GitHub may append ``@<ref>``
    run_attempt: int | None = None


class GhEnvironment(_Payload):
    name: str | None = None


class GhEnvironmentApproval(_Payload):
    """``environment-approvals``."""

    user: GhUser | None = None
    state: str
    environments: list[GhEnvironment] = Field(default_factory=list)
    comment: str | None = None


class GhHookDelivery(_Payload):
    """``hook-delivery-item``: one attempt to deliver an event to the App's webhook. ``guid`` is the
    event's X-GitHub-Delivery, shared by every redelivery of it; ``id`` is this attempt's."""

    id: int
    guid: str
    delivered_at: datetime
    redelivery: bool
    status: str
    status_code: int
    event: str
    action: str | None = None

    @property
    def succeeded(self) -> bool:
        """GitHub's "success": a status code from 200 to 399 (its ``status=success`` filter)."""
        return 200 <= self.status_code <= 399


M = TypeVar("M")


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}  # one per payload type; building one costs ~100 µs


def _adapter(kind: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    return adapter


def parse(kind: type[M], data: Any, what: str) -> M:
    """``data`` as ``kind`` (a model or ``list[Model]``); ``GitHubError`` when it is not that shape."""
    try:
        parsed: M = _adapter(kind).validate_python(data)
        return parsed
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        raise GitHubError(
            f"GitHub's answer had an unexpected shape while {what} ({where}: {first['msg']}); "
            "the decision was not made"
        ) from exc
