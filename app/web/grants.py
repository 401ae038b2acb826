"""Grant endpoints: JWKS and discovery for offline verification, introspection, revocation, delegation.

Who may call them:

- introspection (RFC 7662 section 2.1 requires authorisation, against token scanning): a live grant of
  the gate (it may learn about grants of its own workload: repository and run), a GitHub OIDC token
  (grants of its repository), or a configured client credential by HTTP Basic (any grant);
- revocation (RFC 7009): a live grant, or an OIDC token of the same repository and run;
- delegation: a live parent grant.

A revoked or expired grant authenticates nothing. Every refused credential is audited as at
``/v1/decisions`` (``token-refused``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from app.credentials.grants import GrantService
from app.credentials.keys import ALGORITHM
from app.errors import InvalidRequest, NotFound, TokenError
from app.web.requests import (
    IssuedCredentials,
    audit_refusal,
    bearer_token,
    gate,
    issued_body,
    parse_form_or_json_body,
    parse_json_body,
)
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

bp = Blueprint("grants", __name__)

MAX_GRANT_BYTES = 8192


class IntrospectBody(BaseModel):
    """RFC 7662 section 2.1: the token, and an optional hint the gate does not need."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=MAX_GRANT_BYTES, description="The grant to introspect.")
    token_type_hint: str | None = Field(None, max_length=100)


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grant: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_GRANT_BYTES,
        description="The grant to revoke (default: the bearer grant).",
    )
    jti: str | None = Field(None, min_length=1, max_length=100, description="Or its id.")
    reason: str = Field("job finished", min_length=1, max_length=200)


class RevokeForm(BaseModel):
    """RFC 7009 section 2.1: ``token`` (required) and ``token_type_hint``."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=MAX_GRANT_BYTES)
    token_type_hint: str | None = Field(None, max_length=100)


class DelegateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="The step of the chain that will hold the grant (e.g. tester): its sub ends "
        "':step:NAME', and its act chain and the audit name it.",
    )
    permission: str | None = Field(None, pattern=r"^(read|propose|execute)$")
    audience: str | None = Field(None, pattern=r"^[A-Za-z0-9._:/-]{1,200}$")
    ttl: int | None = Field(None, ge=30, le=3600)


class IntrospectionAnswer(BaseModel):
    """RFC 7662 section 2.2. Only ``active`` when the grant is not live or not the caller's to know."""

    model_config = ConfigDict(extra="allow")

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None
    decision_id: str | None = None
    repository_id: int | None = None
    run_id: int | None = None
    sha: str | None = None
    step: str | None = Field(None, description="The step of a chain that holds a delegated grant.")
    act: dict[str, Any] | None = Field(None, description="RFC 8693: the grant this one was delegated from.")


class RevocationAnswer(BaseModel):
    revoked: list[str] = Field(description="The grants revoked by this call (children included).")
    jti: str | None
    active: bool


@dataclass(frozen=True)
class _Caller:
    """Who called, once authenticated: a workload (a repository, maybe one run) or a client."""

    repository_id: int | None = None
    run_id: int | None = None
    client_id: str | None = None

    def may_know(self, record: dict[str, Any]) -> bool:
        if self.client_id is not None:
            return True
        if self.repository_id is None or int(record["repository_id"]) != self.repository_id:
            return False
        return self.run_id is None or int(record["run_id"]) == self.run_id


def _grants() -> GrantService:
    return gate().grants


def _is_grant(token: str) -> bool:
    """Whether the token's header names the gate's grant algorithm: only chooses the verifier."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, RecursionError):
        return False
    return isinstance(header, dict) and header.get("alg") == ALGORITHM


def _authenticate_workload(*, same_run: bool) -> _Caller:
    """The bearer: a live grant (its repository and run) or an OIDC token (its repository, and its
    run when ``same_run``). Refusals are audited and raise :class:`TokenError` (401)."""
    token: str | None = None
    try:
        token = bearer_token()
        if _is_grant(token):
            claims = _grants().verify(token)
            return _Caller(repository_id=int(claims["repository_id"]), run_id=int(claims["run_id"]))
        identity = gate().verifier.verify(token).identity
        return _Caller(repository_id=identity.repository_id, run_id=identity.run_id if same_run else None)
    except TokenError as exc:
        audit_refusal(exc, token)
        raise


def _authenticate_client(header: str) -> _Caller:
    """HTTP Basic with a configured introspection client (RFC 6749 section 2.3.1 encoding)."""
    try:
        decoded = base64.b64decode(header.partition(" ")[2].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        refused = TokenError("the Basic credentials are not base64 of CLIENT_ID:SECRET", code="malformed")
        audit_refusal(refused, None)
        raise refused from exc
    client_id, _, secret = decoded.partition(":")
    digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
    for client in gate().settings.introspection_clients:
        # Compare every configured client so the time taken says nothing about which ids exist.
        if hmac.compare_digest(client.client_id, client_id) & hmac.compare_digest(
            client.secret_sha256, digest
        ):
            return _Caller(client_id=client.client_id)
    refused = TokenError(
        "unknown client or wrong secret; introspection clients are set in GATE_INTROSPECTION_CLIENTS",
        code="invalid-client",
    )
    refused.headers["WWW-Authenticate"] = 'Basic realm="agent-gate"'
    audit_refusal(refused, None)
    raise refused


@bp.get("/.well-known/jwks.json")
@documented(
    Operation(
        "jwks",
        "The public keys that verify the gate's grants (RFC 7517)",
        {200: json_answer("The key set.", OBJECT)},
    )
)
def jwks() -> Response:
    # The grant keys, then the keys that sign decision attestations (app/credentials/keys.py).
    keys = _grants().keys.jwks()["keys"] + gate().attestations.keys.jwks()["keys"]
    response = jsonify({"keys": keys})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/openid-configuration")
@documented(
    Operation(
        "discovery",
        "Discovery: issuer, JWKS, introspection and revocation endpoints",
        {200: json_answer("The configuration.", OBJECT)},
    )
)
def discovery() -> Response:
    issuer = _grants().issuer
    return jsonify(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "introspection_endpoint": f"{issuer}/v1/grants/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "bearer"],
            "revocation_endpoint": f"{issuer}/v1/grants/revoke",
            "revocation_endpoint_auth_methods_supported": ["bearer"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }
    )


@bp.post("/v1/grants/introspect")
@documented(
    Operation(
        "introspectGrant",
        "RFC 7662 introspection of a grant",
        {
            200: json_answer(
                "active: false for a dead grant or one the caller may not know of.", IntrospectionAnswer
            ),
            400: INVALID,
            401: UNAUTHORISED,
            413: TOO_LARGE,
            415: NOT_JSON,
            503: UNAVAILABLE,
        },
        body=IntrospectBody,
        form=IntrospectBody,
        security=("grant", "githubOidc", "introspectionClient"),
    )
)
def introspect() -> Response:
    """RFC 7662. Form-encoded or JSON; a dead grant, or one the caller may not know of, is ``active: false``."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        caller = _authenticate_client(header)
    else:
        caller = _authenticate_workload(same_run=False)
    body = parse_form_or_json_body(IntrospectBody, form_fields=frozenset({"token", "token_type_hint"}))
    answer = _grants().introspect(body.token)
    if answer.get("active"):
        record = gate().store.get_grant(str(answer["jti"]))
        if record is None or not caller.may_know(record):
            answer = {"active": False}
    response = jsonify(IntrospectionAnswer.model_validate(answer).model_dump(exclude_none=True))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/v1/grants/revoke")
