"""The policy language: pydantic models for an org's policy YAML.

A policy file governs one owner (organisation or user), pinned by its numeric id. It declares the
action catalog (on top of the built-in one), extra agent identities, and the rules that allow
actions. Matching of identity claims is exact, or a regular expression anchored to the whole
value (``{pattern: ...}``, compiled once with ``re.fullmatch``); never substring or prefix.

Every model forbids unknown fields and is strict: YAML's ``on``/``yes`` (booleans) or ``1.10`` (a
float) are refused where text is expected instead of silently changing meaning. Checks that span
several fields (unknown actions, duplicate rule names, lowering a built-in class) live in
:func:`cross_problems`, so the loader can point at the exact line of each.

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

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.policy.paths import PathGlob

# Regular expressions of the language's names. ``PATTERN_MEANINGS`` says each in words, for errors.
SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ACTION_NAME = r"^[a-z][a-z0-9-]{0,63}$"
LOGIN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
ACCOUNT_LOGIN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}(\[bot\])?$"
REPOSITORY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}/[A-Za-z0-9_.-]{1,100}$"
TEAM_SLUG = r"^[a-z0-9][a-z0-9_-]{0,99}$"
EVENT_NAME = r"^[a-z][a-z_]{0,63}$"
GIT_SHA = r"^[0-9a-f]{40}$"
EMAIL = r"^[^@\s]+@[^@\s]+$"
BRANCH_PREFIX = r"^[A-Za-z0-9._-]+/$"
GITHUB_PERMISSION_NAME = r"^[a-z]+(_[a-z]+)*$"
AUDIENCE = r"^[A-Za-z0-9._:/-]{1,200}$"
# A person or a team who answers for a rule, repository or workflow, written as in CODEOWNERS.
OWNER_REF = r"^@[A-Za-z0-9][A-Za-z0-9_-]{0,99}(/[a-z0-9][a-z0-9_-]{0,99})?$"

PATTERN_MEANINGS: dict[str, str] = {
    SLUG: "a slug: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "at most 64 characters",
    ACTION_NAME: "an action name: lower-case letters, digits and '-', starting with a letter",
    LOGIN: "a GitHub login such as octo-org",
    ACCOUNT_LOGIN: "a GitHub login such as my-agent[bot]",
    REPOSITORY_NAME: "owner/name, e.g. octo-org/octo-repo",
    TEAM_SLUG: "a team slug: lower-case letters, digits, '-' and '_' (the team's URL name, without the org)",
    EVENT_NAME: "a GitHub Actions event name such as push or workflow_dispatch",
    GIT_SHA: "a full 40-character lower-case commit sha",
    EMAIL: "an e-mail address",
    BRANCH_PREFIX: "a branch prefix ending in '/', e.g. my-agent/",
    GITHUB_PERMISSION_NAME: "a GitHub App permission name such as contents or pull_requests",
    AUDIENCE: "letters, digits and . _ : / -, e.g. deploy:production",
    OWNER_REF: "a GitHub user (@octocat) or a team of the org (@octo-org/security), as in CODEOWNERS",
}


OwnerRef = Annotated[
    str,
    Field(pattern=OWNER_REF, description="A GitHub user (@octocat) or team (@octo-org/security)."),
]
Owners = Annotated[
    list[OwnerRef] | None,
    Field(
        min_length=1,
        description="Who answers for this (GitHub users or teams, as in CODEOWNERS). Omitted: inherited.",
    ),
]
# enforce: denies are denied. audit: a deny is answered as an allow marked would_deny (never for
# the built-in invariants; app/decide/audit_mode.py).
Mode = Literal["enforce", "audit"]


class PermissionClass(StrEnum):
    """What an action may do: ``read`` < ``propose`` < ``execute``."""

    READ = "read"
    PROPOSE = "propose"
    EXECUTE = "execute"

    @property
    def rank(self) -> int:
        return _RANKS[self.value]


_RANKS = {"read": 0, "propose": 1, "execute": 2}


class _Strict(BaseModel):
    # strict: no coercion of YAML booleans, floats or numbers into text, nor of text into numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _compile(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"expected a valid regular expression ({exc})") from exc


class Pattern(_Strict):
    """A regular expression that must match the *whole* value (``re.fullmatch``)."""

    pattern: str = Field(
        min_length=1,
        description="Regular expression matched against the whole value (full match: no need for ^ and $).",
    )
    _compiled: re.Pattern[str] = PrivateAttr()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        _compile(value)
        return value

    def model_post_init(self, __context: Any) -> None:
        self._compiled = _compile(self.pattern)

    def matches(self, value: str) -> bool:
        return self._compiled.fullmatch(value) is not None

    def describe(self) -> str:
        return f"/{self.pattern}/"


def _matcher_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "exact-value"
    if isinstance(value, dict | Pattern):
        return "pattern-object"
    return None


Matcher = Annotated[
    Annotated[str, Tag("exact-value"), Field(min_length=1)] | Annotated[Pattern, Tag("pattern-object")],
    Discriminator(
        _matcher_kind,
        custom_error_type="matcher_type",
        custom_error_message="expected a string, or {pattern: REGEX}",
    ),
    Field(description="An exact value, or {pattern: REGEX} matched against the whole value."),
]


def matcher_matches(matcher: str | Pattern, value: str | None) -> bool:
    """Exact equality, or a full regular-expression match; ``None`` (claim absent) never matches."""
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

    # For editors: an approval action is an execute action (checked by the validator below too).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"approval": {"const": True}}, "required": ["approval"]},
            "then": {"properties": {"permission": {"const": "execute"}}},
        }
    )

    permission: Annotated[PermissionClass, Field(strict=False)] = Field(
        description="The action's permission class: read, propose or execute."
    )
    approval: bool = Field(
        False, description="True for actions that approve someone else's change (never allowed to agents)."
    )
    description: str = Field("", description="What the action does, for people reading decisions.")

    @model_validator(mode="after")
    def _approval_is_execute(self) -> ActionSpec:
        if self.approval and self.permission is not PermissionClass.EXECUTE:
            raise ValueError("expected permission 'execute' for an approval action")
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
    """The organisation or user this policy governs."""

    login: str = Field(pattern=LOGIN, description="The owner's login, for display and cross-checking.")
    id: int = Field(
        gt=0,
        description="repository_owner_id: the owner's numeric id (names can be re-registered, ids cannot).",
    )


class AgentAccount(_Strict):
    """A GitHub account, by numeric id (preferred) and/or exact login."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["login"]}, {"required": ["id"]}]})

    login: str | None = Field(None, pattern=ACCOUNT_LOGIN, description="Exact login, e.g. my-agent[bot].")
    id: int | None = Field(None, gt=0, description="Numeric account id (preferred: logins can change).")
    name: str = Field(
        "policy agent", min_length=1, description="What this account is, for people reading decisions."
    )

    @model_validator(mode="after")
    def _login_or_id(self) -> AgentAccount:
        if self.login is None and self.id is None:
            raise ValueError("expected at least one of 'login' or 'id'")
        return self


