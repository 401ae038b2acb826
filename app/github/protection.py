"""What a repository's protection is made of, read through the App for ``agent-gate doctor`` (and
``protect``, which also lists the repositories of an organisation's installation): its
default branch, the workflow files on it, its environments with the App's deployment protection
rule on each, and the sources the branch's rules require a status check from.

Only reads; what the facts mean (``app.cli.doctor``) is judged elsewhere. Every function raises
``GitHubError`` when GitHub cannot answer.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import SecretStr

from app.errors import GitHubError, GitHubNotFound
from app.github.auth import repo_path
from app.github.protocol import Credential, GitHubAPI

if TYPE_CHECKING:
    from app.github.client import GitHubClient

_MAX_ENVIRONMENT_PAGES = 10  # 100 a page


@dataclass(frozen=True)
class WorkflowFile:
    """A workflow file on the branch; ``text`` is None when the contents API did not give it."""

    path: str
    text: str | None


@dataclass
class Environments:
    """The repository's environments (lower-cased name -> name) and whether each is gated."""

    names: dict[str, str] = field(default_factory=dict)
    gated: dict[str, bool] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    not_offered: set[str] = field(default_factory=set)  # GitHub does not offer the App as a rule there


def default_branch(github: GitHubAPI, repository: str) -> str:
    """The repository's default branch; raises ``GitHubError`` when the repository cannot be read."""
    repo = github.get_json(repository, f"/repos/{repo_path(repository)}", what=f"reading {repository}")
    if not isinstance(repo, dict) or not isinstance(repo.get("default_branch"), str):
        raise GitHubError(f"GitHub's answer was not a repository while reading {repository}")
    branch: str = repo["default_branch"]
    return branch


def workflow_files(
    github: GitHubAPI, repository: str, branch: str, directory: str
) -> list[WorkflowFile] | None:
    """The ``.yml``/``.yaml`` files of ``directory`` on ``branch``, by path; None when there is no
    such directory."""
    base = f"/repos/{repo_path(repository)}/contents/"
    try:
        listing = github.get_json(
            repository,
            base + directory,
            params={"ref": branch},
            what=f"listing {directory} of {repository}@{branch}",
        )
    except GitHubNotFound:
        return None
    files: list[WorkflowFile] = []
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
        files.append(WorkflowFile(path, _file_text(body)))
    return files


def _file_text(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("encoding") != "base64" or not body.get("content"):
        return None  # GitHub answers encoding "none" for files of 1 to 100 MB
    try:
        return base64.b64decode(str(body["content"])).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def environments(github: GitHubAPI, repository: str, app_id: int) -> Environments:
    """Every environment, and where the App's deployment protection rule is enabled, disabled, or not
    offered by GitHub."""
    found = Environments()
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


def required_check_sources(
    github: GitHubAPI, repository: str, branch: str, context: str
) -> list[tuple[Any, Any]]:
    """``(ruleset_id, integration_id)`` of each rule on ``branch`` requiring the status check
    ``context``; an ``integration_id`` of None accepts the check from any source."""
    rules = github.get_all(
        repository,
        f"/repos/{repo_path(repository)}/rules/branches/{quote(branch, safe='')}",
        what=f"reading the rules of {repository}@{branch}",
    )
    sources: list[tuple[Any, Any]] = []
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("type") != "required_status_checks":
            continue
        checks = (rule.get("parameters") or {}).get("required_status_checks") or []
        for check in checks:
            if isinstance(check, dict) and check.get("context") == context:
                sources.append((rule.get("ruleset_id"), check.get("integration_id")))
    return sources


def installed_repositories(client: GitHubClient, org: str) -> list[str]:
    """``owner/name`` of every repository the App's installation on ``org`` can reach, sorted.
    Raises ``GitHubError`` (``github-app-not-installed``) when the App is not installed there."""
    what = f"finding the App's installation on {org}"
    try:
        found = client.http.request(
            "GET",
            f"/orgs/{quote(org, safe='')}/installation",
            credential=client.auth.app.credential(),
            what=what,
        )
    except GitHubNotFound as exc:
        raise GitHubError(
            f"the GitHub App (id {client.app_id}) is not installed on {org}; install it (docs/setup-guide.md)",
            code="github-app-not-installed",
            http_status=404,
        ) from exc
    installation = found.data.get("id") if isinstance(found.data, dict) else None
    if not isinstance(installation, int):
        raise GitHubError(f"GitHub's answer lacked the installation id while {what}")
    minted = client.http.request(
        "POST",
        f"/app/installations/{installation}/access_tokens",
        credential=client.auth.app.credential(),
        what=f"creating a token to list the repositories of {org}",
        json_body={},
    )
    raw = minted.data.get("token") if isinstance(minted.data, dict) else None
    if not isinstance(raw, str) or not raw:
        raise GitHubError(
            f"GitHub's answer lacked the token while creating a token to list the repositories of {org}"
        )
    token = SecretStr(raw)
    try:
        return _repositories(client, Credential(f"installation:{installation}", token), org)
    finally:
        client.revoke_installation_token(token)  # minted for this listing only


def _repositories(client: GitHubClient, credential: Credential, org: str) -> list[str]:
    names: list[str] = []
    for page in range(1, _MAX_ENVIRONMENT_PAGES + 1):
        data = client.http.request(
            "GET",
            "/installation/repositories",
            credential=credential,
            params={"per_page": 100, "page": page},
            what=f"listing the repositories the App can reach in {org}",
        ).data
        items = (data.get("repositories") or []) if isinstance(data, dict) else []
        names.extend(str(r["full_name"]) for r in items if isinstance(r, dict) and "full_name" in r)
        if not items or len(names) >= int(data.get("total_count", 0)):
            break
    return sorted(names, key=str.lower)


def uses_merge_queue(github: GitHubAPI, repository: str, branch: str) -> bool:
    """Whether a rule on ``branch`` makes merges go through a merge queue (``merge_queue``)."""
    return bool(merge_queue_rulesets(github, repository, branch))


def merge_queue_rulesets(github: GitHubAPI, repository: str, branch: str) -> list[Any]:
    """The ids of the rulesets that put ``branch`` behind a merge queue (a ``merge_queue`` rule)."""
    rules = github.get_all(
        repository,
        f"/repos/{repo_path(repository)}/rules/branches/{quote(branch, safe='')}",
        what=f"reading the rules of {repository}@{branch}",
    )
    return [r.get("ruleset_id") for r in rules if isinstance(r, dict) and r.get("type") == "merge_queue"]
