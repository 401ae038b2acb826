"""The HTTP API: parse, call, render. No business logic lives here.

``POST /v1/decisions`` verifies the bearer token, gathers what the decision needs, calls the pure
engine, appends the audit record and answers 200 (allowed) or 403 (denied) with the same body.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, NoReturn

from flask import Blueprint, Response, jsonify

from app.credentials.grants import GrantSubject
from app.decide.decision import Decision, DecisionRequest, new_decision_id
from app.decide.engine import decide, evidence_needs
from app.errors import (
    AlreadyUsed,
    GateError,
    InvalidRequest,
    TokenError,
    Unavailable,
)
from app.evidence.model import Evidence, EvidenceNeeds
from app.policy.loader import PolicySet
from app.settings import gate_version
from app.store.base import Replay
from app.tokens.identity import WorkloadIdentity
from app.tokens.verify import VerifiedToken
from app.web.requests import audit_refusal, bearer_token, gate, issued_body, parse_json_body

log = logging.getLogger("agent_gate.api")

bp = Blueprint("api", __name__)


def _audit_undecided(exc: GateError, verified: VerifiedToken, body: DecisionRequest) -> None:
    identity = verified.identity
    try:
        gate().store.append_audit(
            "decision-not-made",
            {
                "code": exc.code,
                "message": exc.message,
                "action": body.action,
                "repository_id": identity.repository_id,
                "actor_id": identity.actor_id,
                "run_id": identity.run_id,
                "token_sha256": verified.token_hash,
                "delivered": False,
            },
            replay=replay_of(verified),  # the token is spent: a retry comes with a fresh one
        )
    except GateError:  # the store is down (logged there), or the token was spent by another request
        log.error("could not audit the decision not made for run %s", identity.run_id)


def replay_of(verified: VerifiedToken) -> Replay:
    """The token's replay record, written in the transaction of the audit record that spends it."""
    return Replay(verified.issuer, str(verified.claims["jti"]), verified.spend_until)


def _refuse_replay(verified: VerifiedToken, token: str) -> NoReturn:
    """Refuse a token already spent (before its decision, or by a concurrent request), audited."""
    refusal = gate().verifier.replayed(verified.claims)
    audit_refusal(refusal, token)
    raise refusal


def decision_audit_payload(record: dict[str, Any], token_hash: str) -> dict[str, Any]:
    """What the audit record of a decision holds (``record``: the decision's JSON dump): enough to
    answer who, what, why, under which policy."""
    body = dict(record)
    body["token_sha256"] = token_hash
    return body


@bp.post("/v1/decisions")
def create_decision() -> tuple[Response, int]:
    g = gate()
    body = parse_json_body(DecisionRequest)
    token: str | None = None
    try:
        token = bearer_token()
        # Spent by the decision's audit record (record_decision below), which refuses a replay.
        verified = g.verifier.verify(token, spend=False)
    except TokenError as exc:
        audit_refusal(exc, token)
        raise
    identity = verified.identity
    if body.environment and identity.environment and body.environment != identity.environment:
        raise InvalidRequest(
            f"environment: the request names {body.environment!r} but the job runs in environment "
            f"{identity.environment!r}; they must agree (omit it to use the job's)",
            code="environment-mismatch",
        )
    try:
        policies = g.policies.current()
        needs = evidence_needs(policies, identity, body)
        spent = replay_of(verified)
        if needs is not None and g.store.jti_used(spent.issuer, spent.jti):
            # A replay is refused before any GitHub call is made for it (a captured token must not
            # buy calls on the App's rate limit); decisions that need no evidence meet the refusal
            # in their transaction, as a concurrent second use always does.
            _refuse_replay(verified, token)
        decision = decide_request(identity, body, policies, needs)
    except GateError as exc:
        # The token is spent and nothing was decided (GitHub slow or down, the deadline, the policy):
        # record that, so the audit log shows the attempt and not a silent gap; the client gets 503
        # and retries with a fresh token.
        if exc.status >= 500:
            _audit_undecided(exc, verified, body)
        raise
    if g.break_glass is not None:
        decision = g.break_glass.apply(decision)
    decision = decision.model_copy(update={"details_url": g.details_url(decision.decision_id)})
    # The audit write comes before the answer; if it fails the gate denies (Unavailable -> 503). It
    # spends the token in the same transaction: of two requests with one token, only the one whose
    # record commits first is answered; the other is refused as a replay and leaves no decision.
    record = decision.model_dump(mode="json")  # once: the page, the audit record and the answer
    try:
        g.store.record_decision(
            decision.decision_id,
            record,
            "decision",
            decision_audit_payload(record, verified.token_hash),
            replay=replay_of(verified),
        )
    except AlreadyUsed:
        _refuse_replay(verified, token)
    g.after_decision(decision)
    g.housekeep()
    answer = dict(record)  # the grant's fields are added at the top level only
    if decision.allowed and not (decision.would_deny or decision.break_glass):  # never minted by either
        answer.update(issue_grant(identity, body, decision))
    log.info(
        "decision %s %s action=%s repo_id=%s actor_id=%s rule=%s calls=%s",
        decision.decision_id,
        ("would-deny" if decision.would_deny else "allowed") if decision.allowed else "denied",
        decision.action,
        identity.repository_id,
        identity.actor_id,
        decision.rule,
        decision.github_api_calls,
    )
    return jsonify(answer), 200 if decision.allowed else 403


