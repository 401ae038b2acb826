"""Warnings about valid but dangerous or ineffective policies (``agent-gate policy check`` prints them).

A warning never stops a policy from loading. Each names the file, the line of the field concerned
(or of its rule, when the field is omitted) and says what to write instead. Two kinds:

- dangerous: execute allowed on self-hosted runners, from pull-request events, for wildcard
  repositories, from any ref or workflow, or to agents with zero approvals (the engine refuses
  some of these anyway: the warning says so, so the policy says what really happens);
- ineffective: a rule or an entry that can never match (a ref that is not a full ref, an unknown
  event, a repository of another owner, a rule shadowed by an earlier one), or approvals that are
  never checked.
"""

from __future__ import annotations

import difflib
import re

from app.errors import PolicyProblem
from app.policy.loader import LoadedPolicy
from app.policy.schema import PermissionClass, Repository, RepositoryPattern, Rule

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")

# Never given to an agent-driven workload, whatever a rule says (app/grants.py withholds them).
AGENT_FORBIDDEN_PERMISSIONS = frozenset({"administration", "workflows", "secrets", "members"})

# The event_name values GitHub Actions sends ("Events that trigger workflows", docs.github.com;
# "dynamic" is the event of GitHub-run dynamic workflows such as the Copilot coding agent's).
GITHUB_EVENTS = frozenset(
    {
        "branch_protection_rule", "check_run", "check_suite", "create", "delete", "deployment",
        "deployment_status", "discussion", "discussion_comment", "dynamic", "fork", "gollum",
        "image_version", "issue_comment", "issues", "label", "merge_group", "milestone", "page_build",
        "project", "project_card", "project_column", "public", "pull_request", "pull_request_review",
        "pull_request_review_comment", "pull_request_target", "push", "registry_package", "release",
        "repository_dispatch", "schedule", "status", "watch", "workflow_call", "workflow_dispatch",
        "workflow_run",
    }
)  # fmt: skip

# Repository permissions of a GitHub App installation token ("app-permissions" in GitHub's OpenAPI).
GITHUB_REPOSITORY_PERMISSIONS = frozenset(
    {
        "actions", "administration", "attestations", "checks", "codespaces", "contents",
        "custom_properties", "dependabot_secrets", "deployments", "discussions", "environments",
        "issues", "merge_queues", "metadata", "packages", "pages", "pull_requests",
        "repository_custom_properties", "repository_hooks", "repository_projects",
        "secret_scanning_alerts", "secrets", "security_events", "single_file", "statuses",
        "vulnerability_alerts", "workflows", "members",
    }
)  # fmt: skip

# What a job_workflow_ref looks like: owner/repo/.github/workflows/file.yml@ref
_WORKFLOW_REF = re.compile(r"[^/@]+/[^/@]+/\.github/workflows/[^@]+\.ya?ml@.+")

_CONDITIONS = ("refs", "environments", "events", "workflows", "runner_environments", "paths")


