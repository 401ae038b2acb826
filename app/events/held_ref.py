"""The ref and commit a held deployment is judged on, from GitHub's facts; never a guess that widens.

A workflow run names its ref only by its short name (``head_branch``: a branch *or a tag*), and so
does the ``deployment_protection_rule`` event (its ``ref``, "the ref (branch or tag) that
triggered the workflow", and its deployment's ``ref``, "a branch, tag, or sha"). Reading every name
as ``refs/heads/<name>`` judged a tag deploy as a branch (rules on ``refs/tags/v*`` never matched)
and a fork's ``main`` as the repository's ``main``. The ref is resolved here instead:

- a run of a pull request (its event is one of :data:`PULL_REQUEST_EVENTS`) or of a commit outside
  the repository (its ``head_repository`` is a fork, or unknown) is ``refs/pull/<n>/merge``, as
  GitHub documents ``GITHUB_REF`` for ``pull_request``: never a branch of the repository. Where the
  pull request is not known (GitHub lists none for a fork's), it is :data:`UNKNOWN_PULL_REF`, which
  no ``refs/pull/[0-9]+/...`` rule matches;
- a ``release`` run is the tag ``refs/tags/<name>``;
- any other name is the repository's tag ``refs/tags/<name>`` when that tag exists and tags the
  run's commit (``GET /git/ref/tags/<name>``, an annotated tag followed to its commit), its branch
  ``refs/heads/<name>`` when no such tag exists, and :data:`UNRESOLVED_PREFIX` + name, which no
  ``refs/...`` rule matches, when a tag of that name tags another commit (a branch and a tag share
  the name: the gate does not choose).

The commit is the run's ``head_sha``; the event's ``sha`` (from the same check suite) and, outside
pull requests, the deployment's must agree with it, and so must the names the event and its
deployment give the ref (short or full) with the run's ``head_branch``, or the event is refused
(never approved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.errors import GitHubNotFound, InvalidRequest
from app.gate.workloads import Repo
from app.github.auth import repo_path
from app.github.payloads import GhGitRef, GhGitTag, GhRun, parse
from app.github.protocol import GitHubAPI

# The events whose run is a pull request's (GITHUB_REF is refs/pull/<n>/merge for pull_request; the
# others run for a pull request too, and are judged as one: never as a branch of the repository).
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
UNKNOWN_PULL_REF = "refs/pull/unknown/merge"
UNRESOLVED_PREFIX = "unresolved:"


@dataclass(frozen=True)
class Deployed:
    """What the ``deployment_protection_rule`` event says is deployed (kept with the held job, so a
    later re-decision judges the same): the event's ``ref`` and ``sha``, its deployment's."""

    ref: str | None = None
    sha: str | None = None
    deployment_ref: str | None = None
    deployment_sha: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "sha": self.sha,
            "deployment_ref": self.deployment_ref,
            "deployment_sha": self.deployment_sha,
        }

    @classmethod
    def of_record(cls, record: object) -> Deployed | None:
        if not isinstance(record, dict):
            return None  # a held job recorded before the gate kept what was deployed
        return cls(**{k: record.get(k) for k in ("ref", "sha", "deployment_ref", "deployment_sha")})


def from_a_pull_request(run: GhRun, repo: Repo) -> bool:
    """The run is a pull request's, or its commit is not the repository's (a fork's, or unknown)."""
    return (
        run.event in PULL_REQUEST_EVENTS or run.head_repository is None or run.head_repository.id != repo.id
    )


def held_ref(github: GitHubAPI, repo: Repo, run: GhRun, deployed: Deployed | None) -> str:
    """The full ref the held job is judged on (see the module's rules). Raises ``InvalidRequest``
    when GitHub's facts disagree about the commit or the ref, and ``GitHubError`` when GitHub fails."""
    _check_commit(repo, run, deployed)
    if from_a_pull_request(run, repo):
        return _pull_ref(run, repo)
    said = _names(run, deployed)
    for ref in said:
        if _short(ref) != (run.head_branch or _short(ref)):
            raise InvalidRequest(
                f"the deployment_protection_rule event names ref {ref!r} but run {run.id} ran on "
                f"{run.head_branch!r}; the held job is not decided",
                code="deployment-mismatch",
            )
    full = next((r for r in said if r.startswith(("refs/heads/", "refs/tags/"))), None)
    if full is not None:
        return full  # a full ref names the kind itself
    name = run.head_branch or next(iter(said), None)
    if not name:
        raise InvalidRequest(f"run {run.id} of {repo.full_name} names no ref", code="invalid-payload")
    if name.startswith("refs/"):
        return name
    if run.event == "release":
        return f"refs/tags/{name}"
    return _branch_or_tag(github, repo, name, run.head_sha)


def _names(run: GhRun, deployed: Deployed | None) -> list[str]:
    """The names the event gives the ref: its own ``ref``, and its deployment's unless that is the
    commit itself (a deployment's ref may be a sha)."""
    if deployed is None:
        return []
    names = [deployed.ref, deployed.deployment_ref if deployed.deployment_ref != run.head_sha else None]
    return [n for n in names if n]


def _short(ref: str) -> str:
    return (
        ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ref.removeprefix("refs/tags/")
    )


def _check_commit(repo: Repo, run: GhRun, deployed: Deployed | None) -> None:
    if deployed is None:
        return
    said = [deployed.sha]
    if not from_a_pull_request(run, repo):
        # A pull request's deployment is of its merge commit; any other run's, of the run's commit.
        said.append(deployed.deployment_sha)
    for sha in said:
        if sha and sha != run.head_sha:
            raise InvalidRequest(
                f"the deployment is of commit {sha[:7]} but run {run.id} of {repo.full_name} is at "
                f"{run.head_sha[:7]}; the held job is not decided",
                code="deployment-mismatch",
            )


def _pull_ref(run: GhRun, repo: Repo) -> str:
    numbers = {
        p.number
        for p in run.pull_requests or []
        if p.head.sha == run.head_sha and p.base.repo is not None and p.base.repo.id == repo.id
    }
    return f"refs/pull/{numbers.pop()}/merge" if len(numbers) == 1 else UNKNOWN_PULL_REF


def _branch_or_tag(github: GitHubAPI, repo: Repo, name: str, sha: str) -> str:
    path = f"/repos/{repo_path(repo.full_name)}/git/ref/tags/{quote(name, safe='/')}"
    what = f"looking up whether {name!r} is a tag of {repo.full_name}"
    try:
        tag = parse(GhGitRef, github.get_json(repo.full_name, path, what=what), what)
    except GitHubNotFound:
        return f"refs/heads/{name}"  # no tag of that name: the run ran on the branch
    tagged = tag.object
    if tagged.type == "tag":  # an annotated tag: the commit it tags
        what = f"reading tag {name!r} of {repo.full_name}"
        tag_path = f"/repos/{repo_path(repo.full_name)}/git/tags/{tagged.sha}"
        tagged = parse(GhGitTag, github.get_json(repo.full_name, tag_path, what=what), what).object
    if tagged.type == "commit" and tagged.sha == sha:
        return f"refs/tags/{name}"
    return UNRESOLVED_PREFIX + name
