"""Verifying a GitHub Actions OIDC token: every check explicit, every refusal coded and explained.

The checks, in order; the first failure answers (``TokenError.code``, 401 unless said otherwise):

1. size — ``token-too-large`` (413); shape: three base64url JSON segments — ``malformed``;
2. header ``alg`` is exactly ``RS256`` — ``unsupported-algorithm`` (``none`` in any casing, HS256...);
3. the *unverified* ``iss`` is a configured issuer, compared exactly — ``untrusted-issuer``. Nothing
   before this point does any I/O, so the gate never contacts a URL an unverified token names;
4. the header's ``kid`` names a key the issuer publishes — ``malformed`` without a kid, ``unknown-key``
   (503 ``keys-unavailable`` when the issuer's keys cannot be had, see ``app.tokens.jwks``);
5. PyJWT's RS256 algorithm verifies the signature over the signing input (>= 2048-bit keys; no JWS
   extension header) — ``bad-signature``; then, on the payload decoded once, what ``jwt.decode``
   would check, written out: the required claims, the issuer exactly and the audience strictly
   (the gate's audience must be the token's only audience), ``sub`` and ``jti`` strings —
   ``missing-claim``, ``wrong-audience`` (a token without ``aud`` is a wrong audience too: the fix
   is the same, request the token with the gate's audience), ``invalid-claim``;
6. ``exp``, ``nbf`` and ``iat`` against the gate's clock with at most 60 s leeway, and an age from
   ``iat`` of at most ``max_age`` (+ leeway) whatever ``exp`` says — ``expired``, ``not-yet-valid``,
   ``too-old``; times must be integers — ``invalid-claim``;
7. the claims make a :class:`WorkloadIdentity` — ``missing-claim``, ``invalid-claim``;
8. ``(iss, jti)`` is claimed in the replay store, once — ``replayed``. Keyed on the claims, not the
   token string, so a re-encoded token (PyJWT accepts a padded signature) is still a replay.

Messages say what was found, what was expected and what to do. They never contain the token.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

import jwt
import requests

from app.errors import ConfigError, TokenError, TokenTooLarge
from app.tokens.identity import REQUIRED_CLAIMS, WorkloadIdentity
from app.tokens.jwks import ALGORITHM, IssuerConfig, KeySource
from app.tokens.unverified import b64url, unverified_display_claims
from app.tokens.unverified import display as _display
from app.tokens.unverified import show as _show
from app.tokens.unverified import unverified_parts as _unverified_parts

__all__ = [
    "ALGORITHM",
    "IssuerConfig",
    "ReplayStore",
    "TokenVerifier",
    "VerifiedToken",
    "unverified_display_claims",
]

MAX_LEEWAY = 60


class ReplayStore(Protocol):
    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Record ``(issuer, jti)`` as used until ``expires_at``; False if it was already used."""
        ...


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    identity: WorkloadIdentity
    token_hash: str  # sha256 hex of the raw token: for the audit log, never the token
    issuer: str  # the trusted issuer's URL: with claims["jti"], the token's replay key
    spend_until: int  # the last second the token is accepted: its replay record lasts this long


