"""``GET /v1/decisions/<decision_id>/attestation``: a recorded decision as a signed in-toto statement
in a DSSE envelope (``application/vnd.dsse.envelope.v1+json``; app/credentials/attestation.py).

Who may fetch it is who may read the decision page (app/web/pages.py), with one more door for the
workflows the gate answers, which cannot log in with GitHub:

- a reader as on the decision page: anyone when ``GATE_DECISION_PAGES=public``, otherwise a GitHub
  login with read access to the decision's repository (401 without a session);
- a workload of the decision's repository: ``Authorization: Bearer`` with a job's GitHub Actions
  OIDC token (spent, like every token the gate accepts) or a live grant of the gate. A refused
  credential is 401 and audited, as at the grant endpoints.

A decision the caller may not read is answered exactly like one that does not exist (404).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from flask import Blueprint, Response, request

from app.credentials.attestation import MEDIA_TYPE
from app.credentials.grants import ALGORITHM
from app.decide.decision import Decision
from app.errors import NotFound, TokenError
from app.web.login import LoginRequired, current_user, readers
from app.web.requests import audit_refusal, bearer_token, gate
from app.web.spec import Answer, Operation, Param, documented, error

bp = Blueprint("attestations", __name__)

_ENVELOPE = {
    "type": "object",
    "description": "A DSSE envelope: the base64 in-toto statement, its payloadType, and the signatures "
    "(keyid: a kid of /.well-known/jwks.json).",
    "required": ["payload", "payloadType", "signatures"],
    "properties": {
        "payload": {"type": "string", "contentEncoding": "base64"},
        "payloadType": {"const": "application/vnd.in-toto+json"},
        "signatures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["keyid", "sig"],
                "properties": {"keyid": {"type": "string"}, "sig": {"type": "string"}},
            },
        },
    },
}

# As the decision page: the same ids, and the same answer for a missing page and a forbidden one.
_DECISION_ID = re.compile(r"^dec_[A-Za-z0-9_-]{16,64}$")
_NOT_FOUND = "no such decision, or not one you may read; check the link from the check run or the job summary"


def _workload_repository_id() -> int:
    """The repository id of the bearer: a live grant of the gate or a verified (and spent) OIDC token."""
    token: str | None = None
    try:
        token = bearer_token()
        if _is_grant(token):
            return int(gate().grants.verify(token)["repository_id"])
        return gate().verifier.verify(token).identity.repository_id
    except TokenError as exc:
        audit_refusal(exc, token)
        raise


def _is_grant(token: str) -> bool:
    """Whether the token's header names the grants' algorithm: it only chooses the verifier."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, RecursionError):
        return False
    return isinstance(header, dict) and header.get("alg") == ALGORITHM


def _readable(decision_id: str) -> Decision:
    """The decision, if the caller may read it; NotFound otherwise (LoginRequired without a session)."""
    attestations = gate().attestations
    if request.headers.get("Authorization"):
        repository_id = _workload_repository_id()
        decision = attestations.decision(decision_id, _NOT_FOUND)
        if decision.subject.repository_id != repository_id:
            raise NotFound(_NOT_FOUND)
        return decision
    user = None
    if not gate().settings.pages_public:
        readers().require_configured()
        user = current_user()
        if user is None:
            raise LoginRequired(
                "log in with GitHub to read decisions (open the decision page in a browser), or send a "
                "job's OIDC token of the decision's repository as 'Authorization: Bearer <token>'"
            )
    decision = attestations.decision(decision_id, _NOT_FOUND)
    if user is not None and not readers().may_read(user, decision.subject.repository):
        raise NotFound(_NOT_FOUND)
    return decision


@bp.get("/v1/decisions/<decision_id>/attestation")
@documented(
    Operation(
        "getDecisionAttestation",
        "The decision as a signed in-toto statement in a DSSE envelope (docs/attestations.md)",
        {
            200: Answer(
                "The signed attestation, to a reader allowed to see the decision.", {MEDIA_TYPE: _ENVELOPE}
            ),
            401: error("No login and no credential, or a refused credential (audited)."),
            404: error("No such decision, or not one the reader may see."),
            409: error("The decision is about no commit, or its record does not match its audit entry."),
            413: error("The Authorization header is over the size limit."),
            503: error("The login, GitHub or the store could not confirm access or sign."),
        },
        params=(Param("decision_id", "path", {"type": "string"}, required=True),),
    )
)
def attestation(decision_id: str) -> Response:
    if not _DECISION_ID.fullmatch(decision_id):
        raise NotFound(_NOT_FOUND)
    decision = _readable(decision_id)
    envelope = gate().attestations.envelope(decision)
    response = Response(json.dumps(envelope, separators=(",", ":")) + "\n", mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _ERROR_BODY}}}}


_ERROR_BODY = "#/components/schemas/ErrorBody"
