"""Which commit a decision is about: the one the action executes, and the one approvals must name. Pure.

A decision, its check run and its grant name the executed commit; pull-request approvals count only
for the commit the change came from (a PR's head, also when a merge commit of it is deployed).
"""

from __future__ import annotations

from app.decide.decision import DecisionRequest, Reason
from app.evidence.model import PullRequestFacts
from app.tokens.identity import WorkloadIdentity


def executed_commit(request: DecisionRequest, identity: WorkloadIdentity, pr: PullRequestFacts | None) -> str:
    """The commit the action executes, which the decision, its check run and its grant all name.

    The request's sha when it names one; the head of a named, open PR being merged (whatever commit
    the merging workflow runs at); otherwise the token's commit.
    """
    if request.sha is not None:
        return request.sha
    if (
        request.action == "merge"
        and pr is not None
        and request.pull_request == pr.number
        and pr.state == "open"
    ):
        return pr.head_sha
    return identity.sha


def approved_commit(
    request: DecisionRequest, identity: WorkloadIdentity, pr: PullRequestFacts | None
) -> tuple[str | None, Reason | None]:
    """The commit pull-request approvals must name, or a failed reason when the change is ambiguous.

    For an open PR that is its head. For a deploy of a merge commit, it is the head of the merged PR
    at merge time. Without a PR, it is the commit being executed (environment approvals of the run).
    """
    target = executed_commit(request, identity, pr)
    if pr is None:
        return target, None
    if pr.merged and pr.merge_commit_sha == target:
        return pr.head_sha, None
    if target == pr.head_sha:
        return pr.head_sha, None
    return None, Reason(
        code="change",
        ok=False,
        message=(
            f"commit {target[:7]} is neither the head ({pr.head_sha[:7]}) nor the merge commit of PR "
            f"#{pr.number}; name the PR whose change is being executed"
        ),
    )