class TokenVerifier:
    """Verifies GitHub Actions OIDC tokens for one audience against the configured issuers."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        audience: str,
        *,
        replay: ReplayStore,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        leeway: int = MAX_LEEWAY,
        max_age: int = 600,
        max_token_bytes: int = 16384,
        jwks_ttl: int = 300,
        refetch_cooldown: int = 30,
        fetch_timeout: float = 5.0,
    ) -> None:
        """Raises :class:`ConfigError` for a setting outside its safe range or a duplicate issuer."""
        if not audience:
            raise ConfigError("the gate's audience must not be empty")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ConfigError(f"the clock leeway must be between 0 and {MAX_LEEWAY} s, got {leeway}")
        if max_age <= 0 or max_token_bytes <= 0:
            raise ConfigError("the maximum token age and size must be positive")
        self.audience = audience
        self._replay = replay
        self._clock = clock
        self._leeway = leeway
        self._max_age = max_age
        self._max_bytes = max_token_bytes
        session = session if session is not None else requests.Session()
        self._sources: dict[str, KeySource] = {}
        for issuer in issuers:
            if issuer.url in self._sources:
                raise ConfigError(f"issuer {issuer.url} is configured twice; expected each issuer once")
            self._sources[issuer.url] = KeySource(
                issuer,
                session=session,
                clock=clock,
                ttl=jwks_ttl,
                refetch_cooldown=refetch_cooldown,
                timeout=fetch_timeout,
            )

    @property
    def issuers(self) -> list[str]:
        return list(self._sources)

    @staticmethod
    def token_hash(token: str) -> str:
        """The sha256 hex digest of the raw token: what the audit log keeps instead of the token."""
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    def check_keys(self) -> None:
        """For /readyz: raises ``Unavailable(code="keys-unavailable")`` if any issuer's keys can't be had."""
        for source in self._sources.values():
            source.check()

    def verify(self, token: str, *, spend: bool = True) -> VerifiedToken:
        """The verified token and its identity.

        ``spend``: record the token as used now (its replay record, in a transaction of its own).
        Without it the replay check is the caller's: it writes the token's replay record
        (``issuer``, ``claims["jti"]``, ``spend_until``) in the transaction that records what the
        token was used for, which refuses a token already used (:meth:`replayed` says so). The
        decision endpoint does, so a token is spent by, and only by, a durable audit record.

        Raises :class:`TokenError` (401, ``code`` says which check failed), :class:`TokenTooLarge`
        (413), or :class:`~app.errors.Unavailable` (503) when the issuer's keys or the replay store
        cannot be had.
        """
        if len(token) > self._max_bytes:
            raise TokenTooLarge(
                f"the bearer token is {len(token)} bytes; expected at most {self._max_bytes} "
                "(a GitHub Actions OIDC token is 1-2 KB): send the job's OIDC token and nothing else"
            )
        # The header and payload are read here WITHOUT verification, and only to choose the issuer
        # and the key; PyJWT then verifies everything, with the algorithm pinned by this module.
        header, unverified = _unverified_parts(token)
        alg = header.get("alg")
        if alg != ALGORITHM:
            _refuse(
                f"the token's algorithm is {_show(alg)}; expected {ALGORITHM}, the only one accepted "
                "(GitHub Actions signs its OIDC tokens with RS256)",
                "unsupported-algorithm",
                unverified,
            )
        iss = unverified.get("iss")
        source = self._sources.get(iss) if isinstance(iss, str) else None
        if source is None:
            trusted = ", ".join(self._sources) or "(none configured)"
            _refuse(
                f"the token's issuer is {_show(iss)}; expected one of: {trusted}. Send a GitHub Actions "
                "OIDC token (the job needs 'permissions: id-token: write'), or ask the gate's operator to "
                "trust this issuer (GATE_ISSUERS)",
                "untrusted-issuer",
                unverified,
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            _refuse(
                f"the token's header has no key id (kid), got {_show(kid)}; expected a GitHub Actions OIDC token",
                "malformed",
                unverified,
            )
        key = source.key(kid)  # may fetch the issuer's keys (a configured URL, never the token's)
        if key is None:
            _refuse(
                f"issuer {source.issuer.name} publishes no signing key {_show(kid)}; the token was not "
                "signed by this issuer's current keys. Request a fresh token",
                "unknown-key",
                unverified,
            )
        claims = self._decode(token, key, source.issuer.url, header, unverified)
        self._check_times(claims)
        identity = WorkloadIdentity.from_claims(claims)
        until = self._last_acceptable_second(claims)
        if spend and not self._replay.claim_jti(source.issuer.url, claims["jti"], until):
            raise self.replayed(claims)
        return VerifiedToken(
            claims=claims,
            identity=identity,
            token_hash=self.token_hash(token),
            issuer=source.issuer.url,
            spend_until=until,
        )

    @staticmethod
    def replayed(claims: Mapping[str, Any]) -> TokenError:
        """The refusal of a token already used (also when another request spent it first)."""
        return TokenError(
            f"this token (jti {_show(claims['jti'])}) was already used; expected a fresh token for "
            "every call: request a new one right before calling the gate",
            code="replayed",
            claims=_display(claims),
        )

    def _decode(
        self, token: str, key: jwt.PyJWK, issuer: str, header: dict[str, Any], unverified: dict[str, Any]
    ) -> dict[str, Any]:
        """The payload, once the signature verifies and every claim check of ``jwt.decode`` holds.

        The checks ``jwt.decode(algorithms=[RS256], audience=..., issuer=..., options={verify_signature,
        verify_aud, strict_aud, verify_iss, verify_sub, verify_jti, enforce_minimum_key_length,
        require})`` makes, written out and made on what was already decoded to choose the key: PyJWT
        split, base64-decoded and JSON-parsed the token a second time (about 110 µs of a decision's
        CPU). The signature is verified by PyJWT's own RS256 algorithm object over the signing input,
        so the cryptography is PyJWT's (and the cryptography library's) either way. Times are checked
        by _check_times on the gate's clock, the only authority on them.
        """
        if "b64" in header or "crit" in header:
            # RFC 7797's unencoded payload and critical extensions: GitHub never sets them, and a
            # verifier that does not implement an extension must refuse a token that names it.
            _refuse(
                "the token is not a valid JWT (DecodeError): its header names a JWS extension (b64 or crit) "
                "that GitHub never uses; send the job's OIDC token unchanged",
                "malformed",
                unverified,
            )
        if key.algorithm_name != ALGORITHM:  # the key source binds every key to RS256; asserted anyway
            _refuse(
                f"the token's algorithm is not accepted; expected {ALGORITHM}",
                "unsupported-algorithm",
                unverified,
            )
        signing_input, _, signature_segment = token.rpartition(".")
        try:
            signature = b64url(signature_segment)
        except (ValueError, binascii.Error) as exc:
            _refuse("the token's signature is not base64url; send the job's OIDC token unchanged", "malformed",
                    unverified, exc)  # fmt: skip
        algorithm = key.Algorithm
        prepared = algorithm.prepare_key(key.key)
        too_short = algorithm.check_key_length(prepared)
        if too_short:  # enforce_minimum_key_length: refused, never warned about
            _refuse(
                f"the issuer's key for this token is not usable (RSA keys must have >= 2048 bits): {too_short}",
                "unknown-key",
                unverified,
            )
        if not algorithm.verify(signing_input.encode("ascii"), prepared, signature):
            _refuse(
                "the token's signature does not verify with the issuer's key: it was altered or forged. "
                "Send the token exactly as the job received it",
                "bad-signature",
                unverified,
            )
        claims = unverified  # authentic from here on: the signature covers the payload segment it came from
        # "require": present and not null; the value of each is checked below, by _check_times or by
        # WorkloadIdentity.
        if any(claims.get(name) is None for name in REQUIRED_CLAIMS):
            missing = _missing(claims)
            if "aud" in missing:
                self._refuse_audience(claims)
            _refuse(
                f"the token lacks required claim(s): {', '.join(missing)}; expected a GitHub Actions OIDC "
                "token, which always carries them",
                "missing-claim",
                claims,
            )
        # verify_iss: the configured issuer, compared exactly (it also chose the key).
        if not isinstance(claims["iss"], str) or claims["iss"] != issuer:
            _refuse(
                f"the token's issuer is {_show(claims['iss'])}; expected it exactly",
                "untrusted-issuer",
                claims,
            )
        # verify_aud with strict_aud: one audience, a string, exactly the gate's.
        if not claims["aud"] or not isinstance(claims["aud"], str) or claims["aud"] != self.audience:
            self._refuse_audience(claims)
        # verify_sub, verify_jti: strings when present (sub is shown, never parsed; jti is the replay key).
        for name, what in (("sub", "Subject"), ("jti", "JWT ID")):
            if name in claims and not isinstance(claims[name], str):
                _refuse(
                    f"the token has a claim of the wrong type ({what} must be a string)",
                    "invalid-claim",
                    claims,
                )
        return claims

    def _refuse_audience(self, payload: dict[str, Any]) -> NoReturn:
        aud = payload.get("aud")
        if aud is None or aud in ("", []):
            found = "the token has no audience (aud)"
        elif isinstance(aud, list):
            found = f"the token has several audiences {_show(aud)}"
        else:
            found = f"the token's audience is {_show(aud)}"
        _refuse(
            f"{found}; expected {self.audience!r} as its only audience. Request the token with that "
            "audience (the action's 'audience' input, or core.getIDToken(audience))",
            "wrong-audience",
            payload,
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        """exp, nbf and iat with at most ``leeway`` seconds of skew, and a maximum age from iat."""
        problem = _time_claim_problem(claims)
        if problem:
            _refuse(problem, "invalid-claim", claims)
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
        now = self._clock()
        if exp <= now - self._leeway:
            _refuse(
                f"the token expired at {_when(exp)}; it is now {_when(now)} (with {self._leeway} s leeway). "
                "Request a fresh token right before calling the gate",
                "expired",
                claims,
            )
        if nbf is not None and nbf > now + self._leeway:
            _refuse(
                f"the token is not valid before {_when(nbf)}; it is now {_when(now)} (with {self._leeway} s "
                "leeway). Check the clock of the gate's host",
                "not-yet-valid",
                claims,
            )
        if iat > now + self._leeway:
            _refuse(
                f"the token was issued at {_when(iat)}, in the future; it is now {_when(now)} (with "
                f"{self._leeway} s leeway). Check the clock of the gate's host",
                "not-yet-valid",
                claims,
            )
        if now - iat > self._max_age + self._leeway:
            _refuse(
                f"the token was issued at {_when(iat)}, {int(now - iat)} s ago; expected at most "
                f"{self._max_age} s, whatever its exp says. Request a fresh token right before calling the gate",
                "too-old",
                claims,
            )

    def _last_acceptable_second(self, claims: Mapping[str, Any]) -> int:
        """After this moment the verifier refuses the token anyway: the replay record may go then."""
        return min(int(claims["exp"]), int(claims["iat"]) + self._max_age) + self._leeway


# -- helpers -------------------------------------------------------------------------------------------


def _refuse(message: str, code: str, claims: Mapping[str, Any], cause: Exception | None = None) -> NoReturn:
    raise TokenError(message, code=code, claims=_display(claims)) from cause


def _missing(payload: Mapping[str, Any]) -> list[str]:
    return [c for c in REQUIRED_CLAIMS if payload.get(c) in (None, "", [])]


def _time_claim_problem(claims: Mapping[str, Any]) -> str | None:
    """What is wrong with exp, iat or nbf, if anything: each must be an integer (NaN is not a time).

    exp and iat are required (PyJWT's ``require``); nbf is optional.
    """
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if value is None and name == "nbf":
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return f"the token's {name} must be an integer number of seconds, got {_show(value)}"
    return None


def _when(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return repr(ts)
