"""The webhook payloads the gate receives, typed at the boundary.

One model per event the App subscribes to (docs/github-app.md), holding exactly the fields the
gate reads. Names and shapes follow GitHub's published webhook schemas
(tests/fixtures/github-openapi, ``webhooks``): a field is optional where any of the event's
schemas lets it be absent or null, and required only where every schema requires it, or where the
gate cannot act without it (tests/github/test_webhooks.py walks the schemas to hold the models to
that, and says which fields are the gate's own requirement).

Models defined here are strict: a webhook body is decoded JSON, so an id arrives as a number and
``"2000"`` is refused. The repository, user, pull request and review reuse the REST models of
app/github/payloads.py (the same objects, the same shapes) and parse as REST answers do.
Unknown fields are ignored everywhere.

:func:`parse_event` is the one entry point: the event's model, ``None`` for an event the gate does
not model, or :class:`~app.errors.InvalidRequest` (``invalid-payload``) naming the first field
that does not fit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from app.errors import InvalidRequest
from app.github.payloads import GhPull, GhRepository, GhReview

log = logging.getLogger("agent_gate.webhook")


class _Webhook(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class _Event(_Webhook):
    event_name: ClassVar[str]  # the ``X-GitHub-Event`` header this model reads

    action: str
    repository: GhRepository


# --- pull_request -----------------------------------------------------------------------------


class ChangedFrom(_Webhook):
    """An edited value's former content: ``{"from": ...}``."""

    from_: str = Field(alias="from")


class BaseChange(_Webhook):
    """``changes.base`` of an ``edited`` pull request: its base branch was changed."""

    ref: ChangedFrom


class PullRequestChanges(_Webhook):
    base: BaseChange | None = None  # absent when the title or body was edited


class PullRequestEvent(_Event):
    """``pull_request``: every action; ``before`` on ``synchronize``, ``changes`` on ``edited``."""

    event_name: ClassVar[str] = "pull_request"

    pull_request: GhPull
    before: str | None = None  # the head before the push (``synchronize`` only)
    changes: PullRequestChanges | None = None  # ``edited`` only

    @property
    def base_changed(self) -> bool:
        """An ``edited`` pull request whose base branch changed (not only its title or body)."""
        return self.changes is not None and self.changes.base is not None


# --- pull_request_review ----------------------------------------------------------------------


class PullRequestReviewEvent(_Event):
    """``pull_request_review`` (``submitted``, ``edited``, ``dismissed``); the pull request is
    GitHub's short form (no ``merged``, no ``commits``)."""

    event_name: ClassVar[str] = "pull_request_review"

    review: GhReview
    pull_request: GhPull


# --- check_run, check_suite -------------------------------------------------------------------


class CheckPullRequest(_Webhook):
    number: int


class CheckRunApp(_Webhook):
    id: int


class CheckSuiteApp(_Webhook):
    id: int | None


class CheckRun(_Webhook):
    name: str
    head_sha: str
    app: CheckRunApp | None  # GitHub sends null rather than leaving it out
    pull_requests: list[CheckPullRequest]  # only the repository's own PRs; empty for a fork's

    @property
    def app_id(self) -> int | None:
        """The App that created the check run, the one whose Re-run button was pressed."""
        return self.app.id if self.app is not None else None

    @property
    def pull_request_numbers(self) -> tuple[int, ...]:
        return tuple(sorted({p.number for p in self.pull_requests}))


class CheckSuite(_Webhook):
    head_sha: str
    app: CheckSuiteApp
    pull_requests: list[CheckPullRequest]

    @property
    def app_id(self) -> int | None:
        return self.app.id

    @property
    def pull_request_numbers(self) -> tuple[int, ...]:
        return tuple(sorted({p.number for p in self.pull_requests}))


class CheckRunEvent(_Event):
    """``check_run``; the gate acts on ``rerequested`` of its own checks."""

    event_name: ClassVar[str] = "check_run"

    check_run: CheckRun

    @property
    def item(self) -> CheckRun:
        return self.check_run


