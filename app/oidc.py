"""Verifying a GitHub Actions OIDC token: every check explicit, every refusal coded and explained.

Order of checks (the first failure answers):

1. size and shape (three base64url segments) — ``token-too-large`` / ``malformed``;
2. header ``alg`` is RS256 — ``unsupported-algorithm`` (``none`` in any casing, HS256 ...);
3. the *unverified* ``iss`` is a configured issuer — ``untrusted-issuer``, before any network I/O;
4. the key named by ``kid`` exists — ``unknown-key`` (503 ``keys-unavailable`` when keys can't be had);
5. PyJWT verifies signature, exp/nbf/iat (leeway <= 60 s), audience and issuer exactly;
6. the audience is the gate's and the token's only audience — ``wrong-audience``;
7. the token is not older than ``max_age`` from ``iat``, whatever ``exp`` says — ``too-old``;
8. the required claims are present and well-formed — ``missing-claim`` / ``invalid-claim``;
9. ``(iss, jti)`` was never seen — ``replayed``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
import requests
from jwt.exceptions import (
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
)

from app.errors import TokenError, TokenTooLarge
from app.identity import REQUIRED_CLAIMS, WorkloadIdentity, display_claims
from app.jwks import IssuerConfig, KeySource

__all__ = ["IssuerConfig", "ReplayStore", "TokenVerifier", "VerifiedToken", "unverified_display_claims"]

ALGORITHM = "RS256"


class ReplayStore(Protocol):
    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool: ...


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    identity: WorkloadIdentity
    token_hash: str  # sha256 hex of the raw token: for the audit log, never the token


def _b64json(segment: str) -> dict[str, Any]:
    """Decode one base64url JSON segment (no signature check: used only to choose a verifier)."""
    padded = segment + "=" * (-len(segment) % 4)
    try:
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise TokenError("the token is not a JWT: a segment is not base64url JSON", code="malformed") from exc
    if not isinstance(value, dict):
        raise TokenError("the token is not a JWT: a segment is not a JSON object", code="malformed")
    return value


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise TokenError(
            "the token is not a JWT (expected three dot-separated segments); send the job's OIDC token",
            code="malformed",
        )
    return _b64json(parts[0]), _b64json(parts[1])


def unverified_display_claims(token: str) -> dict[str, Any]:
    """The non-secret claims of a token *without* verifying it: only for auditing a refusal."""
    try:
        return display_claims(_split(token)[1])
    except TokenError:
        return {}


def _when(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(ts)


class TokenVerifier:
    """Verifies GitHub Actions OIDC tokens for one audience against configured issuers."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        audience: str,
        *,
        replay: ReplayStore,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        leeway: int = 60,
        max_age: int = 600,
        max_token_bytes: int = 16384,
        jwks_ttl: int = 300,
        refetch_cooldown: int = 30,
        fetch_timeout: float = 5.0,
    ) -> None:
        if not 0 <= leeway <= 60:
            raise ValueError("leeway must be between 0 and 60 seconds")
        self.audience = audience
        self._replay = replay
        self._clock = clock
        self._leeway = leeway
        self._max_age = max_age
        self._max_bytes = max_token_bytes
        session = session or requests.Session()
        self._sources = {
            i.url: KeySource(
                i,
                session=session,
                clock=clock,
                ttl=jwks_ttl,
                refetch_cooldown=refetch_cooldown,
                timeout=fetch_timeout,
            )
            for i in issuers
        }

    @staticmethod
    def token_hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def check_keys(self) -> None:
        for source in self._sources.values():
            source.check()

    def verify(self, token: str) -> VerifiedToken:
        if len(token) > self._max_bytes:
            raise TokenTooLarge(
                f"the token is {len(token)} bytes; the limit is {self._max_bytes} (a GitHub OIDC token is 1-2 KB)"
            )
        # Unverified header and payload are read only to choose the issuer and key; PyJWT then
        # performs the full verification with algorithms pinned by configuration, never by the token.
        header, unverified = _split(token)
        shown = display_claims(unverified)
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise TokenError(
                f"the token's algorithm is {alg!r}; only {ALGORITHM} is accepted",
                code="unsupported-algorithm",
                claims=shown,
            )
        raw_iss = unverified.get("iss")
        iss = raw_iss if isinstance(raw_iss, str) else ""
        source = self._sources.get(iss)
        if source is None:
            raise TokenError(
                f"the token's issuer {raw_iss!r} is not trusted by this gate; expected one of "
                f"{', '.join(sorted(self._sources)) or '(none configured)'}",
                code="untrusted-issuer",
                claims=shown,
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token's header has no key id (kid)", code="malformed", claims=shown)
        key = source.key(kid)
        if key is None:
            raise TokenError(
                f"issuer {iss} has no key {kid!r}; the token was not signed by it",
                code="unknown-key",
                claims=shown,
            )
        claims = self._decode(token, key.key, iss, shown)
        self._check_audience(claims, shown)
        self._check_times(claims, shown)
        identity = WorkloadIdentity.from_claims(claims)
        if not self._replay.claim_jti(iss, str(claims["jti"]), int(claims["exp"])):
            raise TokenError(
                "this token was already used; every token is accepted once, request a new one for each call",
                code="replayed",
                claims=shown,
            )
        return VerifiedToken(claims=claims, identity=identity, token_hash=self.token_hash(token))

    def _decode(self, token: str, key: Any, iss: str, shown: dict[str, Any]) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],  # pinned by configuration, never taken from the token
                audience=self.audience,
                issuer=iss,  # exact match; iss was checked against the configured list above
                leeway=self._leeway,
                options={
                    "verify_signature": True,
                    # Times are checked in _check_times against the gate's clock (injectable, so the
                    # checks are testable) with the same leeway; PyJWT only reads the wall clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": True,
                    "verify_iss": True,
                    "strict_aud": False,  # a list audience is checked below: it must hold only ours
                    "require": ["iss", "aud", "exp", "iat", "jti", "sub"],
                },
            )
        except InvalidAudienceError as exc:
            raise TokenError(
                f"the token's audience is {shown.get('aud')!r}; expected {self.audience!r} (set the action's "
                "'audience' input, or request the token with that audience)",
                code="wrong-audience",
                claims=shown,
            ) from exc
        except MissingRequiredClaimError as exc:
            code = "wrong-audience" if exc.claim == "aud" else "missing-claim"
            raise TokenError(
                f"the token lacks the required claim {exc.claim!r}", code=code, claims=shown
            ) from exc
        except InvalidIssuerError as exc:
            raise TokenError(
                "the token's issuer does not match", code="untrusted-issuer", claims=shown
            ) from exc
        except InvalidSignatureError as exc:
            raise TokenError(
                "the token's signature does not verify with the issuer's key: it was altered or forged",
                code="bad-signature",
                claims=shown,
            ) from exc
        except InvalidTokenError as exc:
            raise TokenError(
                f"the token is not a valid JWT ({exc.__class__.__name__})", code="malformed", claims=shown
            ) from exc
        missing = [c for c in REQUIRED_CLAIMS if c not in claims]
        if missing:
            raise TokenError(
                f"the token lacks required claim(s): {', '.join(missing)}", code="missing-claim", claims=shown
            )
        return claims

    def _check_times(self, claims: dict[str, Any], shown: dict[str, Any]) -> None:
        """exp, nbf and iat with at most ``leeway`` seconds of skew, and a maximum age from iat."""
        now = self._clock()
        times: dict[str, float] = {}
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None and name == "nbf":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TokenError(
                    f"the token's {name} must be a number, got {value!r}", code="invalid-claim", claims=shown
                )
            times[name] = float(value)
        if now > times["exp"] + self._leeway:
            raise TokenError(
                f"the token expired at {_when(times['exp'])}; request a fresh token in the same job",
                code="expired",
                claims=shown,
            )
        if "nbf" in times and now < times["nbf"] - self._leeway:
            raise TokenError(
                f"the token is not valid before {_when(times['nbf'])}; check the clock of the gate's host",
                code="not-yet-valid",
                claims=shown,
            )
        if times["iat"] > now + self._leeway:
            raise TokenError(
                f"the token was issued in the future ({_when(times['iat'])}); check the clock of the gate's host",
                code="not-yet-valid",
                claims=shown,
            )
        if now - times["iat"] > self._max_age + self._leeway:
            raise TokenError(
                f"the token was issued at {_when(times['iat'])}, more than {self._max_age} s ago; request a fresh "
                "token right before calling the gate",
                code="too-old",
                claims=shown,
            )

    def _check_audience(self, claims: dict[str, Any], shown: dict[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audiences != [self.audience]:
            raise TokenError(
                f"the token's audience must be exactly {self.audience!r}, got {aud!r}; request the token with "
                "only the gate's audience",
                code="wrong-audience",
                claims=shown,
            )
