"""The one exception hierarchy of agent-gate.

Everything the gate raises on purpose derives from :class:`GateError`. Each error carries a stable
kebab-case ``code``, an HTTP ``status`` and a ``message`` written for the person who will read it
(a workflow author, an org admin, an auditor): what happened and what to do next.

Errors leave the service as one JSON shape::

    {"message": "...", "errors": [{"code": "...", "description": "..."}]}

Foreign exceptions (PyJWT, requests, YAML, pydantic, sqlite3) are wrapped at the boundary of the
module that meets them, with ``raise SomeGateError(...) from exc``; they never reach a handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of the ``errors`` list: a stable code and a sentence for a person."""

    code: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "description": self.description}


class GateError(Exception):
    """Base of every error agent-gate raises on purpose."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal-error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details if details is not None else [ErrorDetail(self.code, message)]
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "errors": [d.to_dict() for d in self.details]}

    def __str__(self) -> str:
        return self.message


class ConfigError(GateError):
    """The gate's configuration (``GATE_*`` variables, files) is invalid; raised at start-up."""

    default_code = "invalid-configuration"


class InvalidRequest(GateError):
    """The request body or parameters are malformed (400)."""

    status = 400
    default_code = "invalid-request"


class NotNarrower(GateError):
    """A delegated grant asked for more than its parent holds (403: understood, and refused)."""

    status = 403
    default_code = "grant-not-narrower"


class NotFound(GateError):
    status = 404
    default_code = "not-found"


class PayloadTooLarge(GateError):
    status = 413
    default_code = "payload-too-large"


class RequestTimeout(GateError):
    status = 408
    default_code = "request-timeout"


class UnsupportedMediaType(GateError):
    status = 415
    default_code = "unsupported-media-type"


class TokenError(GateError):
    """The bearer token was refused (401).

    ``code`` says which check failed: ``malformed``, ``unsupported-algorithm``, ``untrusted-issuer``,
    ``unknown-key``, ``bad-signature``, ``expired``, ``not-yet-valid``, ``too-old``,
    ``wrong-audience``, ``missing-claim``, ``invalid-claim``, ``replayed``, ``missing-token``,
    ``token-too-large``.
    """

    status = 401
    default_code = "invalid-token"

    def __init__(self, message: str, *, code: str, claims: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        # Non-secret claims read *without* verification, kept only for the audit record of the refusal.
        self.unverified_claims = claims or {}


class AlreadyUsed(TokenError):
    """The store found the token's replay record already written: another request spent it first.

    Raised by the store inside the decision's transaction (which then writes nothing for it); the
    HTTP layer answers it as the verifier's ``replayed`` refusal.
    """

    def __init__(self) -> None:
        super().__init__(
            "this token was already used; expected a fresh token for every call: request a new one "
            "right before calling the gate",
            code="replayed",
        )


class TokenTooLarge(TokenError):
    """A bearer token over the size limit; answered with 413 rather than 401."""

    status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, code="token-too-large")


class Unavailable(GateError):
    """Something the decision depends on could not be had (503): fail closed.

    ``code`` names what: ``keys-unavailable``, ``github-unavailable``, ``github-rate-limited``,
    ``audit-unavailable``, ``policy-unavailable``, ``store-unavailable``.
    """

    status = 503
    default_code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(message, code=code, headers=headers)
        self.retry_after = retry_after


class PolicyError(GateError):
    """A policy file is invalid. Each detail names the file, the line, the field, found and expected."""

    status = 500
    default_code = "invalid-policy"

    def __init__(self, message: str, problems: list[PolicyProblem]) -> None:
        super().__init__(
            message,
            details=[ErrorDetail("invalid-policy", p.render()) for p in problems],
        )
        self.problems = problems


@dataclass(frozen=True)
class PolicyProblem:
    """One precise complaint about a policy file."""

    path: str
    line: int | None
    field: str
    message: str
    severity: str = "error"  # "error" or "warning"
    column: int | None = None  # 1-based, where known (YAML syntax errors)

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class GitHubError(GateError):
    """GitHub answered with an error the gate cannot decide through (mapped to 503 by default)."""

    status = 503
    default_code = "github-unavailable"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(message, code=code, headers=headers)
        self.http_status = http_status
        self.retry_after = retry_after


class GitHubNotFound(GitHubError):
    """GitHub answered 404 for a resource the caller may treat as absent."""

    default_code = "github-not-found"
