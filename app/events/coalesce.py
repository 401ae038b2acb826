"""What a webhook delivery is about, when several deliveries about it may share one job.

Handling some events is only deciding one subject again from GitHub's current facts: a pull
request's merge check after a label or a review (the evidence is fetched when the job runs, never
read from the payload), a held deployment's run after an environment review. Two such deliveries
about the same subject, the second arriving while the first still waits in the queue, need one
run: the waiting job, run later, sees both changes. The subject names the event too (each event
has its own handlers), and a pull request's head and base, so a push or a retarget never shares a
job with what came before it.

Deliveries whose handling does more than decide again are never coalesced: a push
(``synchronize``), a close, a base change or a dismissed review revoke grants; a protection rule
request names the callback to answer. A running job is never joined either: it may have read its
facts before the new event happened.
"""

from __future__ import annotations

from app.errors import InvalidRequest
from app.events.merge_check import PR_ACTIONS
from app.github.webhooks import (
    DeploymentReviewEvent,
    PullRequestEvent,
    PullRequestReviewEvent,
    parse_event,
)

# Pull request actions whose handling is only the merge check decided again (PR_ACTIONS without
# the push, which revokes the grants of the old head).
_RECHECK_PR_ACTIONS = PR_ACTIONS - {"synchronize"}
_RECHECK_REVIEW_ACTIONS = frozenset({"submitted", "edited"})  # "dismissed" revokes grants


def subject_of(event: str, payload: object) -> str | None:
    """The subject a delivery of ``event`` coalesces on, or None when it must run on its own (a
    payload the gate cannot read included: the worker gives that one up with its reason)."""
    try:
        typed = parse_event(event, payload)
    except InvalidRequest:
        return None
    if isinstance(typed, PullRequestEvent) and typed.action in _RECHECK_PR_ACTIONS:
        pr = typed.pull_request
        return f"{event}:{typed.repository.id}:{pr.number}:{pr.head.sha}:{pr.base.ref}"
    if isinstance(typed, PullRequestReviewEvent) and typed.action in _RECHECK_REVIEW_ACTIONS:
        pr = typed.pull_request
        return f"{event}:{typed.repository.id}:{pr.number}:{pr.head.sha}:{pr.base.ref}"
    if isinstance(typed, DeploymentReviewEvent) and typed.workflow_run is not None:
        return f"{event}:{typed.repository.id}:run:{typed.workflow_run.id}"
    return None
