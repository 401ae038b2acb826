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
from app.publish.checks import CHECK_PREFIX
from app.tokens.identity import WorkloadIdentity

log = logging.getLogger("agent_gate.webhook")

PR_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review", "labeled", "unlabeled"})
REVIEW_ACTIONS = frozenset({"submitted", "edited", "dismissed"})


def on_pull_request(g: Gate, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
    action = payload.get("action")
    pr, repo = _pr_and_repo(payload)
    repository_id, number = int(repo["id"]), int(pr["number"])
    if action == "synchronize":
        g.evidence_changed(EvidenceChange(repository_id, number, payload.get("before"), "new commits pushed"))
    elif action == "closed":
        g.evidence_changed(EvidenceChange(repository_id, number, None, "pull request closed"))
        return {"handled": True, "check": None}
    elif action == "edited":
        changes = payload.get("changes")
        if not (isinstance(changes, dict) and "base" in changes):
            return {"handled": False, "why": "the edit did not change the base branch"}
        g.evidence_changed(EvidenceChange(repository_id, number, None, "base branch changed"))
    elif action not in PR_ACTIONS:
        return {"handled": False, "why": f"pull_request action {action!r} needs no check"}
    return _evaluate_open(g, repo, pr, delivery)


def on_pull_request_review(g: Gate, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
    action = payload.get("action")
    pr, repo = _pr_and_repo(payload)
    if action == "dismissed":
        review = payload.get("review")
        reviewer = review.get("user") if isinstance(review, dict) else None
        login = reviewer.get("login") if isinstance(reviewer, dict) else None
        g.evidence_changed(
            EvidenceChange(
                int(repo["id"]), int(pr["number"]), None, f"approval by @{login or 'unknown'} dismissed"
            )
        )
    if action not in REVIEW_ACTIONS:
        return {"handled": False, "why": f"pull_request_review action {action!r} needs no check"}
    return _evaluate_open(g, repo, pr, delivery)


def on_rerequested(g: Gate, event: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
    """The Re-run button on the gate's own check run (or its whole suite): evaluate each PR again."""
    if payload.get("action") != "rerequested":
        return {"handled": False, "why": f"{event} action {payload.get('action')!r} needs no check"}
    item = payload.get(event)
    repo = payload.get("repository")
    if not isinstance(item, dict) or not isinstance(repo, dict):
        raise InvalidRequest(
            f"the {event} payload has no {event} or repository object", code="invalid-payload"
        )
    app = item.get("app")
    if g.github is None or not isinstance(app, dict) or app.get("id") != g.github.app_id:
        return {"handled": False, "why": "the check was not created by this App"}
    if event == "check_run" and not str(item.get("name", "")).startswith(CHECK_PREFIX):
        return {"handled": False, "why": "not one of the gate's checks"}
    numbers = sorted(
        {int(p["number"]) for p in item.get("pull_requests") or [] if isinstance(p, dict) and "number" in p}
    )
    results = []
    for number in numbers:
        pr = g.github.get_json(
            repo["full_name"],
            f"/repos/{repo_path(repo['full_name'])}/pulls/{number}",
            what=f"reading PR #{number} of {repo['full_name']} for a re-run of its check",
        )
        if not isinstance(pr, dict):
            raise InvalidRequest(f"GitHub's answer for PR #{number} is not an object", code="invalid-payload")
        results.append(_evaluate_open(g, repo, pr, delivery))
    return {"handled": bool(results), "pull_requests": numbers, "results": results}


def _pr_and_repo(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    pr, repo = payload.get("pull_request"), payload.get("repository")
    if not isinstance(pr, dict) or not isinstance(repo, dict):
        raise InvalidRequest("the payload has no pull_request or repository object", code="invalid-payload")
    return pr, repo


def _evaluate_open(g: Gate, repo: dict[str, Any], pr: dict[str, Any], delivery: str) -> dict[str, Any]:
    if pr.get("state") != "open":
        return {"handled": False, "why": "the pull request is not open"}
    decision = evaluate_merge_check(g, repo, pr, delivery)
    if decision is None:
        return {"handled": False, "why": "no policy governs this repository's owner"}
    return {"handled": True, "decision_id": decision.decision_id, "allowed": decision.allowed}


def pr_check_identity(repo: dict[str, Any], pr: dict[str, Any], delivery: str, now: int) -> WorkloadIdentity:
    """The identity a pull request's merge check is decided as, from the repository and the pull
    request (a webhook's, or GitHub's answer to ``GET /pulls/{n}``: the same fields)."""
    return pull_request_check_identity(
        Repo.of(repo),
        author=str(pr["user"]["login"]),
        author_id=int(pr["user"]["id"]),
        number=int(pr["number"]),
        head_sha=str(pr["head"]["sha"]),
        head_ref=str(pr["head"]["ref"]),
        base_ref=str(pr["base"]["ref"]),
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


def evaluate_merge_check(g: Gate, repo: dict[str, Any], pr: dict[str, Any], delivery: str) -> Decision | None:
    """Ask the pipeline about the merge action for the PR's head, and post ``agent-gate / merge`` on it.

    A failure to gather evidence or to post the check is raised (the queue retries the job); the
    decision and its audit record are kept either way.
    """
    identity = pr_check_identity(repo, pr, delivery, int(g.clock()))
    if g.policies.current().for_owner(identity.repository_owner_id) is None:
        return None
    question = merge_question(identity, int(pr["number"]), {"delivery": delivery})
    try:
        draft = g.pipeline.deliberate(question)
    except GateError as exc:
        log.warning("merge check for %s#%s not evaluated: %s", repo["full_name"], pr["number"], exc.message)
        g.store.append_audit(
            "merge-check-failed",
            {"repository_id": identity.repository_id, "pull_request": pr["number"], "error": exc.code},
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
