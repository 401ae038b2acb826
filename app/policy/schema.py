"""The policy language: pydantic models for an org's policy YAML.

A policy file governs one owner (organisation or user), pinned by its numeric id. It declares the
action catalog (on top of the built-in one), extra agent identities, and the rules that allow
actions. Matching of identity claims is exact, or a regular expression anchored to the whole
value (``{pattern: ...}``, compiled once with ``re.fullmatch``); never substring or prefix.

Example::

    version: 1
    owner: {login: acme, id: 1234}
    rules:
      - name: deploy-production
        actions: [deploy]
        repositories: [{id: 42, name: acme/api}]
        refs: [refs/heads/main]
        environments: [production]
        events: [push, workflow_dispatch]
        approvals: {count: 1, teams: [release-managers]}
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class PermissionClass(StrEnum):
    READ = "read"
    PROPOSE = "propose"
    EXECUTE = "execute"

    @property
    def rank(self) -> int:
        return {"read": 0, "propose": 1, "execute": 2}[self.value]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pattern(_Strict):
    """A regular expression that must match the *whole* value (``re.fullmatch``)."""

    pattern: str = Field(description="Regular expression matched against the whole value (fullmatch).")
    _compiled: re.Pattern[str] = PrivateAttr()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    def model_post_init(self, __context: Any) -> None:
        self._compiled = re.compile(self.pattern)

    def matches(self, value: str) -> bool:
        return self._compiled.fullmatch(value) is not None

    def describe(self) -> str:
        return f"/{self.pattern}/"


Matcher = Annotated[
    str | Pattern,
    Field(description="An exact value, or {pattern: REGEX} matched against the whole value."),
]


def matcher_matches(matcher: str | Pattern, value: str | None) -> bool:
    if value is None:
        return False
    if isinstance(matcher, Pattern):
        return matcher.matches(value)
    return matcher == value


def describe_matchers(matchers: list[str | Pattern]) -> str:
    parts = [m.describe() if isinstance(m, Pattern) else m for m in matchers]
    return parts[0] if len(parts) == 1 else "one of " + ", ".join(parts)


class ActionSpec(_Strict):
    """An entry of the action catalog."""

    permission: PermissionClass = Field(description="read, propose or execute.")
    approval: bool = Field(False, description="True for actions that approve someone else's change.")
    description: str = ""

    @model_validator(mode="after")
    def _approval_is_execute(self) -> ActionSpec:
        if self.approval and self.permission is not PermissionClass.EXECUTE:
            raise ValueError("an approval action must have permission 'execute'")
        return self


# The built-in catalog. A policy may add actions and may raise a class, never lower one.
BUILTIN_ACTIONS: dict[str, ActionSpec] = {
    "read": ActionSpec(permission=PermissionClass.READ, description="Read repository contents or metadata."),
    "read-contents": ActionSpec(permission=PermissionClass.READ, description="Read repository contents."),
    "comment": ActionSpec(permission=PermissionClass.PROPOSE, description="Comment on an issue or PR."),
    "open-pull-request": ActionSpec(permission=PermissionClass.PROPOSE, description="Open a pull request."),
    "push-branch": ActionSpec(permission=PermissionClass.PROPOSE, description="Push a non-default branch."),
    "preview-deploy": ActionSpec(
        permission=PermissionClass.PROPOSE, description="Deploy a throwaway preview."
    ),
    "deploy": ActionSpec(permission=PermissionClass.EXECUTE, description="Deploy to an environment."),
    "merge": ActionSpec(permission=PermissionClass.EXECUTE, description="Merge a pull request."),
    "release": ActionSpec(permission=PermissionClass.EXECUTE, description="Cut a release."),
    "publish": ActionSpec(permission=PermissionClass.EXECUTE, description="Publish a package."),
    "read-secrets": ActionSpec(permission=PermissionClass.EXECUTE, description="Read production secrets."),
    "approve": ActionSpec(
        permission=PermissionClass.EXECUTE, approval=True, description="Approve a pull request or deployment."
    ),
}


class Owner(_Strict):
    login: str = Field(description="The owner's login, for display and cross-checking.")
    id: int = Field(
        gt=0, description="repository_owner_id: the owner's numeric id. Names can be re-registered."
    )


class AgentAccount(_Strict):
    login: str | None = Field(None, description="Exact login, e.g. my-agent[bot].")
    id: int | None = Field(None, gt=0, description="Numeric account id (preferred).")
    name: str = Field("policy agent", description="What this agent is, for people reading decisions.")

    @model_validator(mode="after")
    def _login_or_id(self) -> AgentAccount:
        if self.login is None and self.id is None:
            raise ValueError("give at least one of 'login' or 'id'")
        return self


class AgentEmail(_Strict):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = "policy agent"


class BranchPrefix(_Strict):
    prefix: str = Field(min_length=2, pattern=r"^[A-Za-z0-9._-]+/$", description="e.g. 'my-agent/'.")
    name: str = "policy agent"


class Agents(_Strict):
    """Identities the policy adds to the built-in catalog."""

    ai: list[AgentAccount] = Field(
        default_factory=list, description="AI agents, on top of the built-in list."
    )
    bots: list[AgentAccount] = Field(default_factory=list, description="Ordinary (non-AI) bots.")
    emails: list[AgentEmail] = Field(
        default_factory=list, description="Commit e-mails that identify an agent."
    )
    branch_prefixes: list[BranchPrefix] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list, description="PR labels that mark agent involvement.")


class Repository(_Strict):
    """A repository, pinned by numeric id; the name is checked too, so a rename is noticed."""

    id: int = Field(gt=0)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")


class RepositoryPattern(_Strict):
    name_pattern: str = Field(description="Regular expression matched against the whole owner/name.")
    _compiled: re.Pattern[str] = PrivateAttr()

    @field_validator("name_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    def model_post_init(self, __context: Any) -> None:
        self._compiled = re.compile(self.name_pattern)

    def matches(self, name: str) -> bool:
        return self._compiled.fullmatch(name) is not None


class Workflow(_Strict):
    """A reusable or top-level workflow, by its exact ``job_workflow_ref``, optionally pinned to a sha."""

    ref: Matcher = Field(
        description="job_workflow_ref, e.g. acme/api/.github/workflows/deploy.yml@refs/heads/main"
    )
    sha: str | None = Field(
        None, pattern=r"^[0-9a-f]{40}$", description="Pin: job_workflow_sha must equal this."
    )


_ALL_SOURCES: tuple[Literal["review", "environment"], ...] = ("review", "environment")


class Approvals(_Strict):
    """What an execute rule needs from humans. Agents always need at least one, whatever this says."""

    count: int = Field(1, ge=0, le=10, description="Independent human approvals of the exact commit.")
    teams: list[str] = Field(
        default_factory=list, description="Team slugs (in the owner org); an approver must be in one."
    )
    last_push: bool = Field(False, description="The person who pushed the last commit cannot approve.")
    sources: list[Literal["review", "environment"]] = Field(
        default_factory=lambda: list(_ALL_SOURCES),
        description="Which approvals count: pull-request reviews, environment deployment reviews.",
    )

    @field_validator("teams")
    @classmethod
    def _team_slugs(cls, value: list[str]) -> list[str]:
        for slug in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug):
                raise ValueError(f"team slug {slug!r} is not a slug (lower-case letters, digits, '-', '_')")
        return value

    @field_validator("sources")
    @classmethod
    def _some_source(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one approval source: review, environment")
        return value


class Grant(_Strict):
    """A just-in-time credential issued with an allowed decision."""

    ttl: int = Field(600, ge=30, le=3600, description="Lifetime in seconds (default 10 min, at most 60 min).")
    audience: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._:/-]{1,200}$", description="The grant's aud, e.g. deploy:production."
    )
    required: bool = Field(False, description="Issue a grant even when the request does not ask for one.")


GITHUB_PERMISSION = Literal["read", "write"]


class Rule(_Strict):
    """Allows the listed actions when every condition holds. An omitted condition matches anything."""

    name: str = Field(pattern=SLUG, description="Unique name, shown in every decision it makes.")
    description: str = ""
    actions: list[str] = Field(min_length=1)
    repositories: Literal["*"] | list[Repository | RepositoryPattern] = Field(
        description="'*' for every repository of the owner, or a list of {id, name} / {name_pattern}."
    )
    refs: list[Matcher] | None = None
    environments: list[Matcher] | None = None
    events: list[str] | None = None
    workflows: list[Workflow] | None = None
    runner_environments: list[Literal["github-hosted", "self-hosted"]] | None = None
    approvals: Approvals | None = Field(None, description="Human approvals an execute action needs.")
    allow_agents: bool = Field(True, description="False: agent-driven workloads never match this rule.")
    allow_bots: bool = Field(
        True, description="False: ordinary (non-AI) bots such as dependabot never match."
    )
    grant: Grant | None = Field(None, description="Issue a gate-signed grant with allowed decisions.")
    github_permissions: dict[str, GITHUB_PERMISSION] | None = Field(
        None,
        description="A GitHub App installation token for this repository only, with exactly these permissions.",
    )

    @field_validator("repositories")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("list at least one repository, or write '*' for all of the owner's repositories")
        return value

    @field_validator("refs", "environments", "events", "workflows", "runner_environments")
    @classmethod
    def _no_empty_list(cls, value: Any) -> Any:
        if value is not None and len(value) == 0:
            raise ValueError("an empty list matches nothing; omit the field to match anything")
        return value

    def required_approvals(self) -> int:
        return self.approvals.count if self.approvals else 0


class Policy(_Strict):
    """One org's policy file."""

    version: Literal[1] = Field(description="Policy language version; 1.")
    owner: Owner
    description: str = ""
    actions: dict[str, ActionSpec] = Field(
        default_factory=dict, description="Actions added to (or made stricter than) the built-in catalog."
    )
    agents: Agents = Field(default_factory=Agents)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("actions")
    @classmethod
    def _action_names(cls, value: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
        for name, spec in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", name):
                raise ValueError(f"action name {name!r} must be lower-case letters, digits and '-'")
            builtin = BUILTIN_ACTIONS.get(name)
            if builtin and spec.permission.rank < builtin.permission.rank:
                raise ValueError(
                    f"action {name!r} is built in as {builtin.permission.value}; a policy may raise its class, "
                    f"not lower it to {spec.permission.value}"
                )
            if builtin and builtin.approval and not spec.approval:
                raise ValueError(
                    f"action {name!r} is built in as an approval action; a policy cannot unmark it"
                )
        return value

    @model_validator(mode="after")
    def _rules_consistent(self) -> Policy:
        catalog = self.catalog()
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{i}]: rule name {rule.name!r} is used twice; names must be unique")
            seen.add(rule.name)
            for action in rule.actions:
                if action not in catalog:
                    raise ValueError(
                        f"rules[{i}] ({rule.name}): unknown action {action!r}; expected one of "
                        f"{', '.join(sorted(catalog))} or an entry under 'actions:'"
                    )
        return self

    def catalog(self) -> dict[str, ActionSpec]:
        return {**BUILTIN_ACTIONS, **self.actions}
