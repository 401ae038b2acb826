"""``POST /v1/github/webhook``: the GitHub App's webhooks keep a required merge check on agent PRs.

The signature (``X-Hub-Signature-256``, HMAC-SHA256 over the raw body) is verified in constant time
before anything is parsed; a delivery already processed (``X-GitHub-Delivery``) is acknowledged and
ignored. For a pull request with agent provenance, the policy's ``merge`` action is evaluated with
the PR's evidence and ``agent-gate / merge`` is posted on its head; a PR with no agent signal gets a
success check that says which signals were looked for. Changes to the evidence (a dismissed
approval, new commits, a closed PR) are told to the gate's evidence listeners (grant revocation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.decide.decision import Decision, DecisionRequest, Reason, new_decision_id
from app.decide.engine import decide, evidence_needs
from app.errors import GateError, InvalidRequest, PayloadTooLarge, TokenError, Unavailable
from app.evidence.model import Evidence, EvidenceChange
from app.gate import Gate
from app.publish.checks import CheckRunPublisher
from app.tokens.identity import pull_request_check_identity
from app.web.http import gate

log = logging.getLogger("agent_gate.webhook")

bp = Blueprint("webhook", __name__)

# GitHub caps webhook payloads at 25 MB; pull_request payloads are usually tens of KB.
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024
PR_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
REVIEW_ACTIONS = frozenset({"submitted", "edited", "dismissed"})
SIGNALS_LOOKED_FOR = (
    "actor or triggering actor is an AI agent; PR author is an agent; a commit authored or committed by an "
    "agent; an agent co-author trailer or footer; an agent branch prefix; an agent label"
)


class SignatureError(TokenError):
    """A webhook whose signature is missing or wrong (401)."""


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256`` in constant time. Raises :class:`SignatureError`."""
    if not header:
        raise SignatureError(
            "the webhook has no X-Hub-Signature-256 header; set a webhook secret on the GitHub App",
            code="missing-signature",
        )
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError(
            "the webhook signature does not match; the App's webhook secret and GATE_WEBHOOK_SECRET differ",
            code="bad-signature",
        )


@bp.post("/v1/github/webhook")
def github_webhook() -> tuple[Response, int]:
    g = gate()
    if g.settings.webhook_secret is None:
        raise Unavailable(
            "webhooks are not configured: set GATE_WEBHOOK_SECRET to the GitHub App's webhook secret",
            code="webhook-not-configured",
        )
    request.max_content_length = MAX_WEBHOOK_BYTES
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge(f"the webhook body is {length} bytes; the limit is {MAX_WEBHOOK_BYTES}")
    raw = request.get_data(cache=False)
    verify_signature(
        g.settings.webhook_secret.get_secret_value().encode(), raw, request.headers.get("X-Hub-Signature-256")
    )
    delivery = request.headers.get("X-GitHub-Delivery", "")
    event = request.headers.get("X-GitHub-Event", "")
    if not delivery or len(delivery) > 100:
        raise InvalidRequest("the webhook has no valid X-GitHub-Delivery header", code="missing-delivery")
    if not g.store.claim_delivery(delivery, event):
        return jsonify({"status": "duplicate", "delivery": delivery}), 200
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest("the webhook body is not JSON", code="invalid-json") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("the webhook body is not a JSON object", code="invalid-json")
    try:
        result = handle_event(g, event, payload, delivery)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"the {event} payload lacks a field the gate needs ({exc.__class__.__name__}: {exc}); "
            "is the App subscribed to the documented events?",
            code="invalid-payload",
        ) from exc
    return jsonify({"status": "processed", "delivery": delivery, **result}), 200


