"""The freeze over HTTP: ``POST /v1/freeze`` stops every agent in a scope at once, ``POST
/v1/freeze/<id>/lift`` lifts it. Both take the OIDC token of a ``workflow_dispatch`` run a person
started (the actor is who asks; the token is spent); the rules are in app/governance/freeze.py, what
stops at once in app/events/freeze.py."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify

from app.errors import NotFound, TokenError
from app.events.freeze import sweep
from app.governance.freeze import FreezeRequest, LiftRequest
from app.tokens.identity import WorkloadIdentity
from app.web.requests import audit_refusal, bearer_token, gate, parse_json_body
from app.web.spec import (
    INVALID,
    NOT_JSON,
    OBJECT,
    TOO_LARGE,
    UNAUTHORISED,
    UNAVAILABLE,
    Operation,
    documented,
    error,
    json_answer,
)

# What a person's freeze or lift may be answered besides its success (as break-glass, app/web/breakglass.py).
_REFUSED = {
    400: INVALID,
    401: UNAUTHORISED,
    403: error(
        "Not allowed: an agent or bot, a person the policy does not name, another repository or "
        "organisation, or a widened scope (docs/governance.md)."
    ),
    404: error("No such freeze."),
    413: TOO_LARGE,
    415: NOT_JSON,
    503: UNAVAILABLE,
}

bp = Blueprint("freeze", __name__)

_ID = re.compile(r"^fr_[A-Za-z0-9_-]{16,64}$")
_SHOWN = (
    "id",
    "scope",
    "organisation",
    "repository",
    "agent",
    "state",
    "invoker",
    "created_at",
    "lifter",
    "lifted_at",
)


def _who() -> WorkloadIdentity:
    """Who asks: the verified OIDC token's workload (spent now). A refused token is audited."""
    token: str | None = None
    try:
        token = bearer_token()
        return gate().verifier.verify(token).identity
    except TokenError as exc:
        audit_refusal(exc, token)
        raise


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in _SHOWN}


@bp.post("/v1/freeze")
@documented(
    Operation(
        "startFreeze",
        "Freeze every agent of the organisation, a repository or an agent kind: their grants revoked, "
        "no grant or execute decision until lifted (a person's workflow_dispatch run)",
        {201: json_answer("Frozen; says how many grants were revoked.", OBJECT), **_REFUSED},
        body=FreezeRequest,
        security=("githubOidc",),
    )
)
def start() -> tuple[Response, int]:
    body = parse_json_body(FreezeRequest)
    g = gate()
    record = g.freezes.start(_who(), body)
    done = sweep(g, record)
    answer = {
        **_answer(record),
        "grants_revoked": len(done["grants_revoked"]),
        "held_deployments_queued": done["held_deployments_queued"],
    }
    return jsonify(answer), 201


@bp.post("/v1/freeze/<freeze_id>/lift")
@documented(
    Operation(
        "liftFreeze",
        "A person the policy names lifts a freeze",
        {200: json_answer("Lifted.", OBJECT), **_REFUSED},
        body=LiftRequest,
        security=("githubOidc",),
    )
)
def lift(freeze_id: str) -> tuple[Response, int]:
    if not _ID.fullmatch(freeze_id):
        raise NotFound("no such freeze")
    body = parse_json_body(LiftRequest)
    record = gate().freezes.lift(_who(), freeze_id, body)
    return jsonify(_answer(record)), 200