class _Linter:
    def __init__(self, loaded: LoadedPolicy) -> None:
        self.loaded = loaded
        self.policy = loaded.policy
        self.out: list[PolicyProblem] = []

    def warn(self, loc: tuple[str | int, ...], message: str) -> None:
        field = ""
        for part in loc:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else part)
        self.out.append(PolicyProblem(self.loaded.path, self.loaded.line_at(*loc), field, message, "warning"))

    def classes(self, rule: Rule) -> dict[str, PermissionClass]:
        return {a: self.loaded.catalog[a].permission for a in rule.actions if a in self.loaded.catalog}

    def run(self) -> list[PolicyProblem]:
        if not self.policy.rules:
            self.warn(
                ("rules",),
                f"the policy has no rules: every action in {self.policy.owner.login}'s repositories is denied",
            )
        for i, rule in enumerate(self.policy.rules):
            self.never_matching(i, rule)
            self.dangerous_execute(i, rule)
            self.approvals(i, rule)
            self.github_permissions(i, rule)
        self.shadowed()
        self.renamed_repositories()
        return sorted(self.out, key=lambda p: (p.line or 0, p.field))

    # -- entries and rules that can never match --------------------------------------------------

    def never_matching(self, i: int, rule: Rule) -> None:
        name = f"rule {rule.name!r}"
        for j, ref in enumerate(rule.refs or []):
            if isinstance(ref, str) and not ref.startswith("refs/"):
                self.warn(
                    ("rules", i, "refs", j),
                    f"{name}: ref {ref!r} never matches: a token's ref is a full ref such as "
                    f"refs/heads/{ref} or refs/tags/{ref}",
                )
        for j, event in enumerate(rule.events or []):
            if event not in GITHUB_EVENTS:
                close = difflib.get_close_matches(event, sorted(GITHUB_EVENTS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.warn(
                    ("rules", i, "events", j),
                    f"{name}: {event!r} is not a GitHub Actions event{hint}; this entry never matches",
                )
        for j, workflow in enumerate(rule.workflows or []):
            if isinstance(workflow.ref, str) and not _WORKFLOW_REF.fullmatch(workflow.ref):
                self.warn(
                    ("rules", i, "workflows", j, "ref"),
                    f"{name}: workflow {workflow.ref!r} never matches: a job_workflow_ref looks like "
                    "owner/repo/.github/workflows/deploy.yml@refs/heads/main",
                )
        if rule.repositories != "*":
            owner = self.policy.owner.login
            for j, entry in enumerate(rule.repositories):
                if isinstance(entry, Repository) and entry.name.split("/")[0].lower() != owner.lower():
                    self.warn(
                        ("rules", i, "repositories", j, "name"),
                        f"{name}: repository {entry.name} is not {owner}'s, and this policy governs only "
                        f"{owner} (owner id {self.policy.owner.id}); this entry never matches, unless "
                        "owner.login is wrong",
                    )
        classes = self.classes(rule)
        if (
            rule.events is not None
            and all(e in PULL_REQUEST_EVENTS for e in rule.events)
            and classes
            and all(c is PermissionClass.EXECUTE for c in classes.values())
        ):
            self.warn(
                ("rules", i, "events"),
                f"{name} can never allow anything: it allows only execute actions, and only for "
                "pull_request/pull_request_target events, which the engine always refuses execute",
            )

        if rule.paths is not None and classes and all(c is PermissionClass.READ for c in classes.values()):
            self.warn(
                ("rules", i, "paths"),
                f"{name} names paths, but a read decision reads no files: it denies every read it would "
                "govern (the files are not known) and no later rule gets them; remove paths",
            )

    def shadowed(self) -> None:
        """A rule an earlier one covers never decides the actions they share (first match wins).

        Only earlier rules that could cover a rule are compared with it: those naming one of its
        actions and either every repository ("*") or its first repository entry. Large policies pin
        a repository or two per rule, so this stays near linear where comparing every pair took
        seconds at 2,000 rules."""
        rules = self.policy.rules
        earlier_by_key: dict[tuple[str, object], list[int]] = {}
        for i, later in enumerate(rules):
            repo_keys: list[object] = ["*"]
            if later.repositories != "*":
                repo_keys.append(_repository_key(later.repositories[0]))
            candidates = sorted(
                {k for a in later.actions for key in repo_keys for k in earlier_by_key.get((a, key), ())}
            )
            for k in candidates:
                earlier = rules[k]
                shared = [a for a in later.actions if a in earlier.actions]
                if shared and _covers(earlier, later):
                    line = self.loaded.line_of(earlier.name)
                    self.warn(
                        ("rules", i, "actions"),
                        f"rule {later.name!r} never decides {', '.join(shared)}: the earlier rule "
                        f"{earlier.name!r} (line {line}) matches every workload this one matches, and rules "
                        "are tried in file order; move this rule above it, or narrow the earlier one",
                    )
                    break
            keys = ["*"] if later.repositories == "*" else [_repository_key(e) for e in later.repositories]
            for a in set(later.actions):
                for key in set(keys):
                    earlier_by_key.setdefault((a, key), []).append(i)

    def renamed_repositories(self) -> None:
        named: dict[int, tuple[str, str]] = {}
        for i, rule in enumerate(self.policy.rules):
            if rule.repositories == "*":
                continue
            for j, entry in enumerate(rule.repositories):
                if not isinstance(entry, Repository):
                    continue
                first = named.setdefault(entry.id, (entry.name, rule.name))
                if first[0].lower() != entry.name.lower():
                    self.warn(
                        ("rules", i, "repositories", j, "name"),
                        f"repository id {entry.id} is {entry.name} here but {first[0]} in rule {first[1]!r}; "
                        "the engine checks the name too, so one of them never matches",
                    )

    # -- execute without the usual safeguards ------------------------------------------------------

    def dangerous_execute(self, i: int, rule: Rule) -> None:
        executes = [a for a, c in self.classes(rule).items() if c is PermissionClass.EXECUTE]
        if not executes:
            return
        name, acts = f"rule {rule.name!r}", ", ".join(executes)
        if rule.runner_environments is None or "self-hosted" in rule.runner_environments:
            self.warn(
                ("rules", i, "runner_environments"),
                f"{name} allows {acts} on self-hosted runners; write runner_environments: [github-hosted] "
                "unless your self-hosted runners are as trusted as the target",
            )
        pr_events = [e for e in rule.events or [] if e in PULL_REQUEST_EVENTS]
        if rule.events is None or (pr_events and len(pr_events) < len(rule.events)):
            found = "omits events" if rule.events is None else f"lists {', '.join(pr_events)}"
            self.warn(
                ("rules", i, "events"),
                f"{name} {found} for {acts}; the engine refuses execute from pull_request and "
                "pull_request_target events anyway (they run the pull request's code), so list the "
                "events you mean, e.g. [push, workflow_dispatch]",
            )
        if rule.repositories == "*" or any(isinstance(r, RepositoryPattern) for r in rule.repositories):
            self.warn(
                ("rules", i, "repositories"),
                f"{name} allows {acts} for repositories matched by a wildcard; for execute, pin each "
                "repository as {id, name}",
            )
        if rule.refs is None:
            self.warn(
                ("rules", i, "refs"),
                f"{name} allows {acts} from any ref, including branches anyone with write access can "
                "push; pin refs, e.g. [refs/heads/main]",
            )
        if rule.workflows is None:
            self.warn(
                ("rules", i, "workflows"),
                f"{name} allows {acts} from any workflow; pin workflows by job_workflow_ref (and sha)",
            )
        if rule.allow_agents and rule.required_approvals() == 0:
            self.warn(
                ("rules", i, "approvals"),
                f"{name} lets an agent-driven workload match {acts} with zero approvals; the engine "
                "refuses that anyway (agents always need at least one independent human approval of the "
                "exact commit), so write approvals: {count: 1} to say so, or allow_agents: false",
            )

    def approvals(self, i: int, rule: Rule) -> None:
        name = f"rule {rule.name!r}"
        classes = self.classes(rule)
        approving = [a for a in rule.actions if a in self.loaded.catalog and self.loaded.catalog[a].approval]
        if approving and rule.allow_agents:
            self.warn(
                ("rules", i, "allow_agents"),
                f"{name} allows {', '.join(approving)}, an approval action, which agents are never allowed "
                "(the engine refuses them whatever this rule says); write allow_agents: false to say so",
            )
        if rule.approvals is None:
            return
        if classes and all(c is not PermissionClass.EXECUTE for c in classes.values()):
            self.warn(
                ("rules", i, "approvals"),
                f"{name}'s approvals are never checked: {', '.join(classes)} "
                f"{'is a read or propose action' if len(classes) == 1 else 'are read or propose actions'}, "
                "which the rule allows without any approval; remove approvals, or declare the action "
                "as execute under 'actions:'",
            )
        elif rule.approvals.teams and rule.approvals.count == 0:
            self.warn(
                ("rules", i, "approvals", "teams"),
                f"{name} names teams but requires no approval (count: 0): people need none, and only an "
                "agent-driven workload's one required approval must come from these teams",
            )

    def github_permissions(self, i: int, rule: Rule) -> None:
        name = f"rule {rule.name!r}"
        for permission in sorted(rule.github_permissions or {}):
            if permission not in GITHUB_REPOSITORY_PERMISSIONS:
                close = difflib.get_close_matches(permission, sorted(GITHUB_REPOSITORY_PERMISSIONS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.warn(
                    ("rules", i, "github_permissions", permission),
                    f"{name}: {permission!r} is not a GitHub App repository permission{hint}; GitHub "
                    "would refuse the token",
                )
        forbidden = sorted(set(rule.github_permissions or {}) & AGENT_FORBIDDEN_PERMISSIONS)
        if forbidden and rule.allow_agents:
            self.warn(
                ("rules", i, "github_permissions"),
                f"{name} asks for {', '.join(forbidden)}; an agent-driven workload never gets them (they are "
                "withheld from its token), so write allow_agents: false if only people use this rule",
            )


def _repository_key(entry: Repository | RepositoryPattern) -> object:
    """A hashable stand-in for a repository entry: equal entries, and only they, share a key."""
    if isinstance(entry, Repository):
        return ("id", entry.id, entry.name)
    return ("pattern", entry.name_pattern)


def _covers(earlier: Rule, later: Rule) -> bool:
    """True when every workload ``later`` matches is certainly matched by ``earlier`` too."""
    if earlier.repositories != "*" and (
        later.repositories == "*" or any(e not in earlier.repositories for e in later.repositories)
    ):
        return False
    for condition in _CONDITIONS:
        wide, narrow = getattr(earlier, condition), getattr(later, condition)
        if wide is not None and (narrow is None or any(v not in wide for v in narrow)):
            return False
    return (earlier.allow_agents or not later.allow_agents) and (earlier.allow_bots or not later.allow_bots)


def lint(policy: LoadedPolicy) -> list[PolicyProblem]:
    """Every warning about ``policy``, sorted by line; each has severity ``warning``."""
    return _Linter(policy).run()