class AgentEmail(_Strict):
    """A commit e-mail address (author, committer or Co-authored-by) that identifies an agent."""

    email: str = Field(pattern=EMAIL, description="The exact address (compared case-insensitively).")
    name: str = Field("policy agent", min_length=1, description="The agent's name, for people.")


class BranchPrefix(_Strict):
    """Branches an agent pushes, e.g. ``my-agent/``."""

    prefix: str = Field(pattern=BRANCH_PREFIX, description="A branch name prefix ending in '/'.")
    name: str = Field("policy agent", min_length=1, description="The agent's name, for people.")


class Agents(_Strict):
    """Identities the policy adds to the built-in catalog (``app/data/agents.yml``)."""

    ai: list[AgentAccount] = Field(
        default_factory=list, description="AI coding agents, on top of the built-in list."
    )
    bots: list[AgentAccount] = Field(
        default_factory=list, description="Ordinary (non-AI) bots, which rules treat with allow_bots."
    )
    emails: list[AgentEmail] = Field(
        default_factory=list, description="Commit e-mail addresses that identify an agent."
    )
    branch_prefixes: list[BranchPrefix] = Field(
        default_factory=list, description="Branch name prefixes that mark an agent's branches."
    )
    labels: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, description="Pull-request labels that mark agent involvement."
    )


class Repository(_Strict):
    """A repository, pinned by numeric id; the name is checked too, so a rename is noticed."""

    id: int = Field(gt=0, description="repository_id: the repository's numeric id.")
    name: str = Field(pattern=REPOSITORY_NAME, description="owner/name, e.g. octo-org/octo-repo.")
    owners: Owners = None


