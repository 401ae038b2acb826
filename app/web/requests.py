"""The request as the endpoints read it: the running app's gate, bearer tokens, JSON bodies, issued grants.

Limits are checked before anything is parsed: a body over its route's limit (:data:`MAX_BODY_BYTES`,
or :data:`MAX_WEBHOOK_BYTES` on the webhook route) or an Authorization header over
:data:`MAX_AUTHORIZATION_BYTES` is refused with the gate's own error.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from flask import current_app, request
from pydantic import BaseModel, Field, ValidationError

from app.errors import (
    ErrorDetail,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    TokenError,
    TokenTooLarge,
    UnsupportedMediaType,
)
from app.gate.core import Gate
from app.tokens.unverified import unverified_display_claims

MAX_BODY_BYTES = 64 * 1024
MAX_AUTHORIZATION_BYTES = 16 * 1024
# GitHub delivers webhook payloads of up to 25 MB (it drops larger ones): a pull request whose
# description an agent made long still has to reach the gate. Only the webhook route takes them; its
# signature is checked over the raw body before anything is parsed.
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024
WEBHOOK_ENDPOINT = "webhook.github_webhook"
_BODY_LIMITS = {WEBHOOK_ENDPOINT: MAX_WEBHOOK_BYTES}

M = TypeVar("M", bound=BaseModel)


def gate() -> Gate:
    """The gate's collaborators, as the app factory built them."""
    g: Gate = current_app.extensions["agent_gate"]
    return g


def body_limit(endpoint: str | None) -> int:
    """The largest body a route takes: :data:`MAX_WEBHOOK_BYTES` on the webhook, else :data:`MAX_BODY_BYTES`."""
    return _BODY_LIMITS.get(endpoint or "", MAX_BODY_BYTES)


def buffer_body() -> None:
    """Before any view: read the whole body (at most the route's :func:`body_limit`) off the socket, or refuse.

    A declared length over the limit is refused unread. A chunked body (no Content-Length) is read up
    to one byte past the limit and refused with 413 when longer, never silently cut. A client that
    stops sending mid-body is answered 408 (the server's read deadline). Views then read a buffer.
    """
    if request.method not in {"POST", "PUT", "PATCH", "DELETE"}:
        return
    limit = body_limit(request.endpoint)
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the request body is {length} bytes; the limit is {limit} bytes{_why(limit)}")
    environ = request.environ
    source = environ["wsgi.input"]
    want = limit + 1 if length is None else length
    try:
        chunks: list[bytes] = []
        got = 0
        while got < want:
            chunk = source.read(want - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:  # the server's read deadline, or the client went away
        raise RequestTimeout("the request body was not delivered in time; send it at once") from exc
    data = b"".join(chunks)
    if len(data) > limit:
        raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes{_why(limit)}")
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    # From here on the body is an ordinary one of known length (werkzeug reads none of a "chunked" one).
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)


def _why(limit: int) -> str:
    if limit == MAX_WEBHOOK_BYTES:
        return " (GitHub's own limit for a webhook payload, 25 MB)"
    return ""


FORM = "application/x-www-form-urlencoded"


def _raw_body(limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 over ``limit`` (declared or actual length)."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the request body is {length} bytes; the limit is {limit} bytes")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
    return raw


