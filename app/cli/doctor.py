"""``agent-gate doctor OWNER/REPO``: is a repository really protected by the gate, and what to change.

A workflow that never asks the gate is not refused by it. What holds whether or not a workflow
cooperates is GitHub's own enforcement, set up to defer to the gate:

- every environment a workflow targets has the agent-gate App's **deployment protection rule**
  enabled (GitHub holds the job, and its environment secrets, until the gate approves);
- the default branch has a **ruleset** requiring the ``agent-gate / merge`` check *from the
  agent-gate App* (``integration_id``), so another App or a workflow cannot post a passing check of
  that name;
- a **merge queue** on that branch gets its groups answered: the App receives ``merge_group``
  (else every queued pull request waits for the queue's timeout);
- no job gets an **OIDC identity** (``id-token: write``), which clouds trust, outside such an
  environment, unless it only uses it to ask the gate.

:func:`diagnose` reads those facts through the App (``app.github.protection``) and returns one
:class:`Finding` per fact. It reads the default branch's workflows only: a branch can carry a
workflow of its own, which is why the environment rule and the ruleset, not the workflows, are
what hold. Nothing here writes to GitHub.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import app.cli.options as options
from app.errors import ConfigError, GateError, GitHubError, GitHubNotFound

if TYPE_CHECKING:
    from app.github.client import GitHubClient
    from app.github.protection import Environments, WorkflowFile
    from app.github.protocol import GitHubAPI
    from app.github.workflows import Job

# The check the gate posts on pull requests (app.publish.checks.check_name("merge")).
MERGE_CHECK = "agent-gate / merge"
WORKFLOWS_DIR = ".github/workflows"

Status = Literal["ok", "open", "note"]


def register(sub: options.Subparsers) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check through the GitHub App that a repository really defers to the gate",
        description=(
            "Read a repository through the GitHub App (GATE_GITHUB_APP_ID and its key) and print one line per "
            "finding: environments targeted by workflows without the agent-gate deployment protection rule, a "
            "default branch whose rulesets don't require `agent-gate / merge` from the App, jobs with an OIDC "
            "identity outside a gated environment. Exit 0 protected, 1 findings open, 2 could not check (App "
            "not configured or not installed, GitHub unreachable); `agent-gate protect` fixes the first two "
            "kinds (docs/github-app.md)."
        ),
    )
    doctor.add_argument("repository", metavar="OWNER/REPO")
    options.add_format(doctor, "text", "json")
    doctor.set_defaults(func=cmd_doctor)


def valid_repository(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", name) is not None


def could_not_check(command: str) -> ConfigError:
    return ConfigError(
        f"{command} reads the repository through the GitHub App: set GATE_GITHUB_APP_ID and its key "
        "(docs/setup-guide.md)",
        code="github-app-not-configured",
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 protected, 1 findings open, 2 could not check."""
    from app.github.client import GitHubClient

    if not valid_repository(args.repository):
        print(f"agent-gate: expected OWNER/REPO, got {args.repository!r}", file=sys.stderr)
        return 2
    try:
        settings = options.load_settings()
        if settings.github is None:
            raise could_not_check("doctor")
        client = GitHubClient(settings.github)
        report = diagnose(
            client, args.repository, app_id=settings.github.app_id, app_events=subscribed_events(client)
        )
    except GateError as exc:
        if args.format == "json":
            error = {"code": exc.code, "message": exc.message}
            print(json.dumps({"status": "could-not-check", "error": error}, indent=2))
        print(f"agent-gate: {exc.message}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 1 if report.open else 0


@dataclass(frozen=True)
class Finding:
    """One fact about the repository. ``open`` ones are what to change; ``note`` ones are worth
    knowing but hold nothing open."""

    status: Status
    subject: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.subject}: {self.message}"


@dataclass(frozen=True)
class Report:
    repository: str
    app_id: int
    findings: tuple[Finding, ...]

    @property
    def open(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "open"]

    def lines(self) -> list[str]:
        summary = (
            f"{len(self.open)} open: {self.repository} is not fully protected by agent-gate"
            if self.open
            else f"nothing open: {self.repository} defers to agent-gate (App {self.app_id})"
        )
        return [f.line() for f in self.findings] + [summary]

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "app_id": self.app_id,
            "status": "open" if self.open else "protected",
            "open": len(self.open),
            "findings": [
                {"status": f.status, "subject": f.subject, "message": f.message} for f in self.findings
            ],
        }


def subscribed_events(client: GitHubClient) -> tuple[str, ...] | None:
    """The webhook events the App receives (``GET /app``); None when GitHub would not say, which the
    merge queue's finding then reports."""
    try:
        return client.app_events()
    except GitHubError:
        return None