class RepositoryPattern(_Strict):
    """Repositories whose whole ``owner/name`` matches a regular expression."""

    name_pattern: str = Field(
        min_length=1, description="Regular expression matched against the whole owner/name."
    )
    _compiled: re.Pattern[str] = PrivateAttr()

    @field_validator("name_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        _compile(value)
        return value

    def model_post_init(self, __context: Any) -> None:
        self._compiled = _compile(self.name_pattern)

    def matches(self, name: str) -> bool:
        return self._compiled.fullmatch(name) is not None


def _repository_kind(value: Any) -> str | None:
    if isinstance(value, RepositoryPattern) or (isinstance(value, dict) and "name_pattern" in value):
        return "repository-pattern"
    if isinstance(value, dict | Repository):
        return "repository-id"
    return None


RepositoryEntry = Annotated[
    Annotated[Repository, Tag("repository-id")] | Annotated[RepositoryPattern, Tag("repository-pattern")],
    Discriminator(
        _repository_kind,
        custom_error_type="repository_type",
        custom_error_message="expected {id, name} or {name_pattern: REGEX}",
    ),
]


def _repositories_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "all-repositories"
    if isinstance(value, list):
        return "repository-list"
    return None


Repositories = Annotated[
    Annotated[Literal["*"], Tag("all-repositories")]
    | Annotated[list[RepositoryEntry], Tag("repository-list"), Field(min_length=1)],
    Discriminator(
        _repositories_kind,
        custom_error_type="repositories_type",
        custom_error_message="expected '*' or a list of {id, name} / {name_pattern: REGEX}",
    ),
]


class Workflow(_Strict):
    """A reusable or top-level workflow, by its ``job_workflow_ref``, optionally pinned to a sha."""

    ref: Matcher = Field(
        description="job_workflow_ref, e.g. octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main, "
        "or {pattern: REGEX}."
    )
    sha: str | None = Field(
        None, pattern=GIT_SHA, description="Pin: the token's job_workflow_sha must equal this."
    )
    owners: Owners = None


_ALL_SOURCES: tuple[Literal["review", "environment"], ...] = ("review", "environment")


class PathApprovals(_Strict):
    """More approvals for a change that touches some paths (docs/policy.md#path-sensitive-rules)."""

    paths: list[PathGlob] = Field(min_length=1, description="The paths that call for these approvals.")
    count: int = Field(ge=1, le=10, description="Independent human approvals needed when one is touched.")
    teams: list[Annotated[str, Field(pattern=TEAM_SLUG)]] = Field(
        default_factory=list, description="Team slugs of the owner org the approvers must actively belong to."
    )
    agents_only: bool = Field(False, description="True: only for agent-driven changes.")


class Approvals(_Strict):
    """What an execute rule needs from humans. Agents always need at least one, whatever this says."""

    count: int = Field(
        1, ge=0, le=10, description="Independent human approvals of the exact commit (0 to 10; default 1)."
    )
    teams: list[Annotated[str, Field(pattern=TEAM_SLUG)]] = Field(
        default_factory=list,
        description="Team slugs of the owner org; an approver must be an active member of one of them.",
    )
    last_push: bool = Field(False, description="True: whoever pushed the last commit cannot approve it.")
    unresolved_co_authors: Literal["block", "allow"] = Field(
        "block",
        description="A Co-authored-by trailer whose address GitHub ties to no account cannot be told "
        "apart from an approver: block (default) denies until the address is linked to its account; "
        "allow only shows it.",
    )
    sources: list[Literal["review", "environment"]] = Field(
        default_factory=lambda: list(_ALL_SOURCES),
        min_length=1,
        description="Which approvals count: pull-request reviews (review), environment deployment "
        "reviews of the run (environment). Default: both.",
    )
    paths: list[PathApprovals] = Field(
        default_factory=list,
        description="More approvals when the change touches some paths; its files are read from the pull "
        "request, and a change whose files cannot all be read is denied.",
    )


class Grant(_Strict):
    """A just-in-time credential issued with an allowed decision (docs/grants.md)."""

    ttl: int = Field(600, ge=30, le=3600, description="Lifetime in seconds (default 10 min, at most 60 min).")
    audience: str | None = Field(
        None, pattern=AUDIENCE, description="The grant's aud, e.g. deploy:production."
    )
    required: bool = Field(False, description="Issue a grant even when the request does not ask for one.")
    delegate_audiences: list[Annotated[str, Field(pattern=AUDIENCE)]] = Field(
        default_factory=list,
        description="Narrower audiences a grant of this rule may be delegated to "
        "(POST /v1/grants/delegate); otherwise a delegated grant keeps its parent's audience.",
    )


GITHUB_PERMISSION = Literal["read", "write"]


class BreakGlass(_Strict):
    """Who may invoke an emergency override, and how (docs/governance.md#break-glass)."""

    invokers: list[OwnerRef] = Field(
        min_length=1,
        description="GitHub users or teams who may invoke it; an agent or bot account never may, whatever "
        "this says.",
    )
    confirm: bool = Field(
        True, description="A second person of the invokers must confirm it before it counts."
    )
    max_minutes: int = Field(
        60, ge=1, le=240, description="The longest override that may be asked for, in minutes (1 to 240)."
    )


class MergeQueue(_Strict):
    """How a merge queue's groups are judged (docs/github-app.md#merge-queues)."""

    allow_overlapping_changes: bool = Field(
        False,
        description="True: a merge group whose pull requests change the same file may pass when the group's "
        "lines are theirs together; default false: it fails, since the merged result was never reviewed.",
    )


class Freeze(_Strict):
    """Who may freeze agents, and lift a freeze (docs/governance.md#freeze)."""

    freezers: list[OwnerRef] = Field(
        min_length=1,
        description="GitHub users or teams who may freeze agents (the organisation, a repository or an "
        "agent kind) and lift a freeze; an agent or bot account never may, whatever this says.",
    )


class Rule(_Strict):
    """Allows the listed actions when every condition holds. An omitted condition matches anything."""

    name: str = Field(pattern=SLUG, description="Unique name, shown in every decision the rule makes.")
    description: str = Field("", description="What the rule is for, for people reading decisions.")
    owners: Owners = None
    mode: Mode | None = Field(
        None,
        description="audit: a deny under this rule is answered as an allow marked would_deny (never for "
        "the built-in invariants); enforce: denied. Omitted: the policy's mode.",
    )
    actions: list[Annotated[str, Field(pattern=ACTION_NAME)]] = Field(
        min_length=1, description="The actions this rule allows (names from the action catalog)."
    )
    repositories: Repositories = Field(
        description="'*' for every repository of the owner, or a list of {id, name} / {name_pattern: REGEX}."
    )
    refs: list[Matcher] | None = Field(
        None, min_length=1, description="The token's ref, e.g. refs/heads/main. Omitted: any ref."
    )
    environments: list[Matcher] | None = Field(
        None,
        min_length=1,
        description="The environment acted on (the request's, else the token's). Omitted: any, or none.",
    )
    events: list[Annotated[str, Field(pattern=EVENT_NAME)]] | None = Field(
        None,
        min_length=1,
        description="The token's event_name, e.g. push, workflow_dispatch. Omitted: any event.",
    )
    workflows: list[Workflow] | None = Field(
        None,
        min_length=1,
        description="The token's job_workflow_ref (and optionally job_workflow_sha). Omitted: any workflow.",
    )
    runner_environments: list[Literal["github-hosted", "self-hosted"]] | None = Field(
        None, min_length=1, description="The token's runner_environment. Omitted: any runner."
    )
    paths: list[PathGlob] | None = Field(
        None,
        min_length=1,
        description="The change (its pull request's files) touches one of these paths; unreadable files deny.",
    )
    approvals: Approvals | None = Field(
        None,
        description="Human approvals an execute action needs. Omitted: none for people; agents always "
        "need at least one.",
    )
    allow_agents: bool = Field(True, description="False: agent-driven workloads never match this rule.")
    allow_bots: bool = Field(
        True, description="False: ordinary (non-AI) bots such as dependabot never match this rule."
    )
    grant: Grant | None = Field(None, description="Issue a gate-signed grant with allowed decisions.")
    github_permissions: (
        dict[Annotated[str, Field(pattern=GITHUB_PERMISSION_NAME)], GITHUB_PERMISSION] | None
    ) = Field(
        None,
        min_length=1,
        description="A GitHub App installation token for this repository only, with exactly these "
        "permissions (read or write).",
    )

    def required_approvals(self) -> int:
        return self.approvals.count if self.approvals else 0


# The validation context key under which the loader collects cross-field problems (instead of one
# ValueError for the whole policy), so that each can be reported at its own line.
COLLECT_PROBLEMS = "agent_gate.policy.problems"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class CrossProblem:
    """A problem spanning several fields: where it is, what is wrong, and another place it refers to."""

    loc: Loc
    message: str
    refers_to: Loc | None = None


class Policy(_Strict):
    """One owner's policy file."""

    version: Literal[1] = Field(description="Policy language version: 1.")
    owner: Owner = Field(description="The owner this policy governs, pinned by repository_owner_id.")
    description: str = Field("", description="What this policy is, for people.")
    owners: Owners = None
    mode: Mode = Field(
        "enforce",
        description="audit: every rule without its own mode answers a deny as an allow marked would_deny "
        "(never for the built-in invariants). Default: enforce.",
    )
    break_glass: BreakGlass | None = Field(
        None, description="Who may invoke an emergency override. Omitted: nobody may."
    )
    freeze: Freeze | None = Field(
        None, description="Who may freeze every agent in a scope (a kill-switch). Omitted: nobody may."
    )
    actions: dict[Annotated[str, Field(pattern=ACTION_NAME)], ActionSpec] = Field(
        default_factory=dict,
        description="Actions added to the built-in catalog, or built-in actions made stricter.",
    )
    agents: Agents = Field(
        default_factory=Agents, description="Identities added to the built-in agent and bot lists."
    )
    merge_queue: MergeQueue = Field(
        default_factory=MergeQueue, description="How the groups of a merge queue are judged."
    )
    rules: list[Rule] = Field(
        default_factory=list, description="The rules, tried in file order. No matching rule: denied."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 in Python: a literal check alone would accept it
            raise ValueError("expected 1")
        return value

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Policy:
        problems = cross_problems(self)
        if not problems:
            return self
        collector = info.context.get(COLLECT_PROBLEMS) if isinstance(info.context, dict) else None
        if isinstance(collector, list):
            collector.extend(problems)  # the loader reports each at its line and refuses the policy
            return self
        raise ValueError("; ".join(f"{_loc_text(p.loc)}: {p.message}" for p in problems))

    def mode_of(self, rule: Rule) -> Mode:
        """The rule's own mode, else the policy's."""
        return rule.mode or self.mode

    def catalog(self) -> dict[str, ActionSpec]:
        """The built-in actions with this policy's additions and raised classes."""
        return {**BUILTIN_ACTIONS, **self.actions}


def _loc_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def cross_problems(policy: Policy) -> list[CrossProblem]:
    """Checks spanning fields: the catalog may only be made stricter; rules name known actions once."""
    problems: list[CrossProblem] = []
    for name, spec in policy.actions.items():
        builtin = BUILTIN_ACTIONS.get(name)
        if builtin is None:
            continue
        if spec.permission.rank < builtin.permission.rank:
            problems.append(
                CrossProblem(
                    ("actions", name, "permission"),
                    f"got {spec.permission.value}, expected {builtin.permission.value} or higher: "
                    f"{name!r} is built in as {builtin.permission.value}, and a policy may raise an "
                    "action's class, never lower it",
                )
            )
        if builtin.approval and not spec.approval:
            problems.append(
                CrossProblem(
                    ("actions", name, "approval"),
                    f"got approval: false, expected approval: true: {name!r} is built in as an approval "
                    "action, and a policy cannot unmark it",
                )
            )
    catalog = policy.catalog()
    first_rule: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        if rule.name in first_rule:
            problems.append(
                CrossProblem(
                    ("rules", i, "name"),
                    f"got {rule.name!r}, expected a unique rule name: rules[{first_rule[rule.name]}] "
                    "already has it",
                    refers_to=("rules", first_rule[rule.name], "name"),
                )
            )
        else:
            first_rule[rule.name] = i
        seen: set[str] = set()
        for j, action in enumerate(rule.actions):
            if action in seen:
                problems.append(
                    CrossProblem(("rules", i, "actions", j), f"action {action!r} is listed twice")
                )
            seen.add(action)
            if action not in catalog:
                close = difflib.get_close_matches(action, list(catalog), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    CrossProblem(
                        ("rules", i, "actions", j),
                        f"unknown action {action!r}{hint}; expected one of {', '.join(sorted(catalog))}, "
                        "or declare it under 'actions:'",
                    )
                )
    return problems
