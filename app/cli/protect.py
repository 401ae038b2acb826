"""``agent-gate protect OWNER/REPO``: make GitHub defer to the gate, then show that ``doctor`` agrees.

What ``doctor`` checks, ``protect`` applies:

- on each environment named with ``--environment`` (else each environment a workflow on the
  branch targets), the agent-gate App's **deployment protection rule**, creating the environment
  first when it does not exist yet (GitHub would create it unprotected on the first run);
- a **branch ruleset** named ``agent-gate`` requiring ``agent-gate / merge`` *from the App*
  (``integration_id``), created or brought up to date; nothing else in it, or in other rulesets,
  is touched. It is a ruleset rule, which GitHub applies to merge queues too.

The facts are read through the App, as ``doctor`` reads them; the writes go with an administrator's
token (``app.github.admin``). Each change is printed as a diff of what GitHub holds before and
after; ``--dry-run`` prints them and changes nothing. A second run finds nothing to change and says
so. Exit 0 when ``doctor`` then finds nothing open, 1 when something is (or, with ``--dry-run``,
would be changed), 2 when it could not check (see :mod:`app.cli.doctor`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import app.cli.options as options
from app.cli.doctor import (
    MERGE_CHECK,
    WORKFLOWS_DIR,
    Report,
    could_not_check,
    diagnose,
    subscribed_events,
    valid_repository,
)
from app.errors import GateError, GitHubError

if TYPE_CHECKING:
    from app.github.admin import AdminGitHub
    from app.github.client import GitHubClient

RULESET_NAME = "agent-gate"


def register(sub: options.Subparsers) -> None:
    protect = sub.add_parser(
        "protect",
        help="enable the gate's deployment protection rule and merge-check ruleset on a repository",
        description=(
            "Apply what `doctor` checks: enable the agent-gate deployment protection rule on each environment "
            "(--environment, else each one a workflow targets) and create or update the `agent-gate` branch "
            "ruleset requiring `agent-gate / merge` from the App. Reads through the App; writes with an "
            "administrator's token from GH_TOKEN, GITHUB_TOKEN or `gh auth token` (never stored). Prints each "
            "change as a diff. Exit 0 protected, 1 findings open, 2 could not check (docs/setup-guide.md)."
        ),
    )
    protect.add_argument("repository", metavar="OWNER/REPO", nargs="?")
    protect.add_argument("--org", metavar="ORG", help="every repository of ORG the App is installed on")
    protect.add_argument(
        "--environment",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment to gate (repeatable; default: each one a workflow on the branch targets)",
    )
    protect.add_argument("--branch", help="the branch the ruleset protects (default: the default branch)")
    protect.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    options.add_format(protect, "text", "json")
    protect.set_defaults(func=cmd_protect)


@dataclass(frozen=True)
class Change:
    """One object on GitHub, as it is and as protect makes it; ``before`` None: it does not exist."""

    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    method: str
    path: str
    body: dict[str, Any]

    def diff(self) -> list[str]:
        def lines(value: dict[str, Any] | None) -> list[str]:
            return [] if value is None else json.dumps(value, indent=2, sort_keys=True).splitlines()

        return list(
            difflib.unified_diff(
                lines(self.before),
                lines(self.after),
                fromfile="/dev/null" if self.before is None else f"a/{self.subject}",
                tofile=f"b/{self.subject}",
                lineterm="",
            )
        )


@dataclass
class Plan:
    repository: str
    branch: str
    changes: list[Change] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what already holds
    cannot: list[str] = field(default_factory=list)  # what protect cannot change, and why
    notes: list[str] = field(default_factory=list)


def cmd_protect(args: argparse.Namespace) -> int:
    if (args.repository is None) == (args.org is None):
        print("agent-gate: protect takes OWNER/REPO or --org ORG (one of them)", file=sys.stderr)
        return 2
    if args.repository is not None and not valid_repository(args.repository):
        print(f"agent-gate: expected OWNER/REPO, got {args.repository!r}", file=sys.stderr)
        return 2
    try:
        from app.github.admin import AdminGitHub, find_admin_token
        from app.github.client import GitHubClient

        settings = options.load_settings()
        if settings.github is None:
            raise could_not_check("protect")
        client = GitHubClient(settings.github)
        host = urlsplit(settings.github_web_url).hostname or "github.com"
        admin = AdminGitHub(client.http, find_admin_token(host=host))
        if args.org is not None:
            return _protect_org(args, client, admin)
        result = protect(client, admin, args.repository, args.environment, args.branch, dry_run=args.dry_run)
    except GateError as exc:
        return _could_not(args.format, exc)
    _print(args.format, [result])
    return result.exit_code


@dataclass(frozen=True)
class Result:
    plan: Plan
    dry_run: bool
    report: Report

    @property
    def applied(self) -> bool:
        return bool(self.plan.changes) and not self.dry_run

    @property
    def exit_code(self) -> int:
        pending = self.plan.changes and not self.applied
        return 1 if pending or self.report.open or self.plan.cannot else 0

    def lines(self) -> list[str]:
        out: list[str] = []
        for change in self.plan.changes:
            out.extend(change.diff())
        out.extend(f"ok    {kept}" for kept in self.plan.kept)
        out.extend(f"open  {cannot}" for cannot in self.plan.cannot)
        out.extend(f"note  {note}" for note in self.plan.notes)
        name, n = self.plan.repository, len(self.plan.changes)
        if not self.plan.changes:
            out.append(f"nothing to change: {name} already has what protect sets")
        elif self.applied:
            out.append(f"{n} change{'s' if n != 1 else ''} made on {name}")
        else:
            out.append(
                f"dry run: {n} change{'s' if n != 1 else ''} would be made on {name}; nothing was changed"
            )
        if self.applied or not self.plan.changes:
            out.extend(f.line() for f in self.report.open)
            out.append(self.report.lines()[-1])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.plan.repository,
            "branch": self.plan.branch,
            "dry_run": self.dry_run,
            "changes": [
                {"subject": c.subject, "before": c.before, "after": c.after, "applied": self.applied}
                for c in self.plan.changes
            ],
            "kept": self.plan.kept,
            "cannot": self.plan.cannot,
            "notes": self.plan.notes,
            "doctor": self.report.to_json(),
            "status": "protected" if self.exit_code == 0 else "open",
        }


def protect(
    client: GitHubClient,
    admin: AdminGitHub,
    repository: str,
    environments: list[str],
    branch: str | None,
    *,
    dry_run: bool,
) -> Result:
    """Plan the changes, make them unless ``dry_run``, and diagnose the repository afterwards.
    Raises ``GateError`` when the token is refused or GitHub cannot answer."""
    from app.github import protection

    admin.check(repository)
    default = protection.default_branch(client, repository)
    plan = Plan(repository, branch or default)
    names = environments or _targeted(client, repository, default)
    if not names:
        plan.notes.append(
            f"no workflow on {default} names an environment: no environment to gate (name one with --environment)"
        )
    _plan_environments(client, repository, names, plan)
    _plan_ruleset(client, admin, repository, plan, branch is None or branch == default)
    if not dry_run:
        _apply(admin, repository, plan.changes)
    verdict = diagnose(client, repository, app_id=client.app_id, app_events=subscribed_events(client))
    return Result(plan, dry_run, verdict)


def _apply(admin: AdminGitHub, repository: str, changes: list[Change]) -> None:
    """Make the changes in order; a failure says which were already made (a second run finishes)."""
    done: list[str] = []
    for change in changes:
        try:
            admin.write(
                change.method, change.path, change.body, what=f"writing {change.subject} of {repository}"
            )
        except GateError as exc:
            if not done:
                raise
            raise GateError(
                f"{exc.message}; already changed on {repository}: {', '.join(done)}; run protect again once "
                "this is fixed (it changes only what is still missing)",
                code=exc.code,
            ) from exc
        done.append(change.subject)


def _targeted(client: GitHubClient, repository: str, branch: str) -> list[str]:
    """The environments named literally by the jobs of the branch's workflows (broken files skipped:
    doctor reports them)."""
    from app.github import protection
    from app.github.workflows import workflow_jobs

    names: dict[str, str] = {}
    for file in protection.workflow_files(client, repository, branch, WORKFLOWS_DIR) or []:
        try:
            jobs = workflow_jobs(file.path, file.text or "")
        except ValueError:
            continue
        for job in jobs:
            if job.environment is not None:
                names.setdefault(job.environment.lower(), job.environment)
    return [names[k] for k in sorted(names)]


def _plan_environments(client: GitHubClient, repository: str, names: list[str], plan: Plan) -> None:
    from app.github import protection
    from app.github.auth import repo_path

    app_id = client.app_id
    found = protection.environments(client, repository, app_id)
    ours = {"app": "agent-gate", "integration_id": app_id, "enabled": True}
    for name in names:
        key = name.lower()
        actual = found.names.get(key, name)
        path = f"/repos/{repo_path(repository)}/environments/{quote(actual, safe='')}"
        subject = f"environment {actual}"
        if found.gated.get(key):
            plan.kept.append(f"{subject}: the agent-gate deployment protection rule is enabled")
            continue
        if key in found.names and key in found.not_offered:
            plan.cannot.append(
                f"{subject}: GitHub does not offer the agent-gate App as a rule: give the App Deployments: read "
                "and write and subscribe it to Deployment protection rule (docs/github-app.md), then run protect again"
            )
            continue
        if key not in found.names:
            plan.changes.append(Change(subject, None, {"name": actual}, "PUT", path, {}))
        before = {"agent-gate rule": "disabled" if key in found.disabled else "absent"}
        plan.changes.append(
            Change(
                f"{subject} deployment protection rules",
                before,
                {"agent-gate rule": ours},
                "POST",
                f"{path}/deployment_protection_rules",
                {"integration_id": app_id},
            )
        )


def _plan_ruleset(
    client: GitHubClient, admin: AdminGitHub, repository: str, plan: Plan, default_branch: bool
) -> None:
    from app.github import protection
    from app.github.auth import repo_path

    app_id = client.app_id
    sources = protection.required_check_sources(client, repository, plan.branch, MERGE_CHECK)
    if protection.uses_merge_queue(client, repository, plan.branch):
        plan.notes.append(
            f"{plan.branch} merges through a merge queue: GitHub requires {MERGE_CHECK} on each merge group's "
            "commit too: the gate answers it on each group when the App receives merge_group events "
            "(doctor checks; docs/github-app.md#merge-queues)"
        )
    path = f"/repos/{repo_path(repository)}/rulesets"
    # One page: GitHub allows at most 75 rulesets per repository.
    listed = admin.get(
        path,
        what=f"listing the rulesets of {repository}",
        params={"includes_parents": "false", "per_page": 100},
    )
    mine = [r for r in listed or [] if isinstance(r, dict) and r.get("name") == RULESET_NAME]
    pinned = [ruleset for ruleset, integration in sources if integration == app_id]
    if pinned and not mine:
        plan.kept.append(
            f"ruleset {pinned[0]} requires {MERGE_CHECK} from the agent-gate App on {plan.branch}"
        )
        return
    ref = "~DEFAULT_BRANCH" if default_branch else f"refs/heads/{plan.branch}"
    if not mine:
        body = _ruleset({"name": RULESET_NAME, "target": "branch"}, ref, app_id)
        plan.changes.append(Change(f"ruleset {RULESET_NAME}", None, body, "POST", path, body))
        return
    ruleset_id = int(mine[0]["id"])
    current = admin.get(f"{path}/{ruleset_id}", what=f"reading ruleset {ruleset_id} of {repository}")
    if not isinstance(current, dict):
        raise GitHubError(
            f"GitHub's answer was not a ruleset while reading ruleset {ruleset_id} of {repository}"
        )
    before = {k: current.get(k) for k in ("name", "target", "enforcement", "conditions", "rules")}
    after = _ruleset(before, ref, app_id)
    if after == before:
        plan.kept.append(
            f"ruleset {RULESET_NAME} ({ruleset_id}) requires {MERGE_CHECK} from the agent-gate App"
        )
        return
    update = {k: after[k] for k in ("enforcement", "conditions", "rules")}
    plan.changes.append(
        Change(f"ruleset {RULESET_NAME} ({ruleset_id})", before, after, "PUT", f"{path}/{ruleset_id}", update)
    )


def _ruleset(current: dict[str, Any], ref: str, app_id: int) -> dict[str, Any]:
    """``current`` (a ruleset's name, target, enforcement, conditions and rules) brought to what
    protect sets: active, on ``ref``, requiring the merge check from the App. Everything else kept."""
    conditions = dict(current.get("conditions") or {})
    ref_name = dict(conditions.get("ref_name") or {})
    include = list(ref_name.get("include") or [])
    if ref not in include and "~ALL" not in include:
        include.append(ref)
    conditions["ref_name"] = {**ref_name, "include": include}
    pinned = {"context": MERGE_CHECK, "integration_id": app_id}
    rules = [dict(r) for r in current.get("rules") or []]
    checks = next((r for r in rules if r.get("type") == "required_status_checks"), None)
    if checks is None:
        rules.append(
            {
                "type": "required_status_checks",
                "parameters": {
                    "required_status_checks": [pinned],
                    "strict_required_status_checks_policy": False,
                },
            }
        )
    else:
        parameters = dict(checks.get("parameters") or {})
        others = [
            c for c in parameters.get("required_status_checks") or [] if c.get("context") != MERGE_CHECK
        ]
        parameters["required_status_checks"] = [*others, pinned]
        parameters.setdefault("strict_required_status_checks_policy", False)
        checks["parameters"] = parameters
    return {
        "name": current.get("name", RULESET_NAME),
        "target": current.get("target") or "branch",
        "enforcement": "active",
        "conditions": conditions,
        "rules": rules,
    }


def _protect_org(args: argparse.Namespace, client: GitHubClient, admin: AdminGitHub) -> int:
    """Each repository of the org the App is installed on, one after the other, with a summary."""
    from app.github import protection

    results: list[Result] = []
    failed: list[tuple[str, GateError]] = []
    for repository in protection.installed_repositories(client, args.org):
        try:
            results.append(
                protect(client, admin, repository, args.environment, args.branch, dry_run=args.dry_run)
            )
        except GateError as exc:
            failed.append((repository, exc))
    _print(args.format, results, failed, summary=True)
    if failed:
        return 2
    return max((r.exit_code for r in results), default=0)


def _print(
    fmt: str,
    results: list[Result],
    failed: list[tuple[str, GateError]] | None = None,
    *,
    summary: bool = False,
) -> None:
    failed = failed or []
    if fmt == "json":
        errors = [{"repository": r, "code": e.code, "message": e.message} for r, e in failed]
        if not summary:
            print(json.dumps(results[0].to_json(), indent=2))
        else:
            print(
                json.dumps(
                    {"repositories": [r.to_json() for r in results], "could_not_check": errors}, indent=2
                )
            )
        return
    for result in results:
        print("\n".join(result.lines()))
    if summary:
        protected = sum(1 for r in results if r.exit_code == 0)
        for repository, exc in failed:
            print(f"could not check {repository}: {exc.message}")
        total = len(results) + len(failed)
        print(
            f"{total} repositor{'y' if total == 1 else 'ies'}: {protected} protected, {len(results) - protected} "
            f"with findings open, {len(failed)} could not be checked"
        )


def _could_not(fmt: str, exc: GateError) -> int:
    if fmt == "json":
        print(
            json.dumps(
                {"status": "could-not-check", "error": {"code": exc.code, "message": exc.message}}, indent=2
            )
        )
    print(f"agent-gate: {exc.message}", file=sys.stderr)
    return 2
