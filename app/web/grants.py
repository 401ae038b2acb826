"""Grant endpoints: JWKS and discovery for offline verification, introspection, revocation, delegation."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from app.credentials.grants import ALGORITHM, GrantService
from app.errors import InvalidRequest, NotFound, TokenError
from app.web.http import bearer_token, gate, issued_body, parse_json_body

bp = Blueprint("grants", __name__)


class IntrospectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=8192)
    token_type_hint: str | None = None


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grant: str | None = Field(
        None, max_length=8192, description="The grant to revoke (default: the bearer grant)."
    )
    jti: str | None = Field(None, max_length=100, description="Or its id.")
    reason: str = Field("job finished", max_length=200)


class DelegateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    permission: str | None = Field(None, pattern=r"^(read|propose|execute)$")
    audience: str | None = Field(None, pattern=r"^[A-Za-z0-9._:/-]{1,200}$")
    ttl: int | None = Field(None, ge=30, le=3600)


def _grants() -> GrantService:
    service = gate().grants
    assert service is not None
    return service


def _is_grant(token: str) -> bool:
    import base64
    import json

    try:
        head = token.split(".")[0]
        return bool(
            json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("alg") == ALGORITHM
        )
    except (ValueError, IndexError):
        return False


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(_grants().keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    issuer = _grants().issuer
    return jsonify(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "introspection_endpoint": f"{issuer}/v1/grants/introspect",
            "revocation_endpoint": f"{issuer}/v1/grants/revoke",
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }
    )


@bp.post("/v1/grants/introspect")
def introspect() -> Response:
    """RFC 7662. Accepts JSON or the RFC's form encoding; an unknown or dead grant is ``active: false``."""
    if request.mimetype == "application/x-www-form-urlencoded":
        body = IntrospectBody(
            token=request.form.get("token", ""), token_type_hint=request.form.get("token_type_hint")
        )
    else:
        body = parse_json_body(IntrospectBody)
    return jsonify(_grants().introspect(body.token))


@bp.post("/v1/grants/revoke")
def revoke() -> Response:
    """Revoke a grant (and its GitHub token, and its children). Idempotent.

    Authenticated by the grant itself, or by an OIDC token of the same repository and run.
    """
    g = gate()
    service = _grants()
    body = parse_json_body(RevokeBody)
    bearer = bearer_token()
    if _is_grant(bearer):
        claims = service.verify(bearer, allow_revoked=True)
        repository_id, run_id = int(claims["repository_id"]), int(claims["run_id"])
        target = body.jti or (
            service.verify(body.grant, allow_revoked=True)["jti"] if body.grant else claims["jti"]
        )
    else:
        identity = g.verifier.verify(bearer).identity
        repository_id, run_id = identity.repository_id, identity.run_id
        if body.grant:
            target = service.verify(body.grant, allow_revoked=True)["jti"]
        elif body.jti:
            target = body.jti
        else:
            raise InvalidRequest("name the grant to revoke: 'grant' (the token) or 'jti'")
    record = g.store.get_grant(target)
    if record is None:
        raise NotFound(f"no grant {target!r}")
    if (int(record["repository_id"]), int(record["run_id"])) != (repository_id, run_id):
        raise TokenError("only the same repository and run may revoke this grant", code="wrong-workload")
    revoked = service.revoke(target, body.reason)
    return jsonify({"revoked": revoked, "jti": target, "active": False})


@bp.post("/v1/grants/delegate")
def delegate() -> tuple[Response, int]:
    """A narrower grant for the next agent of a chain, authenticated by the parent grant."""
    body = parse_json_body(DelegateBody)
    bearer = bearer_token()
    if not _is_grant(bearer):
        raise TokenError("present the parent grant as the bearer credential", code="not-a-grant")
    issued = _grants().delegate(bearer, permission=body.permission, audience=body.audience, ttl=body.ttl)
    return jsonify(issued_body(issued)), 201
