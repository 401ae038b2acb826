"""A local test issuer: an RSA key, GitHub-shaped claims, and tokens good or crafted to fail."""

from __future__ import annotations

import base64
import json
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.builders import claims as github_claims

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "agent-gate"
KID = "test-key-1"


@cache
def rsa_key(name: str = "main") -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: one per name per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalIssuer:
    def __init__(self, url: str = ISSUER, kid: str = KID, key_name: str = "main") -> None:
        self.url = url
        self.kid = kid
        self.key = rsa_key(key_name)

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return jwk

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def make_claims(self, *, now: float | None = None, **overrides: Any) -> dict[str, Any]:
        issued = int(now if now is not None else time.time())
        base = github_claims(
            iss=self.url, aud=AUDIENCE, iat=issued, nbf=issued, exp=issued + 300, jti=str(uuid.uuid4())
        )
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not _DROP}

    def make_token(
        self, *, headers: dict[str, Any] | None = None, now: float | None = None, **claims: Any
    ) -> str:
        return jwt.encode(
            self.make_claims(now=now, **claims),
            self.key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class _Drop:
    """Pass DROP as a claim value to leave the claim out."""


_DROP = _Drop()
DROP: Any = _DROP


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"