def issue_grant(identity: WorkloadIdentity, body: DecisionRequest, decision: Decision) -> dict[str, Any]:
    """The credentials of an allowed decision: a grant when asked or required, and the rule's GitHub token.

    They go in the answer only: the audit log and the decision page record the grant's id and a hash
    of the GitHub token, never the credentials.
    """
    g = gate()
    loaded = g.policies.current().for_owner(identity.repository_owner_id)
    rule = next((r for r in loaded.policy.rules if r.name == decision.rule), None) if loaded else None
    if rule is None or g.grants is None or not (body.grant or (rule.grant and rule.grant.required)):
        return {}
    spec = rule.grant
    audience = (spec.audience if spec and spec.audience else None) or (
        f"{decision.action}:{decision.subject.environment or identity.repository}"
    )
    try:
        issued = g.grants.issue(
            GrantSubject.of(decision, identity),
            audience=audience,
            ttl=spec.ttl if spec else 600,
            github_permissions=dict(rule.github_permissions) if rule.github_permissions else None,
            delegate_audiences=spec.delegate_audiences if spec else (),
        )
    except GateError as exc:
        # The decision stands in the audit log; the credentials were not issued, and the caller is
        # told so (503 or the error's own status) rather than handed an allow without them.
        g.store.append_audit("grant-failed", {"decision_id": decision.decision_id, "error": exc.code})
        raise
    return issued_body(issued)


def decide_request(
    identity: WorkloadIdentity, body: DecisionRequest, policies: PolicySet, needs: EvidenceNeeds | None
) -> Decision:
    """Gather what the decision needs (fail closed on GitHub errors), then decide."""
    g = gate()
    evidence = Evidence.none() if needs is None else g.evidence.gather(identity, body, needs)
    return decide(
        identity,
        body,
        policies,
        evidence,
        decision_id=new_decision_id(),
        now=datetime.fromtimestamp(g.clock(), UTC),
    )


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    g = gate()
    checks: dict[str, dict[str, Any]] = {}
    ready = True
    try:
        snapshot = g.policies.current()
        # Which organisations the gate governs is not for anonymous callers: a count only.
        checks["policy"] = {"ok": True, "digest": snapshot.digest, "owners": len(snapshot.by_owner)}
        if g.policies.last_error:
            checks["policy"]["reload_error"] = g.policies.last_error
    except GateError as exc:
        ready = False
        checks["policy"] = {"ok": False, "message": exc.message}
    for name, probe in (("store", g.store.check_writable), ("keys", g.verifier.check_keys)):
        try:
            probe()
            checks[name] = {"ok": True}
        except Unavailable as exc:
            ready = False
            checks[name] = {"ok": False, "message": exc.message}
    checks["github"] = {"ok": True, "configured": g.settings.github is not None}
    body = {"status": "ready" if ready else "not-ready", "version": gate_version(), "checks": checks}
    return jsonify(body), 200 if ready else 503
