"""What a commit range and a pull request change, read through the App for a merge group's check.

``GET /repos/{o}/{r}/compare/{base}...{head}`` (``commit-comparison``: its commits, up to 250, and
its files, up to 300, on the first page when no paging parameter is sent) and
``GET /repos/{o}/{r}/pulls/{n}/files`` (``diff-entry``, paginated, up to 3,000). The shapes follow
GitHub's OpenAPI description; a missing required field is a ``GitHubError``, as for every answer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.github.auth import repo_path
from app.github.payloads import GhGitCommit, parse
from app.github.protocol import GitHubAPI


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GhDiffEntry(_Payload):
    """``diff-entry``: one changed file; ``sha`` is its blob at the compared head."""

    filename: str
    status: str
    sha: str | None = None  # GitHub's schema requires it but allows null
    patch: str | None = None
    previous_filename: str | None = None


class GhComparedCommit(_Payload):
    sha: str
    commit: GhGitCommit


class GhHead(_Payload):
    sha: str


class GhPullHead(_Payload):
    """A ``pull-request-simple``, of which only the number and head are read here."""

    number: int
    head: GhHead


class GhComparison(_Payload):
    """``commit-comparison``: ``status`` is ahead, behind, diverged or identical."""

    status: str
    total_commits: int
    commits: list[GhComparedCommit]
    files: list[GhDiffEntry] = Field(default_factory=list)


def compare(github: GitHubAPI, repository: str, base: str, head: str) -> GhComparison:
    """What ``head`` changes against ``base`` (both commit shas). Raises ``GitHubError``."""
    what = f"comparing {head[:7]} with its base {base[:7]} in {repository}"
    data = github.get_json(repository, f"/repos/{repo_path(repository)}/compare/{base}...{head}", what=what)
    return parse(GhComparison, data, what)


def pull_files(github: GitHubAPI, repository: str, number: int) -> list[GhDiffEntry]:
    """Every file pull request ``number`` changes at its head. Raises ``GitHubError``."""
    what = f"listing the files of PR #{number} in {repository}"
    data = github.get_all(repository, f"/repos/{repo_path(repository)}/pulls/{number}/files", what=what)
    return parse(list[GhDiffEntry], data, what)


def commit_pulls(github: GitHubAPI, repository: str, sha: str) -> dict[int, str]:
    """The pull requests GitHub associates with commit ``sha`` (number -> head sha). Raises ``GitHubError``."""
    what = f"listing the pull requests of commit {sha[:7]} in {repository}"
    data = github.get_all(repository, f"/repos/{repo_path(repository)}/commits/{sha}/pulls", what=what)
    return {p.number: p.head.sha for p in parse(list[GhPullHead], data, what)}