class CheckSuiteEvent(_Event):
    """``check_suite``; the gate acts on ``rerequested`` of its own suites."""

    event_name: ClassVar[str] = "check_suite"

    check_suite: CheckSuite

    @property
    def item(self) -> CheckSuite:
        return self.check_suite


# --- deployment_protection_rule, deployment_review ---------------------------------------------


class DeploymentRef(_Webhook):
    id: int


class DeploymentProtectionRuleEvent(_Event):
    """``deployment_protection_rule`` ``requested``: a job waits for the gate's answer.

    GitHub's schema marks none of its fields required; the gate requires the environment and the
    callback URL (which names the run to answer) since it can answer nothing without them.
    """

    event_name: ClassVar[str] = "deployment_protection_rule"

    environment: str = Field(min_length=1)
    deployment_callback_url: str
    deployment: DeploymentRef | None = None


class WorkflowRunRef(_Webhook):
    id: int


class DeploymentReviewEvent(_Event):
    """``deployment_review`` (``approved``, ``rejected``, ``requested``) of a run's environments."""

    event_name: ClassVar[str] = "deployment_review"

    workflow_run: WorkflowRunRef | None  # always sent, but GitHub's schema allows null


# --- merge_group ---------------------------------------------------------------------------------


class MergeGroup(_Webhook):
    """``merge-group``: the commit GitHub's merge queue built (``head_sha``) on ``base_sha``, on the
    branch ``head_ref`` (``gh-readonly-queue/<base>/pr-<N>-<sha>``, with or without ``refs/heads/``)."""

    head_sha: str
    head_ref: str
    base_sha: str
    base_ref: str


class MergeGroupEvent(_Event):
    """``merge_group`` (``checks_requested``, ``destroyed``). GitHub's schema does not require
    ``repository``; the gate does, since it cannot tell whose group it is without it."""

    event_name: ClassVar[str] = "merge_group"

    merge_group: MergeGroup
    reason: str | None = None  # ``destroyed`` only: merged, invalidated or dequeued


WebhookEvent = (
    PullRequestEvent
    | PullRequestReviewEvent
    | CheckRunEvent
    | CheckSuiteEvent
    | DeploymentProtectionRuleEvent
    | DeploymentReviewEvent
    | MergeGroupEvent
)

MODELS: Mapping[str, type[WebhookEvent]] = {
    m.event_name: m
    for m in (
        PullRequestEvent,
        PullRequestReviewEvent,
        CheckRunEvent,
        CheckSuiteEvent,
        DeploymentProtectionRuleEvent,
        DeploymentReviewEvent,
        MergeGroupEvent,
    )
}

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}


def parse_event(event_name: str, payload: object) -> WebhookEvent | None:
    """The payload of ``event_name`` (the ``X-GitHub-Event`` header) as its model.

    Returns ``None`` for an event the gate does not model. Raises :class:`InvalidRequest`
    (``invalid-payload``) when the payload lacks a field the gate needs or has one of another type;
    the message names the event and the first such field.
    """
    model = MODELS.get(event_name)
    if model is None:
        return None
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        log.info("%s payload refused (%d errors): %s", event_name, len(errors), errors)
        raise InvalidRequest(
            _describe(event_name, exc.errors(include_url=False)[0]), code="invalid-payload"
        ) from exc


def _describe(event_name: str, error: ErrorDetails) -> str:
    what = f"the {event_name} payload"
    field = _dotted(error["loc"])
    if not field:
        return f"{what} is not a JSON object (got {_json_type(error['input'])})"
    if error["type"] == "missing":
        return f"{what} lacks {field}; is the App subscribed to the documented events?"
    return f"{what} has {field} of the wrong shape: {error['msg']} (got {_json_type(error['input'])})"


def _dotted(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    # bool before int: True is an int to Python, not to JSON.
    for kind, name in _JSON_TYPES.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, float) else type(value).__name__