def diagnose(
    github: GitHubAPI, repository: str, *, app_id: int, app_events: Sequence[str] | None = None
) -> Report:
    """Every finding about ``repository`` (``owner/name``), in a stable order. ``app_events``: the
    webhook events the App receives (``GET /app``), None when they could not be read.

    Raises ``GitHubError`` when the repository itself cannot be read (not installed, no access) or
    GitHub fails or cannot be reached; a part the App may not read (403, 404) becomes an ``open``
    finding that names the permission."""
    from app.github import protection  # imported here: the command stays light for the others

    branch = protection.default_branch(github, repository)
    findings: list[Finding] = []
    jobs: list[Job] = []
    try:
        files = protection.workflow_files(github, repository, branch, WORKFLOWS_DIR)
    except GitHubError as exc:
        findings.append(Finding("open", WORKFLOWS_DIR, _could_not(exc, "Contents: read")))
    else:
        jobs, unreadable = _workflow_jobs(files, branch)
        findings.extend(unreadable)
    try:
        environments = protection.environments(github, repository, app_id)
    except GitHubError as exc:
        findings.append(Finding("open", "environments", _could_not(exc, "Actions: read")))
    else:
        findings.extend(_environment_findings(repository, app_id, jobs, environments))
    findings.extend(_identity_findings(jobs))
    try:
        sources = protection.required_check_sources(github, repository, branch, MERGE_CHECK)
    except GitHubError as exc:
        findings.append(Finding("open", f"rulesets of {branch}", _could_not(exc, "Metadata: read")))
    else:
        findings.append(_ruleset_finding(sources, branch, app_id))
        try:
            queues = protection.merge_queue_rulesets(github, repository, branch)
        except GitHubError as exc:
            findings.append(Finding("open", f"merge queue of {branch}", _could_not(exc, "Metadata: read")))
        else:
            findings.extend(_merge_queue_findings(queues, bool(sources), branch, app_events))
    return Report(repository, app_id, tuple(findings))


# --- workflows -------------------------------------------------------------------------------------------


def _workflow_jobs(files: list[WorkflowFile] | None, branch: str) -> tuple[list[Job], list[Finding]]:
    from app.github.workflows import workflow_jobs

    if files is None:
        return [], [Finding("note", WORKFLOWS_DIR, f"none on {branch}")]
    jobs: list[Job] = []
    problems: list[Finding] = []
    for file in files:
        path, text = file.path, file.text
        if text is None:
            problems.append(
                Finding(
                    "open", path, "could not be read through the contents API (too large?): check it by hand"
                )
            )
            continue
        try:
            jobs.extend(workflow_jobs(path, text))
        except ValueError as exc:
            problems.append(Finding("open", path, f"{exc}: GitHub will not run it either; fix or remove it"))
    return jobs, problems


# --- environments ----------------------------------------------------------------------------------------


def _environment_findings(
    repository: str, app_id: int, jobs: list[Job], envs: Environments
) -> Iterator[Finding]:
    targeted: dict[str, list[Job]] = {}
    for job in jobs:
        if job.environment is not None:
            targeted.setdefault(job.environment.lower(), []).append(job)
    for key in sorted(targeted):
        users = ", ".join(j.where for j in targeted[key])
        identity = " and an OIDC identity" if any(j.id_token for j in targeted[key]) else ""
        name = envs.names.get(key, targeted[key][0].environment or key)
        subject = f"environment {name}"
        if key not in envs.names:
            yield Finding(
                "open",
                subject,
                f"does not exist yet, so GitHub creates it unprotected when {users} first runs: create it and "
                + _enable(repository, name, app_id),
            )
        elif envs.gated.get(key):
            yield Finding(
                "ok", subject, f"the agent-gate deployment protection rule is enabled (used by {users})"
            )
        elif key in envs.disabled:
            yield Finding(
                "open", subject, f"the agent-gate rule is added but disabled; {users} run ungated: enable it"
            )
        else:
            yield Finding(
                "open",
                subject,
                f"no agent-gate deployment protection rule: {users} get its secrets{identity} without the "
                "gate; "
                + (_NOT_OFFERED if key in envs.not_offered else "")
                + _enable(repository, name, app_id),
            )
    for job in jobs:
        if job.environment_expression is None:
            continue
        ungated = sorted(n for k, n in envs.names.items() if not envs.gated.get(k))
        if ungated:
            yield Finding(
                "open",
                job.where,
                f"picks its environment at run time ({job.environment_expression}), and {', '.join(ungated)} "
                "has no agent-gate rule: enable it on every environment the job can name",
            )
        else:
            yield Finding(
                "note",
                job.where,
                f"picks its environment at run time ({job.environment_expression}); every existing environment "
                "is gated, but a new name would be created unprotected",
            )
    for key, name in sorted(envs.names.items()):
        if key not in targeted and not envs.gated.get(key):
            yield Finding(
                "note",
                f"environment {name}",
                "no agent-gate rule, and no workflow on the default branch targets it",
            )


_NOT_OFFERED = (
    "GitHub does not offer the agent-gate App as a rule yet: give the App Deployments: read and write and "
    "subscribe it to the Deployment protection rule event (docs/github-app.md), then "
)


