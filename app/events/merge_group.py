"""The merge queue's required check: ``agent-gate / merge`` on each merge group's commit.

With a merge queue, GitHub requires every required check on the commit it builds for a group
(``merge_group`` ``checks_requested``) and merges nothing until they pass. The gate answers:

1. ``agent-gate / merge`` is set in progress on the group's ``head_sha`` at once;
2. the group's pull requests are found: the one its branch names
   (``gh-readonly-queue/<base>/pr-<N>-<sha>``), those GitHub associates with its commits whose head
   is one of them (``GET /commits/{sha}/pulls``: a queue that merges keeps their commits) and those the commits GitHub made name (``Merge pull request #N``,
   ``Title (#N)``). One missed can only fail the group: its changes are then approved by nobody;
3. what the group's commit changes against ``base_sha`` (the compare API) is compared with what
   each pull request changes at its current head (app/decide/merge_group.py);
4. each pull request is judged by the pipeline on its current head, exactly as its own merge check
   (``pr_check_identity``, ``merge_question``), as a merge group origin whose question carries the
   comparison's findings (the ``merge-group`` overlay adds them as reasons);
5. the check is completed from those decisions (app/publish/merge_group.py): success only when every
   pull request passes and the group's commit is exactly their approved changes.

A GitHub failure raises: the job is retried and the check stays in progress, never a success.
``destroyed`` (the group left the queue: merged, dequeued or invalidated) needs no answer.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime
from typing import Any

from app.decide.decision import Decision
from app.decide.merge_group import FileChange, PullChanges, compare_group
from app.errors import GateError, GitHubNotFound, InvalidRequest
from app.events.merge_check import merge_question, pr_check_identity
from app.gate.core import Gate
from app.gate.question import Draft, MergeGroupJudgment
from app.gate.workloads import merge_group_identity
from app.github import changes
from app.github.auth import repo_path
from app.github.changes import GhDiffEntry
from app.github.payloads import GhPull, GhRepository, parse
from app.github.protocol import GitHubAPI
from app.github.webhooks import MergeGroup, MergeGroupEvent
from app.publish.merge_group import group_check_body, in_progress_body

log = logging.getLogger("agent_gate.webhook")

QUEUE_BRANCH = re.compile(
    r"^(?:refs/heads/)?gh-readonly-queue/(?P<base>.+)/pr-(?P<number>[0-9]+)-(?:[0-9a-f]{40}|[0-9a-f]{64})$"
)
# How GitHub names a pull request in the commits it makes: a merge commit, a squash's title.
_NAMED = re.compile(r"^Merge pull request #(?P<merge>[0-9]+) |\(#(?P<squash>[0-9]+)\)$")
GITHUB_COMMITTER = "noreply@github.com"  # the committer of the commits GitHub makes itself
MAX_COMMIT_LOOKUPS = 50  # commits of a group whose pull requests are asked for; the rest by name only
MAX_PULL_REQUESTS = 20  # a group holding more is refused rather than judged in one job


def on_merge_group(g: Gate, event: MergeGroupEvent, delivery: str) -> dict[str, Any]:
    group, repo = event.merge_group, event.repository
    if event.action == "destroyed":
        return {
            "handled": False,
            "why": f"the merge group left the queue ({event.reason or 'no reason given'})",
        }
    if event.action != "checks_requested":
        return {"handled": False, "why": f"merge_group action {event.action!r} needs no check"}
    if g.github is None or g.checks is None:
        return {"handled": False, "why": "the GitHub App is not configured"}
    if g.policies.current().for_owner(repo.owner.id) is None:
        return {"handled": False, "why": "no policy governs this repository's owner"}
    g.checks.write(repo.full_name, in_progress_body(group.head_sha))
    try:
        decisions, problems = _judge(g, g.github, repo, group, delivery)
    except GateError as exc:
        log.warning("merge group %s of %s not judged: %s", group.head_sha[:7], repo.full_name, exc.message)
        g.store.append_audit(
            "merge-group-failed",
            {"repository_id": repo.id, "merge_group": group.head_sha, "error": exc.code},
        )
        raise
    if problems:
        g.store.append_audit(
            "merge-group-refused",
            {"repository_id": repo.id, "merge_group": group.head_sha, "problems": problems},
        )
    now = datetime.fromtimestamp(g.clock(), UTC)
    body = group_check_body(group.head_sha, decisions, problems, now=now)
    g.checks.write(repo.full_name, body)
    return {
        "handled": True,
        "merge_group": group.head_sha,
        "conclusion": body["conclusion"],
        "pull_requests": [d.subject.pull_request for d in decisions],
        "decision_ids": [d.decision_id for d in decisions],
        "problems": problems,
    }


def _judge(
    g: Gate, github: GitHubAPI, repo: GhRepository, group: MergeGroup, delivery: str
) -> tuple[list[Decision], list[str]]:
    """The recorded decision of each pull request of the group, and what kept the gate from judging
    the rest. Every decision is made before any is recorded: a GitHub failure records nothing."""
    named = QUEUE_BRANCH.match(group.head_ref)
    if named is None:
        return [], [f"{group.head_ref} is not a merge queue's branch (gh-readonly-queue/<base>/pr-<N>-<sha>)"]
    base = group.base_ref.removeprefix("refs/heads/")
    comparison = changes.compare(github, repo.full_name, group.base_sha, group.head_sha)
    if comparison.status != "ahead":
        return [], [
            f"the group's commit {group.head_sha[:7]} is {comparison.status} of its base {group.base_sha[:7]}, "
            "not ahead of it"
        ]
    queued = int(named.group("number"))
    numbers = {queued}
    in_group = {commit.sha for commit in comparison.commits}
    for i, commit in enumerate(comparison.commits):
        committer = commit.commit.committer
        if committer is not None and committer.email == GITHUB_COMMITTER:
            # A commit GitHub made (the queue's merge or squash): the pull request it names.
            first_line = commit.commit.message.splitlines()[0] if commit.commit.message else ""
            for m in _NAMED.finditer(first_line):
                numbers.add(int(m.group("merge") or m.group("squash")))
        if i < MAX_COMMIT_LOOKUPS:
            # Only a pull request whose head is in the group (a queue that merges): a pull request
            # stacked on one of the group's commits contains it too, but is not in the group.
            found = changes.commit_pulls(github, repo.full_name, commit.sha)
            numbers.update(n for n, head in found.items() if head in in_group)
    if len(numbers) > MAX_PULL_REQUESTS:
        return [], [
            f"the group holds {len(numbers)} pull requests, more than the {MAX_PULL_REQUESTS} judged at once"
        ]
    problems: list[str] = []
    pulls: list[tuple[GhPull, PullChanges]] = []
    for number in sorted(numbers):
        try:
            pr = parse(
                GhPull,
                github.get_json(
                    repo.full_name,
                    f"/repos/{repo_path(repo.full_name)}/pulls/{number}",
                    what=f"reading PR #{number} of {repo.full_name} for its merge group",
                ),
                f"reading PR #{number} of {repo.full_name}",
            )
        except GitHubNotFound:
            if number == queued:
                problems.append(
                    f"#{number}, which the group's branch names, is not a pull request of {repo.full_name}"
                )
            continue  # a commit message naming an issue: if its changes are in the group, they are unapproved
        if pr.state != "open" or pr.base.ref != base:
            problems.append(
                f"#{number} is in the group's commits but is not an open pull request into {base}"
            )
            continue
        files = changes.pull_files(github, repo.full_name, number)
        pulls.append((pr, PullChanges(number, tuple(_change(f) for f in files))))
    loaded = g.policies.current().for_owner(repo.owner.id)
    allow = loaded is not None and loaded.policy.merge_queue.allow_overlapping_changes
    group_files = tuple(_change(f) for f in comparison.files)
    findings = compare_group(group_files, [p for _, p in pulls], allow_overlap=allow)
    drafts: list[Draft] = []
    now = int(g.clock())
    for pr, _ in pulls:
        try:
            own = pr_check_identity(repo, pr, delivery, now)
        except InvalidRequest as exc:
            problems.append(exc.message)
            continue
        identity = merge_group_identity(own, number=pr.number, group_sha=group.head_sha)
        mine = tuple(f for f in findings if f.pull_request in (None, pr.number))
        question = dataclasses.replace(
            merge_question(identity, pr.number, {"delivery": delivery, "merge_group": group.head_sha}),
            audit_kind="merge-group",
            merge_group=MergeGroupJudgment(group.head_sha, mine),
        )
        drafts.append(g.pipeline.deliberate(question))
    return [g.pipeline.record(d).decision for d in drafts], problems


def _change(entry: GhDiffEntry) -> FileChange:
    return FileChange(entry.filename, entry.status, entry.sha, entry.patch, entry.previous_filename)
