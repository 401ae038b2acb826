"""The HTTP API: parse the request into a question for the decision pipeline, render its outcome.

``POST /v1/decisions`` verifies the bearer token and asks the pipeline (app/gate/pipeline.py), which
gathers what the decision needs, decides, records it in one transaction with the token's replay
record, and mints the credentials; the answer is 200 (allowed) or 403 (denied) with the same body.

An allowed decision is recorded before its answer is sent, so an answer can fail after its record:
the credentials could not be issued, or the client was gone when the server wrote the answer. The
audit log then says so with a ``decision-not-delivered`` record naming the decision and why
(:class:`_Answer` notices an answer the server could not hand to the connection).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, jsonify
from flask import g as request_globals
from pydantic import BaseModel, Field

from app.decide.decision import Decision, DecisionRequest
from app.errors import AlreadyUsed, GateError, InvalidRequest, TokenError, Unavailable
from app.gate.pipeline import Pipeline
from app.gate.question import Draft, Question
from app.observe.request_hooks import metrics_response
from app.settings import gate_version
from app.store.base import Replay, Store
from app.tokens.verify import VerifiedToken
from app.web.requests import (
    GitHubTokenCredential,
    GrantCredential,
    audit_refusal,
    bearer_token,
    gate,
    issued_body,
    parse_json_body,
)
from app.web.spec import (
    INVALID,
    NOT_JSON,
    OBJECT,
    TOO_LARGE,
    UNAUTHORISED,
    UNAVAILABLE,
    Answer,
    Operation,
    documented,
    json_answer,
)

log = logging.getLogger("agent_gate.api")

bp = Blueprint("api", __name__)


class DecisionAnswer(Decision):
    """A decision as ``POST /v1/decisions`` answers it: with credentials when allowed and asked for."""

    grant: GrantCredential | None = Field(None, description="When allowed and asked for (or required).")
    github_token: GitHubTokenCredential | None = Field(
        None, description="When the rule grants GitHub permissions."
    )


class Readiness(BaseModel):
    """``/readyz``: each check and whether it holds. Policy owners are not shown. ``degraded``: the
    gate answers, but this replica's clock is off the database's by more than GATE_CLOCK_SKEW_MAX
    (``checks.clock.skew_seconds``)."""

    status: str = Field(pattern="^(ready|degraded|not-ready)$")
    version: str | None = Field(None, description="The gate's version.")
    checks: dict[str, dict[str, Any]]


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


def _audit_not_delivered(store: Store, decision_id: str, reason: str, request_id: str | None) -> None:
    """Record that an allowed, recorded decision's answer did not reach its client."""
    try:
        store.append_audit(
            "decision-not-delivered",
            {"decision_id": decision_id, "reason": reason, "request_id": request_id},
        )
    except GateError:  # the store is down (logged there)
        log.error("could not audit that decision %s was not delivered (%s)", decision_id, reason)


class _Answer:
    """An answer's body that knows whether the server handed it to the connection.

    The server iterates the body and writes each chunk; only when the write of the one chunk
    returned does it ask for the next, which marks the body delivered. A server that closes the
    body before that (the write failed: the client was gone) makes :meth:`close` record it.
    "Delivered" means handed to the connection, not read by the client.
    """

    def __init__(self, body: bytes, on_lost: Callable[[], None]) -> None:
        self._body = body
        self._on_lost = on_lost
        self.delivered = False

    def __iter__(self) -> Iterator[bytes]:
        yield self._body
        self.delivered = True

    def close(self) -> None:
        if not self.delivered:
            self.delivered = True  # once
            self._on_lost()


def _answer(
    answer: dict[str, Any], status: int, *, store: Store, decision_id: str, allowed: bool
) -> Response:
    body = jsonify(answer).get_data()  # the app's JSON, as every other answer
    if not allowed:
        return Response(body, status=status, mimetype="application/json")
    request_id = _request_id()  # read now: the body is closed after the request's context is gone
    lost = _Answer(body, lambda: _audit_not_delivered(store, decision_id, "client-gone", request_id))
    response = Response(lost, status=status, mimetype="application/json")
    response.headers["Content-Length"] = str(len(body))
    return response


def replay_of(verified: VerifiedToken) -> Replay:
    """The token's replay record, written in the transaction of the audit record that spends it."""
    return Replay(verified.issuer, str(verified.claims["jti"]), verified.spend_until)


def _refuse_replay(verified: VerifiedToken, token: str) -> NoReturn:
    """Refuse a token already spent (before its decision, or by a concurrent request), audited."""
    refusal = gate().verifier.replayed(verified.claims)
    audit_refusal(refusal, token)
    raise refusal


