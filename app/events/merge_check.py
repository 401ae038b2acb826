"""The required merge check, ``agent-gate / merge``, kept current on every pull request.

For a pull request the policy's ``merge`` action is decided by the pipeline with the PR's evidence
and the check is posted on its head; a PR with no agent signal passes (the pipeline's agent-free
overlay), saying which signals were looked for. It is evaluated again whenever its inputs may have changed:
the PR opened, pushed, reopened or marked ready, its labels changed (labels are agent signals), its
base branch changed, a review submitted, edited or dismissed, and the Re-run button of the gate's
own check (``check_run`` / ``check_suite`` ``rerequested``). Changes to the evidence are told to
the gate's evidence listeners (grant revocation).
"""

from __future__ import annotations

import logging
from typing import Any

from app.decide.decision import Decision, DecisionRequest
from app.errors import GateError, InvalidRequest
from app.evidence.model import EvidenceChange
from app.gate.core import Gate
from app.gate.question import Question
from app.gate.workloads import Repo, pull_request_check_identity
from app.github.auth import repo_path
from app.github.payloads import GhPull, GhRepository, parse
from app.github.webhooks import CheckRunEvent, CheckSuiteEvent, PullRequestEvent, PullRequestReviewEvent
from app.publish.checks import CHECK_PREFIX
from app.tokens.identity import WorkloadIdentity

log = logging.getLogger("agent_gate.webhook")

PR_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review", "labeled", "unlabeled"})
REVIEW_ACTIONS = frozenset({"submitted", "edited", "dismissed"})


def on_pull_request(g: Gate, event: PullRequestEvent, delivery: str) -> dict[str, Any]:
    action, pr, repo = event.action, event.pull_request, event.repository
    if action == "synchronize":
        g.evidence_changed(EvidenceChange(repo.id, pr.number, event.before, "new commits pushed"))
    elif action == "closed":
        g.evidence_changed(EvidenceChange(repo.id, pr.number, None, "pull request closed"))
        return {"handled": True, "check": None}
    elif action == "edited":
        if not event.base_changed:
            return {"handled": False, "why": "the edit did not change the base branch"}
        g.evidence_changed(EvidenceChange(repo.id, pr.number, None, "base branch changed"))
    elif action not in PR_ACTIONS:
        return {"handled": False, "why": f"pull_request action {action!r} needs no check"}
    return _evaluate_open(g, repo, pr, delivery)


def on_pull_request_review(g: Gate, event: PullRequestReviewEvent, delivery: str) -> dict[str, Any]:
    action, pr, repo = event.action, event.pull_request, event.repository
    if action == "dismissed":
        login = event.review.user.login if event.review.user else "unknown"
        g.evidence_changed(EvidenceChange(repo.id, pr.number, None, f"approval by @{login} dismissed"))
    if action not in REVIEW_ACTIONS:
        return {"handled": False, "why": f"pull_request_review action {action!r} needs no check"}
    return _evaluate_open(g, repo, pr, delivery)


def on_rerequested(g: Gate, event: CheckRunEvent | CheckSuiteEvent, delivery: str) -> dict[str, Any]:
    """The Re-run button on the gate's own check run (or its whole suite): evaluate each PR again."""
    name = event.event_name
    if event.action != "rerequested":
        return {"handled": False, "why": f"{name} action {event.action!r} needs no check"}
    if g.github is None or event.item.app_id != g.github.app_id:
        return {"handled": False, "why": "the check was not created by this App"}
    if isinstance(event, CheckRunEvent) and not event.check_run.name.startswith(CHECK_PREFIX):
        return {"handled": False, "why": "not one of the gate's checks"}
    numbers = list(event.item.pull_request_numbers)
    results = [evaluate_again(g, event.repository, n, delivery, "a re-run of its check") for n in numbers]
    return {"handled": bool(results), "pull_requests": numbers, "results": results}


def evaluate_again(g: Gate, repo: GhRepository, number: int, delivery: str, why: str) -> dict[str, Any]:
    """Read pull request ``number`` as GitHub has it now and evaluate its merge check again."""
    assert g.github is not None
    pr = parse(
        GhPull,
        g.github.get_json(
            repo.full_name,
            f"/repos/{repo_path(repo.full_name)}/pulls/{number}",
            what=f"reading PR #{number} of {repo.full_name} for {why}",
        ),
        f"reading PR #{number} of {repo.full_name}",
    )
    return _evaluate_open(g, repo, pr, delivery)


def _evaluate_open(g: Gate, repo: GhRepository, pr: GhPull, delivery: str) -> dict[str, Any]:
    if pr.state != "open":
        return {"handled": False, "why": "the pull request is not open"}
    decision = evaluate_merge_check(g, repo, pr, delivery)
    if decision is None:
        return {"handled": False, "why": "no policy governs this repository's owner"}
    return {"handled": True, "decision_id": decision.decision_id, "allowed": decision.allowed}


def pr_check_identity(repo: GhRepository, pr: GhPull, delivery: str, now: int) -> WorkloadIdentity:
    """The identity a pull request's merge check is decided as, from the repository and the pull
    request (a webhook's, or GitHub's answer to ``GET /pulls/{n}``: the same model). Raises
    ``InvalidRequest`` for a pull request without an author (GitHub sends null for a deleted one)."""
    if pr.user is None:
        raise InvalidRequest(
            f"pull request #{pr.number} has no author (user is null); its merge check cannot be decided",
            code="invalid-payload",
        )
    return pull_request_check_identity(
        Repo.of(repo),
        author=pr.user.login,
        author_id=pr.user.id,
        number=pr.number,
        head_sha=pr.head.sha,
        head_ref=pr.head.ref,
        base_ref=pr.base.ref,
        delivery=delivery,
        now=now,
    )


def merge_question(identity: WorkloadIdentity, number: int, audit_extra: dict[str, Any]) -> Question:
    """What pull request ``number``'s merge check asks: may its head be merged."""
    return Question(
        identity,
        DecisionRequest(action="merge", pull_request=number, sha=identity.sha),
        audit_kind="merge-check",
        audit_extra=audit_extra,
    )


def evaluate_merge_check(g: Gate, repo: GhRepository, pr: GhPull, delivery: str) -> Decision | None:
    """Ask the pipeline about the merge action for the PR's head, and post ``agent-gate / merge`` on it.

    A failure to gather evidence or to post the check is raised (the queue retries the job); the
    decision and its audit record are kept either way.
    """
    identity = pr_check_identity(repo, pr, delivery, int(g.clock()))
    if g.policies.current().for_owner(identity.repository_owner_id) is None:
        return None
    question = merge_question(identity, pr.number, {"delivery": delivery})
    try:
        draft = g.pipeline.deliberate(question)
    except GateError as exc:
        log.warning("merge check for %s#%s not evaluated: %s", repo.full_name, pr.number, exc.message)
        g.store.append_audit(
            "merge-check-failed",
            {"repository_id": identity.repository_id, "pull_request": pr.number, "error": exc.code},
        )
        raise
    decision = g.pipeline.record(draft).decision
    if g.checks is not None:
        try:
            g.checks.publish(decision)
        except GateError as exc:
            log.warning("could not post the merge check on %s: %s", decision.subject.sha[:7], exc.message)
            g.store.append_audit("check-run-failed", {"decision_id": decision.decision_id, "error": exc.code})
            raise
    return decision
