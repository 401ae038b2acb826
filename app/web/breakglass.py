"""Break-glass over HTTP: ``POST /v1/break-glass`` invokes one, ``POST /v1/break-glass/<id>/confirm``
has a second person confirm it. Both take the OIDC token of a ``workflow_dispatch`` run a person
started (the actor is who asks); the rules are in app/governance/breakglass.py."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from app.errors import NotFound, TokenError
from app.governance.breakglass import BreakGlass, BreakGlassRequest
from app.tokens.identity import WorkloadIdentity
from app.web.requests import audit_refusal, bearer_token, gate, parse_json_body
from app.web.spec import (
    INVALID,
    NOT_JSON,
    TOO_LARGE,
    UNAUTHORISED,
    UNAVAILABLE,
    Operation,
    documented,
    error,
    json_answer,
)

bp = Blueprint("break_glass", __name__)

_ID = re.compile(r"^bg_[A-Za-z0-9_-]{16,64}$")


def _service() -> BreakGlass:
    return gate().break_glass


def _who() -> WorkloadIdentity:
    """Who asks: the verified OIDC token's workload. A refused token is audited like at /v1/decisions."""
    token: str | None = None
    try:
        token = bearer_token()
        return gate().verifier.verify(token).identity
    except TokenError as exc:
        audit_refusal(exc, token)
        raise


class BreakGlassAnswer(BaseModel):
    """A break-glass as its invoker and confirmer are answered (``break-glass list`` has the rest)."""

    id: str
    repository: str
    action: str
    environment: str | None = None  # the one environment it covers; None: every environment of the action
    state: str
    invoker: str
    confirmer: str | None
    expires_at: int


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in BreakGlassAnswer.model_fields}


_REFUSED = {
    400: INVALID,
    401: UNAUTHORISED,
    403: error(
        "Not allowed: an agent or bot, a person the policy does not name, another repository or "
        "organisation, or a widened scope (docs/governance.md)."
    ),
    404: error("No such break-glass."),
    413: TOO_LARGE,
    415: NOT_JSON,
    503: UNAVAILABLE,
}


@bp.post("/v1/break-glass")
@documented(
    Operation(
        "invokeBreakGlass",
        "Invoke break-glass for one repository and action (a person's workflow_dispatch run)",
        {201: json_answer("Requested (pending its confirmation, or active).", BreakGlassAnswer), **_REFUSED},
        body=BreakGlassRequest,
        security=("githubOidc",),
    )
)
def invoke() -> tuple[Response, int]:
    service = _service()
    body = parse_json_body(BreakGlassRequest)
    record = service.request(_who(), body)
    return jsonify(_answer(record)), 201


@bp.post("/v1/break-glass/<break_glass_id>/confirm")
@documented(
    Operation(
        "confirmBreakGlass",
        "A second person confirms a break-glass",
        {200: json_answer("Confirmed: active until expires_at.", BreakGlassAnswer), **_REFUSED},
        security=("githubOidc",),
    )
)
def confirm(break_glass_id: str) -> tuple[Response, int]:
    service = _service()
    if not _ID.fullmatch(break_glass_id):
        raise NotFound("no such break-glass")
    record = service.confirm(_who(), break_glass_id)
    return jsonify(_answer(record)), 200