def handle_event(g: Gate, event: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
    """Dispatch one verified delivery; returns what was done, for the answer and the tests."""
    action = payload.get("action")
    pr = payload.get("pull_request")
    repo = payload.get("repository")
    if not isinstance(pr, dict) or not isinstance(repo, dict):
        return {"handled": False, "why": f"event {event!r} is not about a pull request"}
    repository_id = int(repo["id"])
    number = int(pr["number"])
    if event == "pull_request":
        if action == "synchronize":
            g.evidence_changed(
                EvidenceChange(repository_id, number, payload.get("before"), "new commits pushed")
            )
        elif action == "closed":
            g.evidence_changed(EvidenceChange(repository_id, number, None, "pull request closed"))
            return {"handled": True, "check": None}
        if action not in PR_ACTIONS:
            return {"handled": False, "why": f"pull_request action {action!r} needs no check"}
    elif event == "pull_request_review":
        if action == "dismissed":
            reviewer = (payload.get("review") or {}).get("user") or {}
            g.evidence_changed(
                EvidenceChange(
                    repository_id,
                    number,
                    None,
                    f"approval by @{reviewer.get('login', 'unknown')} dismissed",
                )
            )
        if action not in REVIEW_ACTIONS:
            return {"handled": False, "why": f"pull_request_review action {action!r} needs no check"}
    else:
        return {"handled": False, "why": f"event {event!r} is not handled"}
    if pr.get("state") != "open":
        return {"handled": False, "why": "the pull request is not open"}
    decision = evaluate_merge_check(g, repo, pr, delivery)
    if decision is None:
        return {"handled": False, "why": "no policy governs this repository's owner"}
    return {"handled": True, "decision_id": decision.decision_id, "allowed": decision.allowed}


def evaluate_merge_check(g: Gate, repo: dict[str, Any], pr: dict[str, Any], delivery: str) -> Decision | None:
    """Evaluate the merge action for the PR's head and post ``agent-gate / merge`` on it."""
    now = g.clock()
    identity = pull_request_check_identity(
        repository=repo["full_name"],
        repository_id=int(repo["id"]),
        owner=repo["owner"]["login"],
        owner_id=int(repo["owner"]["id"]),
        author=pr["user"]["login"],
        author_id=int(pr["user"]["id"]),
        number=int(pr["number"]),
        head_sha=pr["head"]["sha"],
        head_ref=pr["head"]["ref"],
        base_ref=pr["base"]["ref"],
        delivery=delivery,
        now=int(now),
    )
    policies = g.policies.current()
    if policies.for_owner(identity.repository_owner_id) is None:
        return None
    body = DecisionRequest(action="merge", pull_request=int(pr["number"]), sha=pr["head"]["sha"])
    needs = evidence_needs(policies, identity, body)
    try:
        evidence = g.evidence.gather(identity, body, needs) if needs else None
    except GateError as exc:
        log.warning("merge check for %s#%s not evaluated: %s", repo["full_name"], pr["number"], exc.message)
        g.store.append_audit(
            "merge-check-failed",
            {"repository_id": identity.repository_id, "pull_request": pr["number"], "error": exc.code},
        )
        raise
    decision = decide(
        identity,
        body,
        policies,
        evidence or Evidence.none("the merge action needs no evidence"),
        decision_id=new_decision_id(),
        now=datetime.fromtimestamp(now, UTC),
    )
    decision = decision.model_copy(update={"details_url": g.details_url(decision.decision_id)})
    summary_override = None
    if not decision.subject.agent:
        # Not the gate's to block: a PR with no agent signal passes, saying what was looked for.
        summary_override = (
            f"## ✅ No agent involvement found\n\nagent-gate looked for: {SIGNALS_LOOKED_FOR}.\n\n"
            "None fired, so this check passes; the repository's own review rules still apply.\n"
        )
        looked = Reason(
            code="agent", ok=True, message=f"no agent signal fired; looked for: {SIGNALS_LOOKED_FOR}"
        )
        decision = decision.model_copy(update={"allowed": True, "remedy": None, "reasons": [looked]})
    g.store.append_audit("merge-check", {**decision.model_dump(mode="json"), "delivery": delivery})
    g.store.save_decision(decision.decision_id, decision.model_dump(mode="json"))
    if g.checks is not None:
        try:
            g.checks.publish(decision, summary_override=summary_override)
        except GateError as exc:
            log.warning("could not post the merge check on %s: %s", decision.subject.sha[:7], exc.message)
            g.store.append_audit("check-run-failed", {"decision_id": decision.decision_id, "error": exc.code})
    return decision


__all__ = ["CheckRunPublisher", "bp", "handle_event", "verify_signature"]