def question_of(verified: VerifiedToken, body: DecisionRequest) -> Question:
    """The question a verified token's request asks: its decision spends the token, queues its check
    run and may carry credentials."""
    return Question(
        verified.identity,
        body,
        audit_kind="decision",
        audit_extra={"token_sha256": verified.token_hash},
        spends=replay_of(verified),
        queue_check_run=True,
        mint=True,
        grant=body.grant,
    )


def decide_request(pipeline: Pipeline, question: Question) -> Draft:
    """The decision, not yet recorded (the pipeline's first half)."""
    return pipeline.deliberate(question)


@bp.post("/v1/decisions")
@documented(
    Operation(
        "createDecision",
        "Decide whether this workload may perform one action",
        {
            200: json_answer("Allowed (with credentials when asked for).", DecisionAnswer),
            400: INVALID,
            401: UNAUTHORISED,
            403: json_answer("Denied; the body says why and what would make it pass.", DecisionAnswer),
            413: TOO_LARGE,
            415: NOT_JSON,
            503: UNAVAILABLE,
        },
        body=DecisionRequest,
        security=("githubOidc",),
    )
)
def create_decision() -> tuple[Response, int]:
    g = gate()
    body = parse_json_body(DecisionRequest)
    token: str | None = None
    try:
        token = bearer_token()
        # Spent by the decision's transaction (the pipeline's record), which refuses a replay.
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
    question = question_of(verified, body)
    try:
        draft = decide_request(g.pipeline, question)
    except AlreadyUsed:
        _refuse_replay(verified, token)  # refused before any GitHub call was made for it
    except GateError as exc:
        # The token is spent and nothing was decided (GitHub slow or down, the deadline, the policy):
        # record that, so the audit log shows the attempt and not a silent gap; the client gets 503
        # and retries with a fresh token.
        if exc.status >= 500:
            _audit_undecided(exc, verified, body)
        raise
    try:
        # The record comes before the answer; if it fails the gate denies (Unavailable -> 503). Of two
        # requests with one token, only the one whose record commits first is answered; the other is
        # refused as a replay and leaves no decision.
        outcome = g.pipeline.record(draft)
    except AlreadyUsed:
        _refuse_replay(verified, token)
    except GateError as exc:
        # Recorded as allowed, then the credentials it needs could not be issued: not delivered.
        if draft.decision.allowed and _recorded(draft.decision.decision_id):
            _audit_not_delivered(g.store, draft.decision.decision_id, exc.code, _request_id())
        raise
    decision = outcome.decision
    answer: dict[str, Any] = dict(outcome.record)  # the grant's fields are added at the top level only
    if outcome.grant is not None:
        answer.update(issued_body(outcome.grant))
    return _answer(
        answer,
        200 if decision.allowed else 403,
        store=g.store,
        decision_id=decision.decision_id,
        allowed=decision.allowed,
    ), 200 if decision.allowed else 403


def _recorded(decision_id: str) -> bool:
    try:
        return gate().store.get_decision(decision_id) is not None
    except GateError:
        return False


def _request_id() -> str | None:
    found = request_globals.get("request_id")
    return found if isinstance(found, str) else None


@bp.get("/healthz")
@documented(Operation("healthz", "Liveness", {200: json_answer("The process is alive.", OBJECT)}))
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/metrics")
@documented(
    Operation(
        "metrics",
        "Prometheus metrics (decisions, refusals, latency, GitHub calls, queue, store errors)",
        {200: Answer("The text exposition format.", {"text/plain": {"type": "string"}})},
    )
)
def metrics() -> Response:
    return metrics_response(current_app)


@bp.get("/readyz")
@documented(
    Operation(
        "readyz",
        "Readiness: policy loaded, store writable, keys obtainable",
        {
            200: json_answer("Ready.", Readiness),
            503: json_answer("Not ready; the body says which check failed.", Readiness),
        },
    )
)
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
    degraded = False
    if g.clock_watch is not None:
        try:
            checks["clock"] = g.clock_watch.check()
            degraded = not checks["clock"]["ok"]  # still answering: shared state uses the database's clock
        except Unavailable as exc:
            checks["clock"] = {"ok": False, "message": exc.message}  # the store check says not-ready
    status = ("degraded" if degraded else "ready") if ready else "not-ready"
    body = {"status": status, "version": gate_version(), "checks": checks}
    return jsonify(body), 200 if ready else 503
