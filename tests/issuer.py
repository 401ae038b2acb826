"""A local test issuer for everyone's tests: an RSA key, GitHub-shaped claims, good and attack tokens.

Claim defaults are the dev issuer's (``app.tokens.devissuer.default_claims``): octocat running
octo-org/octo-repo's deploy workflow on main (owner id 1000, repository id 2000), ids as strings.

    issuer = LocalIssuer()
    token = issuer.make_token(now=NOW, actor="Copilot", actor_id="198982749")
    verifier = TokenVerifier([issuer.config(jwks_file=issuer.write_jwks(tmp_path / "jwks.json"))], AUDIENCE, ...)
    with responses.RequestsMock() as rsps:
        issuer.serve(rsps)  # discovery document + JWKS over (mocked) https
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.tokens.devissuer import default_claims
from app.tokens.jwks import IssuerConfig

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "agent-gate"
KID = "test-key-1"


@cache
def rsa_key(name: str = "main", bits: int = 2048) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: one per (name, size) per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()
"""Pass as a claim value to leave the claim out: ``make_token(aud=DROP)``."""


class MemoryReplay:
    """A ReplayStore in memory that records what it was asked."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str, int]] = []

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        self.calls.append((issuer, jti, expires_at))
        if (issuer, jti) in self.seen:
            return False
        self.seen.add((issuer, jti))
        return True


class LocalIssuer:
    """An OIDC issuer with a real RSA key, for tests: claims, tokens, its JWKS (file or mocked https)."""

    def __init__(
        self, url: str = ISSUER, *, kid: str = KID, key_name: str = "main", audience: str = AUDIENCE
    ) -> None:
        self.url = url
        self.kid = kid
        self.audience = audience
        self.key = rsa_key(key_name)

    # -- keys ---------------------------------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks"

    def jwk(self, key: rsa.RSAPrivateKey | None = None, **fields: Any) -> dict[str, Any]:
        public = (key or self.key).public_key()
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", **fields})
        return jwk

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def config(self, **fields: Any) -> IssuerConfig:
        """An IssuerConfig for this issuer (discovery unless ``jwks_url``/``jwks_file`` is given)."""
        return IssuerConfig(url=self.url, **fields)

    def serve(self, rsps: responses.RequestsMock, *, jwks: dict[str, Any] | None = None) -> None:
        """Answer this issuer's discovery document and JWKS on a ``responses`` mock."""
        rsps.get(self.discovery_url, json={"issuer": self.url, "jwks_uri": self.jwks_url})
        rsps.get(self.jwks_url, json=jwks if jwks is not None else self.jwks())

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # -- claims and tokens --------------------------------------------------------------------------

    def make_claims(self, *, now: float | None = None, ttl: int = 300, **overrides: Any) -> dict[str, Any]:
        """GitHub-shaped claims from this issuer for the test audience; DROP leaves a claim out."""
        overrides = {k: (None if v is DROP else v) for k, v in overrides.items()}
        audience = overrides.pop("aud", self.audience)
        return default_claims(audience=audience, issuer=self.url, now=now, ttl=ttl, **overrides)

    def make_token(
        self,
        *,
        headers: dict[str, Any] | None = None,
        now: float | None = None,
        ttl: int = 300,
        **claims: Any,
    ) -> str:
        """A good RS256 token (unless the claims make it otherwise), signed with this issuer's key."""
        return jwt.encode(
            self.make_claims(now=now, ttl=ttl, **claims),
            self.key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )

    def sign_with(
        self,
        key: Any,
        alg: str,
        headers: dict[str, Any] | None = None,
        *,
        payload: dict[str, Any] | None = None,
        now: float | None = None,
        **claims: Any,
    ) -> str:
        """A token signed however an attacker likes: ``alg`` "none" (any casing; key ignored),
        HS* with ``key`` as the HMAC secret (e.g. :meth:`public_pem`), or any asymmetric alg PyJWT
        knows with ``key``. ``payload`` replaces the claims entirely."""
        header = {"alg": alg, "typ": "JWT", "kid": self.kid, **(headers or {})}
        body = payload if payload is not None else self.make_claims(now=now, **claims)
        signing_input = f"{b64json(header)}.{b64json(body)}"
        if alg.lower() == "none":
            signature = b""
        elif alg.upper().startswith("HS"):
            digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg.upper()]
            signature = hmac.new(key, signing_input.encode(), digest).digest()
        else:
            signature = jwt.algorithms.get_default_algorithms()[alg].sign(signing_input.encode(), key)
        return f"{signing_input}.{b64(signature)}"


def unsigned(header: Any, payload: Any, signature: bytes = b"") -> str:
    """Three segments from raw JSON values, with whatever signature bytes: for malformed tokens."""
    return f"{b64json(header)}.{b64json(payload)}.{b64(signature)}"