def parse_json_body(model: type[M]) -> M:
    """Validate the JSON body against ``model``: 413 over the limit, 415 not JSON, 400 invalid."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json, got {request.mimetype or 'none'}"
        )
    raw = _raw_body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(model, exc) from exc


def parse_form_or_json_body(model: type[M], *, form_fields: frozenset[str]) -> M:
    """The OAuth endpoints' body (RFC 7662, RFC 7009): form-encoded as the RFCs say, or JSON.

    A form parameter given twice is refused (RFC 6749 section 3.1); parameters outside
    ``form_fields`` are ignored, as OAuth endpoints must (RFC 6749 section 3.2).
    """
    if request.mimetype != FORM:
        return parse_json_body(model)
    raw = _raw_body()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(
            f"the form body is not valid UTF-8 form encoding ({exc.__class__.__name__})"
        ) from exc
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in form_fields:
            continue
        if name in values:
            raise InvalidRequest(f"{name}: given more than once; send each parameter once")
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _invalid(model, exc) from exc


def load_json(raw: bytes, what: str) -> Any:
    """Parse JSON that is not validated by a model (webhooks): 400 for anything that is not plain JSON.

    Nesting deep enough to exhaust the parser's recursion (``RecursionError``) and the non-standard
    constants ``NaN`` and ``Infinity`` (or numbers that overflow to them) are refused like any other invalid JSON.
    """

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def _finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} is out of range")
        return value

    try:
        return json.loads(raw, parse_constant=_no_constants, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise InvalidRequest(f"{what} is {reason}", code="invalid-json") from exc


def _invalid(model: type[BaseModel], exc: ValidationError) -> InvalidRequest:
    details = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            msg = f"unknown field; expected only {allowed}"
        details.append(ErrorDetail("invalid-field", f"{loc}: {msg}"))
    return InvalidRequest(
        "the request body is not valid: " + "; ".join(d.description for d in details), details=details
    )


def audit_refusal(exc: TokenError, token: str | None) -> None:
    """Record a refused credential: the error, the claims read unverified for display, a hash of the token.

    Every endpoint that takes a bearer token records its refusals this way, so an auditor sees
    token scanning at the grant endpoints as at ``/v1/decisions``.
    """
    g = gate()
    payload: dict[str, Any] = {
        "code": exc.code,
        "message": exc.message,
        "claims": exc.unverified_claims or (unverified_display_claims(token) if token else {}),
        "token_sha256": g.verifier.token_hash(token) if token else None,
        "remote_addr": request.remote_addr,
        "endpoint": request.path,
    }
    # Bounded per source (the rest is counted, not dropped).
    g.refusals.record(request.remote_addr or "unknown", payload)


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    if len(header) > MAX_AUTHORIZATION_BYTES:
        raise TokenTooLarge(
            f"the Authorization header is over {MAX_AUTHORIZATION_BYTES} bytes; a GitHub OIDC token is about 1-2 KB"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError(
            "send the job's GitHub Actions OIDC token as 'Authorization: Bearer <token>' "
            "(the workflow needs 'permissions: id-token: write')",
            code="missing-token",
        )
    return token.strip()


class GrantCredential(BaseModel):
    """A just-in-time grant: a JWT signed by the gate (ES256), verifiable at /.well-known/jwks.json."""

    token: str = Field(description="The grant (a secret: mask it, never log it).")
    jti: str
    audience: str
    expires_at: int = Field(description="Unix time.")


class GitHubTokenCredential(BaseModel):
    """A GitHub installation token down-scoped to the rule's permissions and the one repository."""

    token: str = Field(description="The token (a secret: mask it, never log it).")
    expires_at: str | None = Field(description="ISO 8601.")
    permissions: dict[str, str] | None


class IssuedCredentials(BaseModel):
    """The credentials of an allowed decision or a delegation: in the answer only, never audited."""

    grant: GrantCredential
    github_token: GitHubTokenCredential | None = None


def issued_body(issued: Any) -> dict[str, Any]:
    """The credentials of an issued grant as the API answers them (never logged, never audited)."""
    body = IssuedCredentials(
        grant=GrantCredential(
            token=issued.token.get_secret_value(),
            jti=issued.jti,
            audience=issued.audience,
            expires_at=issued.expires_at,
        ),
        github_token=None
        if issued.github_token is None
        else GitHubTokenCredential(
            token=issued.github_token.get_secret_value(),
            expires_at=issued.github_token_expires_at,
            permissions=issued.github_permissions,
        ),
    )
    return body.model_dump(exclude_none=True)