def _enable(repository: str, environment: str, app_id: int) -> str:
    return (
        f"enable the agent-gate rule under Settings > Environments > {environment} > Deployment protection "
        f"rules, or POST /repos/{repository}/environments/{quote(environment, safe='')}/"
        f'deployment_protection_rules {{"integration_id": {app_id}}}; `agent-gate protect {repository}` does it'
    )


def _identity_findings(jobs: list[Job]) -> Iterator[Finding]:
    fix = (
        "give the job an environment with the agent-gate rule (and make the cloud's trust policy require that "
        "`environment` claim), or drop id-token: write"
    )
    why = "so any cloud that trusts this repository's OIDC tokens serves it without the gate"
    found = [
        Finding(
            "open",
            job.where,
            f"requests id-token: write outside an environment with the agent-gate rule, {why}: {fix}",
        )
        for job in jobs
        if job.exposed
    ]
    by_file: dict[str, list[Job]] = {}
    for job in jobs:
        by_file.setdefault(job.workflow, []).append(job)
    for caller in (j for j in jobs if j.calls is not None and j.id_token):
        callee = caller.calls or ""
        if not callee.startswith("./"):
            found.append(
                Finding(
                    "open",
                    caller.where,
                    f"passes id-token: write to {callee}, which doctor does not read: make sure each of its jobs "
                    "targets an environment with the agent-gate rule, or drop id-token: write",
                )
            )
            continue
        for job in by_file.get(callee.removeprefix("./"), []):
            if job.inherits_permissions and replace(job, id_token=True).exposed:
                found.append(
                    Finding(
                        "open",
                        job.where,
                        f"gets id-token: write from {caller.where} outside an environment with the agent-gate rule, "
                        f"{why}: {fix}",
                    )
                )
    yield from found
    if jobs and not found:
        asking = sum(1 for j in jobs if j.id_token and j.asks_gate)
        yield Finding(
            "ok",
            WORKFLOWS_DIR,
            f"{len(jobs)} jobs read; none gets an OIDC identity outside a gated environment"
            + (f" ({asking} use theirs to ask the gate)" if asking else ""),
        )


# --- rulesets --------------------------------------------------------------------------------------------


def _ruleset_finding(sources: list[tuple[Any, Any]], branch: str, app_id: int) -> Finding:
    subject = f"ruleset on {branch}"
    pinned = [ruleset for ruleset, integration in sources if integration == app_id]
    if pinned:
        return Finding(
            "ok", subject, f"ruleset {pinned[0]} requires {MERGE_CHECK} from the agent-gate App ({app_id})"
        )
    fix = (
        f"require the status check {MERGE_CHECK} with its source set to the agent-gate App "
        f"(integration_id {app_id}) in a branch ruleset targeting {branch}; `agent-gate protect` does it"
    )
    if any(integration is None for _, integration in sources):
        ruleset = next(r for r, i in sources if i is None)
        return Finding(
            "open",
            subject,
            f"ruleset {ruleset} requires {MERGE_CHECK} from any source, so a workflow or another App can post a "
            f"passing check of that name: {fix}",
        )
    if sources:
        ruleset, other = sources[0]
        return Finding(
            "open",
            subject,
            f"ruleset {ruleset} requires {MERGE_CHECK} from App {other}, not agent-gate: {fix}",
        )
    return Finding(
        "open", subject, f"nothing requires {MERGE_CHECK}, so an agent's pull request can be merged: {fix}"
    )


def _merge_queue_findings(
    queues: list[Any], required: bool, branch: str, events: Sequence[str] | None
) -> Iterator[Finding]:
    """A merge queue on ``branch`` whose ruleset requires the check: is each group answered?"""
    if not queues or not required:
        return
    subject = f"merge queue on {branch}"
    said = f"ruleset {queues[0]} queues merges into {branch}, and GitHub requires {MERGE_CHECK} on each merge group"
    if events is None:
        yield Finding(
            "open",
            subject,
            f"{said}; the App's events could not be read (GET /app): make sure it receives Merge group, or every "
            "queued pull request waits for the queue's timeout",
        )
    elif "merge_group" in events:
        yield Finding("ok", subject, f"{said}; the App receives merge_group and answers each group")
    else:
        yield Finding(
            "open",
            subject,
            f"{said}, but the App does not receive merge_group, so every queued pull request waits for the queue's "
            "timeout: subscribe it to Merge group (with Merge queues: read) in the App's settings "
            "(docs/github-app.md#merge-queues)",
        )


def _could_not(exc: GitHubError, permission: str) -> str:
    if exc.code != "github-forbidden" and not isinstance(exc, GitHubNotFound):
        raise exc  # GitHub failed, is unreachable or rate-limited: could not check (exit 2), not a finding
    said = exc.message.split("; the decision was not made")[0]
    return f"could not be read ({said}); the App needs {permission}"