@documented(
    Operation(
        "revokeGrant",
        "RFC 7009 revocation of a grant, its GitHub token and its children",
        {
            200: json_answer("Revoked, or nothing to revoke.", RevocationAnswer),
            400: INVALID,
            401: UNAUTHORISED,
            404: error("No grant with that jti."),
            413: TOO_LARGE,
            415: NOT_JSON,
            503: UNAVAILABLE,
        },
        body=RevokeBody,
        form=RevokeForm,
        security=("grant", "githubOidc"),
    )
)
def revoke() -> Response:
    """Revoke a grant (and its GitHub token, and its children). Idempotent.

    Authenticated by a live grant, or by an OIDC token of the same repository and run. The body is
    RFC 7009's form (``token``) or JSON (``grant``, ``jti``, ``reason``); a ``token`` or ``grant``
    that is not a grant of this gate is answered 200 with nothing revoked (RFC 7009 section 2.2).
    """
    caller = _authenticate_workload(same_run=True)
    service = _grants()
    if request.mimetype == "application/x-www-form-urlencoded":
        form = parse_form_or_json_body(RevokeForm, form_fields=frozenset({"token", "token_type_hint"}))
        body = RevokeBody(grant=form.token)
    else:
        body = parse_json_body(RevokeBody)
    bearer = bearer_token()
    if body.jti:
        target: str | None = body.jti
    elif body.grant:
        target = _jti_of(service, body.grant)
    elif _is_grant(bearer):
        target = _jti_of(service, bearer)
    else:
        raise InvalidRequest("name the grant to revoke: 'grant' (the token) or 'jti'")
    if target is None:
        return _revocation(RevocationAnswer(revoked=[], jti=None, active=False))
    record = gate().store.get_grant(target)
    if record is None:
        if body.jti:
            raise NotFound(f"no grant {target!r}")
        return _revocation(RevocationAnswer(revoked=[], jti=None, active=False))
    if not caller.may_know(record):
        raise TokenError("only the same repository and run may revoke this grant", code="wrong-workload")
    revoked = service.revoke(target, body.reason)
    return _revocation(RevocationAnswer(revoked=revoked, jti=target, active=False))


def _jti_of(service: GrantService, token: str) -> str | None:
    """The id of a grant this gate signed (revoked or not), or None for anything else."""
    try:
        return str(service.verify(token, allow_revoked=True)["jti"])
    except TokenError:
        return None


def _revocation(answer: RevocationAnswer) -> Response:
    response = jsonify(answer.model_dump())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/v1/grants/delegate")
@documented(
    Operation(
        "delegateGrant",
        "A narrower grant for the next agent of a chain",
        {
            201: json_answer("The delegated grant (docs/grants.md#chains-of-agents).", IssuedCredentials),
            400: INVALID,
            401: UNAUTHORISED,
            403: error("grant-not-narrower: more than the parent grant holds (permission or audience)."),
            413: TOO_LARGE,
            415: NOT_JSON,
            503: UNAVAILABLE,
        },
        body=DelegateBody,
        security=("grant",),
    )
)
def delegate() -> tuple[Response, int]:
    """A narrower grant for the next agent of a chain, authenticated by the live parent grant."""
    body = parse_json_body(DelegateBody)
    token: str | None = None
    try:
        token = bearer_token()
        if not _is_grant(token):
            raise TokenError("present the parent grant as the bearer credential", code="not-a-grant")
        # The parent is verified (live, not revoked) inside: a refusal is the parent's.
        issued = _grants().delegate(
            token, step=body.step, permission=body.permission, audience=body.audience, ttl=body.ttl
        )
    except TokenError as exc:
        audit_refusal(exc, token)
        raise
    response = jsonify(issued_body(issued))
    response.headers["Cache-Control"] = "no-store"
    return response, 201
