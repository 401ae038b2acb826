"""Where evidence comes from: GitHub (``GitHubEvidence``), a file (``FileEvidence``) or nowhere.

The pipeline calls an :class:`EvidenceSource` only for decisions that need evidence (see
``app.decide.engine.evidence_needs``); a read decision never reaches it, and so makes no GitHub call.
The sources that make no GitHub call (no App, a file, fixed evidence) are in app/evidence/offline.py.

``GitHubEvidence`` reads, through the App's client (docs/github-app.md lists the calls):

- the run (``triggering_actor`` is not in the OIDC token), when the workload has one;
- the change: the pull request the request names, else the one associated with the commit;
  its commits (authors, committers, raw git identities, full messages) and its reviews, all of
  them (the engine decides which count);
- the run's environment approvals, when an environment is being deployed;
- the pull request's changed files, when a rule names paths (GitHub lists at most
  :data:`PR_FILES_LIMIT`; a longer or unreadable list is recorded as incomplete, and the rule denies);
- the standing (permission, the rule's teams) of every human who approved something.

Calls that do not depend on each other run at once, on a small pool shared by the gatherer's
decisions (:data:`EVIDENCE_THREADS`): the run, the pull request and the environment approvals
together (with the PR's commits and reviews when the request names the PR); else the PR's commits
and reviews together once the PR is found; then every approver's standing together. A decision waits for about one GitHub latency per step, not one per call. When the pool
is busy with other decisions, the asking thread runs its own calls, so a decision is never slower
than one call after another.

Any GitHub failure raises ``GitHubError`` (503): the gate never decides on partial evidence. When
several calls fail, the one that came first in the order above is raised (as if they had run one
after another) and the calls not started yet are cancelled.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from app.errors import GitHubError, GitHubNotFound, InvalidRequest
from app.evidence.model import (
    NOREPLY_DOMAIN,
    Account,
    ChangedFiles,
    CommitFacts,
    EnvironmentApproval,
    Evidence,
    EvidenceNeeds,
    GitActor,
    PullRequestFacts,
    Question,
    Review,
    RunFacts,
    Standing,
    co_authors,
)
from app.github.auth import repo_path
from app.github.graphql import COMMIT_AUTHORS, MAX_COMMIT_PAGES
from app.github.payloads import (
    GhCommit,
    GhDiffEntry,
    GhEnvironmentApproval,
    GhPull,
    GhReview,
    GhRun,
    GhUser,
    parse,
)
from app.github.protocol import GitHubAPI
from app.tokens.identity import WorkloadIdentity

WEB_FLOW_ID = 19864447  # GitHub's own committer account (web-flow) for commits made on github.com
PR_COMMITS_LIMIT = 250  # GET /pulls/{n}/commits lists at most this many
PR_FILES_LIMIT = 3000  # GET /pulls/{n}/files lists at most this many (GitHub's REST reference)
# Threads per gatherer for a decision's independent calls; GitHub's secondary limit is 100
# concurrent requests per installation, so a process stays far below it.
EVIDENCE_THREADS = 4

T = TypeVar("T")


class EvidenceSource(Protocol):
    def gather(self, identity: WorkloadIdentity, request: Question, needs: EvidenceNeeds) -> Evidence:
        """The facts for one decision. Raises ``GitHubError`` (503) rather than guess."""
        ...


class _Task(Generic[T]):
    """One call started on the pool, run in a copy of the asking thread's context (its deadline,
    request id and GitHub call count)."""

    def __init__(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._future: Future[T] = pool.submit(contextvars.copy_context().run, fn)

    def result(self) -> T:
        """The call's result, or its exception. Not started yet (the pool is busy with other
        decisions): it runs here, in the asking thread, instead of waiting for a pool thread."""
        if self._future.cancel():
            return self._fn()
        return self._future.result()

    def cancel(self) -> None:
        self._future.cancel()


class GitHubEvidence:
    """Gathers the facts of one decision from GitHub, through the App client. Fails closed (503)."""

    def __init__(self, client: GitHubAPI, *, threads: int = EVIDENCE_THREADS) -> None:
        self._gh = client
        # Threads start on first use (never in a gunicorn master before it forks) and are shared
        # by every decision this gatherer serves: the pool bounds the process, not one decision.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agent-gate-evidence")

    def __repr__(self) -> str:
        return f"GitHubEvidence({self._gh!r})"

    def gather(self, identity: WorkloadIdentity, request: Question, needs: EvidenceNeeds) -> Evidence:
        start = self._gh.calls  # also makes this thread's count, which the pool's calls add to
        tasks: list[_Task[Any]] = []

        def spawn(fn: Callable[[], T]) -> _Task[T]:
            task = _Task(self._pool, fn)
            tasks.append(task)
            return task

        try:
            evidence = self._gather(identity, request, needs, spawn)
        except BaseException:
            for task in tasks:
                task.cancel()  # those already running finish on their own; their answer is dropped
            raise
        return evidence.model_copy(update={"github_api_calls": self._gh.calls - start})

    def _gather(
        self,
        identity: WorkloadIdentity,
        request: Question,
        needs: EvidenceNeeds,
        spawn: Callable[[Callable[[], Any]], _Task[Any]],
    ) -> Evidence:
        repo, run_id = identity.repository, identity.run_id
        run_task = spawn(lambda: self._run(repo, run_id)) if run_id > 0 else None
        pull_task = spawn(lambda: self._pull_request(identity, request))
        approvals_task = (
            spawn(lambda: self._environment_approvals(repo, run_id))
            if needs.environment is not None and run_id > 0
            else None
        )
        # A PR the request names is known by its number: its commits and reviews need not wait.
        named = request.pull_request
        early = (
            (spawn(lambda: self._commits(repo, named)), spawn(lambda: self._reviews(repo, named)))
            if named is not None
            else None
        )
        run: RunFacts | None = run_task.result() if run_task is not None else None
        pull: GhPull | None = pull_task.result()
        pull_request: PullRequestFacts | None = None
        reviews: list[Review] = []
        files_task = spawn(lambda: self._files(repo, pull)) if needs.files and pull is not None else None
        if pull is not None:
            commits_task, reviews_task = early or (
                spawn(lambda: self._commits(repo, pull.number)),
                spawn(lambda: self._reviews(repo, pull.number)),
            )
            commits = commits_task.result()
            self._check_all_commits_listed(repo, pull, commits)
            pull_request = _pull_request_facts(pull, commits)
            if any(_needs_resolving(c) for c in pull_request.commits):
                pull_request = self._with_authors(repo, pull_request)
            reviews = reviews_task.result()
        files = files_task.result() if files_task is not None else None
        if needs.files and files is None:
            files = ChangedFiles(problem=_NO_PULL)
        approvals: list[EnvironmentApproval] = approvals_task.result() if approvals_task is not None else []
        standings = self._standings(identity, reviews, approvals, needs.teams, spawn)
        return Evidence(
            source="github",
            pull_request=pull_request,
            run=run,
            reviews=reviews,
            environment_approvals=approvals,
            standings=standings,
            changed_files=files,
        )

    # -- co-authors, as GitHub resolves them -------------------------------------------------------
    def _with_authors(self, repo: str, pr: PullRequestFacts) -> PullRequestFacts:
        """The PR's commits with GitHub's ``Commit.authors`` (co-author trailers resolved to accounts
        the way GitHub does). Asked only when a trailer names an address that is not a noreply one."""
        owner, _, name = repo.partition("/")
        what = f"resolving the co-authors of PR #{pr.number} in {repo}"
        found: dict[str, list[GitActor]] = {}
        cursor: str | None = None
        for _ in range(MAX_COMMIT_PAGES):
            data = self._gh.graphql(
                repo,
                COMMIT_AUTHORS,
                {"owner": owner, "name": name, "number": pr.number, "cursor": cursor},
                what=what,
            )
            try:
                commits = data["repository"]["pullRequest"]["commits"]
                for node in commits["nodes"]:
                    commit = node["commit"]
                    found[str(commit["oid"])] = [_git_actor(a) for a in commit["authors"]["nodes"] if a]
                page = commits["pageInfo"]
            except (KeyError, TypeError) as exc:
                raise GitHubError(
                    f"GitHub's GraphQL answer is not in the expected shape while {what}",
                    code="github-unexpected-answer",
                ) from exc
            if not page["hasNextPage"]:
                break
            cursor = str(page["endCursor"])
        else:
            raise GitHubError(f"too many commits while {what}; the gate does not decide on part of a change")
        return pr.model_copy(
            update={"commits": [c.model_copy(update={"authors": found.get(c.sha)}) for c in pr.commits]}
        )

    # -- the run -----------------------------------------------------------------------------------
    def _run(self, repo: str, run_id: int) -> RunFacts:
        what = f"reading workflow run {run_id} of {repo}"
        try:
            data = self._gh.get_json(repo, f"/repos/{repo_path(repo)}/actions/runs/{run_id}", what=what)
        except GitHubNotFound as exc:
            raise GitHubError(
                f"GitHub answered 404 while {what}: the run the token names is not visible to the App; "
                "it needs Actions: read on the repository (docs/github-app.md); the decision was not made",
                http_status=404,
            ) from exc
        run = parse(GhRun, data, what)
        return RunFacts(
            id=run.id,
            triggering_actor=_account(run.triggering_actor),
            actor=_account(run.actor),
            head_sha=run.head_sha,
            head_branch=run.head_branch,
            event=run.event,
        )

    # -- the change --------------------------------------------------------------------------------
    def _pull_request(self, identity: WorkloadIdentity, request: Question) -> GhPull | None:
        repo = identity.repository
        if request.pull_request is not None:
            return self._pull(repo, request.pull_request)
        sha = request.sha or identity.sha
        what = f"finding the pull requests of commit {sha[:7]} in {repo}"
        try:
            data = self._gh.get_json(
                repo,
                f"/repos/{repo_path(repo)}/commits/{sha}/pulls",
                what=what,
                params={"per_page": 100},
            )
        except GitHubNotFound as exc:
            raise _unknown_commit(repo, sha, 404) from exc
        except GitHubError as exc:
            if exc.http_status == 409:
                return None  # an empty repository: there is no change and no pull request to find
            if exc.http_status == 422:
                raise _unknown_commit(repo, sha, 422) from exc
            raise
        return _choose(parse(list[GhPull], data, what), sha)

    def _pull(self, repo: str, number: int) -> GhPull:
        what = f"reading PR #{number} of {repo}"
        try:
            data = self._gh.get_json(repo, f"/repos/{repo_path(repo)}/pulls/{number}", what=what)
        except GitHubNotFound as exc:
            raise InvalidRequest(
                f"pull request #{number} was not found in {repo} (GitHub answered 404); name a pull request "
                "of this repository",
                code="unknown-pull-request",
            ) from exc
        return parse(GhPull, data, what)

    def _commits(self, repo: str, number: int) -> list[GhCommit]:
        what = f"listing the commits of PR #{number} of {repo}"
        return parse(
            list[GhCommit],
            self._gh.get_all(repo, f"/repos/{repo_path(repo)}/pulls/{number}/commits", what=what),
            what,
        )

    def _check_all_commits_listed(self, repo: str, pull: GhPull, commits: list[GhCommit]) -> None:
        if len(commits) >= PR_COMMITS_LIMIT:
            # GitHub lists at most 250 commits of a PR: make sure none were left out.
            total = pull.commits if pull.commits is not None else self._pull(repo, pull.number).commits
            if total is None or total > len(commits):
                raise GitHubError(
                    f"PR #{pull.number} of {repo} has {total or 'more'} commits but GitHub lists at most "
                    f"{PR_COMMITS_LIMIT}; the gate does not decide on part of a change. Split the pull request",
                    code="github-change-too-large",
                )

    def _files(self, repo: str, pull: GhPull) -> ChangedFiles:
        """The files the PR changes, or why they are not all known (GitHub refused the list, or cut it)."""
        what = f"listing the files of PR #{pull.number} of {repo}"
        try:
            raw = self._gh.get_all(repo, f"/repos/{repo_path(repo)}/pulls/{pull.number}/files", what=what)
        except GitHubError as exc:
            if exc.http_status is None or exc.http_status >= 500:
                raise  # a transient failure: retried, never decided on
            return ChangedFiles(problem=f"GitHub answered {exc.http_status} while {what}")
        entries = parse(list[GhDiffEntry], raw, what)
        total = pull.changed_files
        if len(entries) >= PR_FILES_LIMIT and (total is None or total > len(entries)):
            return ChangedFiles(
                problem=f"PR #{pull.number} changes {total or f'at least {PR_FILES_LIMIT}'} files and GitHub "
                f"lists at most {PR_FILES_LIMIT}; split the pull request"
            )
        paths = [p for e in entries for p in (e.filename, e.previous_filename) if p]
        return ChangedFiles(paths=list(dict.fromkeys(paths)), complete=True)

    def _reviews(self, repo: str, number: int) -> list[Review]:
        what = f"listing the reviews of PR #{number} of {repo}"
        items = parse(
            list[GhReview],
            self._gh.get_all(repo, f"/repos/{repo_path(repo)}/pulls/{number}/reviews", what=what),
            what,
        )
        return [
            Review(
                id=r.id,
                reviewer=reviewer,
                state=r.state,
                commit_id=r.commit_id,
                submitted_at=r.submitted_at,
            )
            for r in items
            if (reviewer := _account(r.user)) is not None  # a deleted account approves nothing
        ]

    # -- approvals and approvers -------------------------------------------------------------------
    def _environment_approvals(self, repo: str, run_id: int) -> list[EnvironmentApproval]:
        what = f"listing the environment approvals of run {run_id} of {repo}"
        data = self._gh.get_json(repo, f"/repos/{repo_path(repo)}/actions/runs/{run_id}/approvals", what=what)
        return [
            EnvironmentApproval(
                approver=approver,
                state=a.state,
                environments=[e.name for e in a.environments if e.name],
                comment=a.comment or "",
            )
            for a in parse(list[GhEnvironmentApproval], data, what)
            if (approver := _account(a.user)) is not None
        ]

    def _standings(
        self,
        identity: WorkloadIdentity,
        reviews: list[Review],
        approvals: list[EnvironmentApproval],
        teams: list[str],
        spawn: Callable[[Callable[[], Any]], _Task[Any]],
    ) -> dict[str, Standing]:
        """The standing of everyone who approved something: only an approval can count, so other
        reviewers' standing could not change the decision and is not looked up (it costs calls).
        Each approver's is looked up at the same time as the others'."""
        approvers: dict[str, Account] = {}
        for review in reviews:
            if review.state == "APPROVED":
                approvers.setdefault(review.reviewer.login.lower(), review.reviewer)
        for approval in approvals:
            if approval.state == "approved":
                approvers.setdefault(approval.approver.login.lower(), approval.approver)
        repo, org = identity.repository, identity.repository_owner

        def standing(login: str) -> Standing:
            return Standing(
                permission=self._gh.collaborator_permission(repo, login),
                teams=[t for t in teams if self._gh.is_active_team_member(repo, org, t, login)],
            )

        looked_up: dict[str, _Task[Standing]] = {
            key: spawn(functools.partial(standing, account.login))
            for key, account in sorted(approvers.items())
            if account.type == "User"
        }
        # Bots and organisations have no standing.
        return {
            key: looked_up[key].result() if key in looked_up else Standing(permission=None, teams=[])
            for key in sorted(approvers)
        }


_NO_PULL = "the change has no pull request, so the files it touches are not known"


def _choose(candidates: list[GhPull], sha: str) -> GhPull | None:
    """The change a commit belongs to: the merged PR whose merge commit it is (a deploy of main),
    else an open PR whose head it is, else any PR whose head it is, else GitHub's first answer."""
    tiers = (
        [p for p in candidates if p.merge_commit_sha == sha and p.is_merged],
        [p for p in candidates if p.head.sha == sha and p.state == "open"],
        [p for p in candidates if p.head.sha == sha],
        candidates,
    )
    return next((tier[0] for tier in tiers if tier), None)


