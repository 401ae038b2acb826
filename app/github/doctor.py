"""``agent-gate doctor OWNER/REPO``: is a repository really protected by the gate, and what to change.

A workflow that never asks the gate is not refused by it. What holds whether or not a workflow
cooperates is GitHub's own enforcement, set up to defer to the gate:

- every environment a workflow targets has the agent-gate App's **deployment protection rule**
  enabled (GitHub holds the job, and its environment secrets, until the gate approves);
- the default branch has a **ruleset** requiring the ``agent-gate / merge`` check *from the
  agent-gate App* (``integration_id``), so another App or a workflow cannot post a passing check of
  that name;
- no job gets an **OIDC identity** (``id-token: write``), which clouds trust, outside such an
  environment, unless it only uses it to ask the gate.

:func:`diagnose` reads those facts through the App (``GitHubAPI``) and returns one
:class:`Finding` per fact. It reads the default branch's workflows only: a branch can carry a
workflow of its own, which is why the environment rule and the ruleset, not the workflows, are
what hold. Nothing here writes to GitHub.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from app.errors import GitHubError, GitHubNotFound
from app.github.auth import repo_path
from app.github.protocol import GitHubAPI
from app.github.workflows import Job, workflow_jobs

# The check the gate posts on pull requests (app.publish.checks.check_name("merge")).
MERGE_CHECK = "agent-gate / merge"
WORKFLOWS_DIR = ".github/workflows"
_MAX_ENVIRONMENT_PAGES = 10  # 100 a page

Status = Literal["ok", "open", "note"]


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


@dataclass
class _Environments:
    """The repository's environments (lower-cased name -> name) and whether each is gated."""

    names: dict[str, str] = field(default_factory=dict)
    gated: dict[str, bool] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    not_offered: set[str] = field(default_factory=set)  # GitHub does not offer the App as a rule there


def diagnose(github: GitHubAPI, repository: str, *, app_id: int) -> Report:
    """Every finding about ``repository`` (``owner/name``), in a stable order.

    Raises ``GitHubError`` only when the repository itself cannot be read (not installed, no
    access); a part that cannot be read becomes an ``open`` finding that says why."""
    repo = github.get_json(repository, f"/repos/{repo_path(repository)}", what=f"reading {repository}")
    if not isinstance(repo, dict) or not isinstance(repo.get("default_branch"), str):
        raise GitHubError(f"GitHub's answer was not a repository while reading {repository}")
    branch = repo["default_branch"]
    findings: list[Finding] = []
    try:
        jobs, unreadable = _workflow_jobs(github, repository, branch)
    except GitHubError as exc:
        jobs, unreadable = [], [Finding("open", WORKFLOWS_DIR, _could_not(exc, "Contents: read"))]
    findings.extend(unreadable)
    try:
        environments = _environments(github, repository, app_id)
    except GitHubError as exc:
        findings.append(Finding("open", "environments", _could_not(exc, "Actions: read")))
    else:
        findings.extend(_environment_findings(repository, app_id, jobs, environments))
    findings.extend(_identity_findings(jobs))
    try:
        findings.append(_ruleset_finding(github, repository, branch, app_id))
    except GitHubError as exc:
        findings.append(Finding("open", f"rulesets of {branch}", _could_not(exc, "Metadata: read")))
    return Report(repository, app_id, tuple(findings))


# --- workflows -------------------------------------------------------------------------------------------


def _workflow_jobs(github: GitHubAPI, repository: str, branch: str) -> tuple[list[Job], list[Finding]]:
    base = f"/repos/{repo_path(repository)}/contents/"
    try:
        listing = github.get_json(
            repository,
            base + WORKFLOWS_DIR,
            params={"ref": branch},
            what=f"listing {WORKFLOWS_DIR} of {repository}@{branch}",
        )
    except GitHubNotFound:
        return [], [Finding("note", WORKFLOWS_DIR, f"none on {branch}")]
    jobs: list[Job] = []
    problems: list[Finding] = []
    entries = listing if isinstance(listing, list) else []
    for entry in sorted(entries, key=lambda e: str(e.get("path", ""))):
        path = str(entry.get("path", ""))
        if entry.get("type") != "file" or not path.endswith((".yml", ".yaml")):
            continue
        body = github.get_json(
            repository,
            base + quote(path),
            params={"ref": branch},
            what=f"reading {path} of {repository}@{branch}",
        )
        text = _file_text(body)
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


