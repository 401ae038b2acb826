"""Where evidence comes from: GitHub (``GitHubEvidence``), a file (``FileEvidence``) or nowhere.

The API calls an :class:`EvidenceSource` only for decisions that need evidence (see
``app.engine.evidence_needs``); a read decision never reaches it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from app.decision import DecisionRequest
from app.errors import GateError, GitHubError, GitHubNotFound, InvalidRequest
from app.evidence.model import (
    Account,
    CommitFacts,
    EnvironmentApproval,
    Evidence,
    EvidenceNeeds,
    PullRequestFacts,
    Review,
    RunFacts,
    Standing,
)
from app.github.client import GitHubClient, user_path
from app.identity import WorkloadIdentity

APP_NOT_CONFIGURED = (
    "the GitHub App is not configured: set GATE_GITHUB_APP_ID and GATE_GITHUB_PRIVATE_KEY(_FILE) "
    "(see docs/github-app.md)"
)


class EvidenceSource(Protocol):
    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        """The facts for one decision. Raises ``GitHubError`` (503) rather than guess."""
        ...


class NoEvidence:
    """No GitHub App: decisions that need evidence are denied, saying why."""

    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        return Evidence.none(APP_NOT_CONFIGURED)


class FileEvidence:
    """Evidence from a JSON file in the shape the GitHub client produces (for ``agent-gate explain``)."""

    def __init__(self, path: Path) -> None:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            self._evidence = Evidence.model_validate({**data, "source": "file"})
        except (OSError, ValueError, ValidationError, TypeError) as exc:
            raise GateError(f"the evidence file {path} is not valid: {exc}", code="invalid-evidence") from exc

    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        return self._evidence


WEB_FLOW_ID = 19864447  # GitHub's own committer account for commits made in the web UI


def _account(user: dict[str, Any] | None) -> Account | None:
    if not isinstance(user, dict) or "login" not in user:
        return None
    return Account(login=str(user["login"]), id=user.get("id"), type=str(user.get("type") or "User"))


class GitHubEvidence:
    """Gathers the facts of one decision from GitHub, through the App client. Fails closed (503)."""

    def __init__(self, client: GitHubClient) -> None:
        self._gh = client

    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        start = self._gh.calls
        repo = identity.repository
        run = self._run(identity) if identity.run_id > 0 else None
        pr_data = self._pull_request(identity, request)
        pull_request = None
        reviews: list[Review] = []
        if pr_data is not None:
            number = int(pr_data["number"])
            commits = self._gh.paginate(
                repo, f"/repos/{repo}/pulls/{number}/commits", what=f"listing the commits of PR #{number}"
            )
            pull_request = self._pr_facts(pr_data, commits)
            reviews = [
                Review(
                    id=int(r["id"]),
                    reviewer=reviewer,
                    state=str(r.get("state")),
                    commit_id=r.get("commit_id"),
                    submitted_at=r.get("submitted_at"),
                )
                for r in self._gh.paginate(
                    repo, f"/repos/{repo}/pulls/{number}/reviews", what=f"listing the reviews of PR #{number}"
                )
                if (reviewer := _account(r.get("user"))) is not None
            ]
        approvals: list[EnvironmentApproval] = []
        if identity.run_id > 0 and needs.environment:
            for a in (
                self._gh.get(
                    repo,
                    f"/repos/{repo}/actions/runs/{identity.run_id}/approvals",
                    what=f"listing the environment approvals of run {identity.run_id}",
                )
                or []
            ):
                approver = _account(a.get("user"))
                if approver is not None:
                    approvals.append(
                        EnvironmentApproval(
                            approver=approver,
                            state=str(a.get("state")),
                            comment=str(a.get("comment") or ""),
                            environments=[
                                str(e.get("name")) for e in a.get("environments") or [] if e.get("name")
                            ],
                        )
                    )
        people = {r.reviewer.login.lower(): r.reviewer for r in reviews}
        people.update({a.approver.login.lower(): a.approver for a in approvals})
        standings = {
            key: self._standing(identity, account, needs.teams)
            for key, account in people.items()
            if account.type == "User"
        }
        return Evidence(
            source="github",
            pull_request=pull_request,
            run=run,
            reviews=reviews,
            environment_approvals=approvals,
            standings=standings,
            github_api_calls=self._gh.calls - start,
        )

    def _run(self, identity: WorkloadIdentity) -> RunFacts:
        repo = identity.repository
        data = self._gh.get(
            repo,
            f"/repos/{repo}/actions/runs/{identity.run_id}",
            what=f"reading workflow run {identity.run_id}",
        )
        return RunFacts(
            id=int(data["id"]),
            triggering_actor=_account(data.get("triggering_actor")),
            actor=_account(data.get("actor")),
            head_sha=data.get("head_sha"),
            head_branch=data.get("head_branch"),
            event=data.get("event"),
        )

    def _pull_request(self, identity: WorkloadIdentity, request: DecisionRequest) -> dict[str, Any] | None:
        repo = identity.repository
        if request.pull_request is not None:
            try:
                data: dict[str, Any] = self._gh.get(
                    repo,
                    f"/repos/{repo}/pulls/{request.pull_request}",
                    what=f"reading PR #{request.pull_request}",
                )
            except GitHubNotFound as exc:
                raise InvalidRequest(
                    f"pull request #{request.pull_request} does not exist in {repo}; name an existing pull request",
                    code="unknown-pull-request",
                ) from exc
            return data
        sha = request.sha or identity.sha
        try:
            candidates = self._gh.get(
                repo,
                f"/repos/{repo}/commits/{sha}/pulls",
                what=f"finding the pull requests of commit {sha[:7]}",
            )
        except GitHubError as exc:
            if exc.http_status == 409:  # an empty repository or an unknown commit: no change to find
                return None
            raise
        if not isinstance(candidates, list) or not candidates:
            return None
        merged = [p for p in candidates if p.get("merge_commit_sha") == sha and p.get("merged_at")]
        heads = [p for p in candidates if (p.get("head") or {}).get("sha") == sha]
        chosen = (merged or heads or candidates)[0]
        # The list endpoint omits some fields (merged, commits); read the PR itself.
        full: dict[str, Any] = self._gh.get(
            repo, f"/repos/{repo}/pulls/{chosen['number']}", what=f"reading PR #{chosen['number']}"
        )
        return full

    def _pr_facts(self, pr: dict[str, Any], commits: list[dict[str, Any]]) -> PullRequestFacts:
        facts = []
        for c in commits:
            git = c.get("commit") or {}
            facts.append(
                CommitFacts(
                    sha=str(c["sha"]),
                    message=str(git.get("message") or ""),
                    author=_account(c.get("author")),
                    author_email=(git.get("author") or {}).get("email"),
                    author_name=(git.get("author") or {}).get("name"),
                    committer=_account(c.get("committer")),
                    committer_email=(git.get("committer") or {}).get("email"),
                    committer_name=(git.get("committer") or {}).get("name"),
                )
            )
        head = next((f for f in facts if f.sha == pr["head"]["sha"]), facts[-1] if facts else None)
        last_pusher = None
        if head is not None:
            committer = head.committer
            last_pusher = head.author if committer is None or committer.id == WEB_FLOW_ID else committer
        author = _account(pr.get("user")) or Account(login="ghost", id=None, type="User")
        return PullRequestFacts(
            number=int(pr["number"]),
            author=author,
            head_sha=str(pr["head"]["sha"]),
            head_ref=str(pr["head"]["ref"]),
            base_ref=str(pr["base"]["ref"]),
            state="open" if pr.get("state") == "open" else "closed",
            merged=bool(pr.get("merged") or pr.get("merged_at")),
            merge_commit_sha=pr.get("merge_commit_sha"),
            draft=bool(pr.get("draft")),
            labels=[str(label.get("name")) for label in pr.get("labels") or []],
            commits=facts,
            last_pusher=last_pusher,
        )

    def _standing(self, identity: WorkloadIdentity, account: Account, teams: list[str]) -> Standing:
        repo, org, login = identity.repository, identity.repository_owner, account.login

        def permission() -> str | None:
            data = self._gh.get(
                repo,
                f"/repos/{repo}/collaborators/{user_path(login)}/permission",
                what=f"reading @{login}'s permission",
            )
            return str(data.get("permission")) if isinstance(data, dict) else None

        def member(team: str) -> bool:
            try:
                data = self._gh.get(
                    repo,
                    f"/orgs/{org}/teams/{team}/memberships/{user_path(login)}",
                    what=f"checking @{login} in @{org}/{team}",
                )
            except GitHubNotFound:
                return False
            return isinstance(data, dict) and data.get("state") == "active"

        perm = self._gh.cached_fact(("permission", repo, login.lower()), permission)
        active = [
            t
            for t in teams
            if self._gh.cached_fact(("team", org, t, login.lower()), functools.partial(member, t))
        ]
        return Standing(permission=perm, teams=active)