def _pull_request_facts(pull: GhPull, commits: list[GhCommit]) -> PullRequestFacts:
    facts = [
        CommitFacts(
            sha=c.sha,
            message=c.commit.message,
            author=_account(c.author),
            author_email=c.commit.author.email if c.commit.author else None,
            author_name=c.commit.author.name if c.commit.author else None,
            committer=_account(c.committer),
            committer_email=c.commit.committer.email if c.commit.committer else None,
            committer_name=c.commit.committer.name if c.commit.committer else None,
            committed_at=c.commit.committer.date if c.commit.committer else None,
        )
        for c in commits
    ]
    head = next((f for f in facts if f.sha == pull.head.sha), facts[-1] if facts else None)
    last_pusher = None
    if head is not None:
        # The head's committer pushed it, unless GitHub committed it on someone's behalf (web-flow,
        # e.g. a suggestion applied or a merge from the UI), or the committer has no linked account.
        committer = head.committer
        last_pusher = head.author if committer is None or committer.id == WEB_FLOW_ID else committer
    return PullRequestFacts(
        number=pull.number,
        author=_account(pull.user) or Account(login="ghost", id=None, type="User"),
        head_sha=pull.head.sha,
        head_ref=pull.head.ref,
        base_ref=pull.base.ref,
        state="open" if pull.state == "open" else "closed",
        merged=pull.is_merged,
        merge_commit_sha=pull.merge_commit_sha,
        draft=pull.draft,
        labels=[label.name for label in pull.labels],
        commits=facts,
        last_pusher=last_pusher,
    )


def _needs_resolving(commit: CommitFacts) -> bool:
    """A co-author trailer whose address only GitHub can tie to an account (not a noreply one)."""
    return any(not co.email.lower().endswith(NOREPLY_DOMAIN) for co in co_authors(commit.message))


def _git_actor(node: dict[str, Any]) -> GitActor:
    user = node.get("user")
    account = None
    if isinstance(user, dict) and user.get("login"):
        account = Account(login=str(user["login"]), id=user.get("databaseId"), type="User")
    return GitActor(email=str(node.get("email") or ""), name=str(node.get("name") or ""), account=account)


def _account(user: GhUser | None) -> Account | None:
    return None if user is None else Account(login=user.login, id=user.id, type=user.type)


def _unknown_commit(repo: str, sha: str, status: int) -> InvalidRequest:
    return InvalidRequest(
        f"commit {sha[:7]} was not found in {repo} (GitHub answered {status}); name a commit of this repository",
        code="unknown-commit",
    )