def _file_text(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("encoding") != "base64" or not body.get("content"):
        return None  # GitHub answers encoding "none" for files of 1 to 100 MB
    try:
        return base64.b64decode(str(body["content"])).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


# --- environments ----------------------------------------------------------------------------------------


def _environments(github: GitHubAPI, repository: str, app_id: int) -> _Environments:
    found = _Environments()
    path = f"/repos/{repo_path(repository)}/environments"
    for page in range(1, _MAX_ENVIRONMENT_PAGES + 1):
        data = github.get_json(
            repository,
            path,
            params={"per_page": 100, "page": page},
            what=f"listing the environments of {repository}",
        )
        items = (data.get("environments") or []) if isinstance(data, dict) else []
        for item in items:
            found.names[str(item["name"]).lower()] = str(item["name"])
        total = int(data.get("total_count", 0)) if isinstance(data, dict) else 0
        if not items or len(found.names) >= total:
            break
    for key, name in found.names.items():
        rules = github.get_json(
            repository,
            f"{path}/{quote(name, safe='')}/deployment_protection_rules",
            what=f"reading the deployment protection rules of environment {name} in {repository}",
        )
        ours = [
            r
            for r in (
                (rules.get("custom_deployment_protection_rules") or []) if isinstance(rules, dict) else []
            )
            if isinstance(r, dict) and isinstance(r.get("app"), dict) and r["app"].get("id") == app_id
        ]
        found.gated[key] = any(r.get("enabled") is True for r in ours)
        if ours and not found.gated[key]:
            found.disabled.add(key)
        if not ours and not _offered(github, repository, f"{path}/{quote(name, safe='')}", app_id):
            found.not_offered.add(key)
    return found


def _offered(github: GitHubAPI, repository: str, environment_path: str, app_id: int) -> bool:
    """Whether GitHub offers the App as a rule for this environment (it must be installed, hold
    Deployments: read and write and subscribe to the event). Unknown counts as offered: the finding
    then only says how to enable it."""
    try:
        data = github.get_json(
            repository,
            f"{environment_path}/deployment_protection_rules/apps",
            params={"per_page": 100},
            what=f"listing the deployment protection rules offered in {repository}",
        )
    except GitHubError:
        return True
    key = "available_custom_deployment_protection_rule_integrations"
    offered = (data.get(key) or []) if isinstance(data, dict) else []
    return any(isinstance(a, dict) and a.get("id") == app_id for a in offered)


def _environment_findings(
    repository: str, app_id: int, jobs: list[Job], envs: _Environments
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
        f'deployment_protection_rules {{"integration_id": {app_id}}}'
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


def _ruleset_finding(github: GitHubAPI, repository: str, branch: str, app_id: int) -> Finding:
    rules = github.get_all(
        repository,
        f"/repos/{repo_path(repository)}/rules/branches/{quote(branch, safe='')}",
        what=f"reading the rules of {repository}@{branch}",
    )
    subject = f"ruleset on {branch}"
    sources: list[tuple[Any, Any]] = []
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("type") != "required_status_checks":
            continue
        checks = (rule.get("parameters") or {}).get("required_status_checks") or []
        for check in checks:
            if isinstance(check, dict) and check.get("context") == MERGE_CHECK:
                sources.append((rule.get("ruleset_id"), check.get("integration_id")))
    pinned = [ruleset for ruleset, integration in sources if integration == app_id]
    if pinned:
        return Finding(
            "ok", subject, f"ruleset {pinned[0]} requires {MERGE_CHECK} from the agent-gate App ({app_id})"
        )
    fix = (
        f"require the status check {MERGE_CHECK} with its source set to the agent-gate App "
        f"(integration_id {app_id}) in a branch ruleset targeting {branch}"
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


def _could_not(exc: GitHubError, permission: str) -> str:
    said = exc.message.split("; the decision was not made")[0]
    return f"could not be read ({said}); the App needs {permission}"
