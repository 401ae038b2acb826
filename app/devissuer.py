"""The development issuer: mints GitHub-shaped OIDC tokens with a key kept in the data directory.

Only a gate started in dev mode (``agent-gate serve --dev``) trusts it, and it says so loudly. Its
URL is on the ``.invalid`` top-level domain, which can never resolve: its keys come from the local
JWKS file only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.jwks import IssuerConfig

DEV_ISSUER_URL = "https://dev-issuer.agent-gate.invalid"
KEY_FILE = "dev-issuer-key.pem"
JWKS_FILE = "dev-issuer-jwks.json"

SAMPLE_SHA = "e5a8f2c1d3b4a5968778695a4b3c2d1e0f9a8b7c"

# GitHub-shaped defaults (see GitHub's "OpenID Connect reference": ids are strings). They describe a
# human (octocat) running octo-org/octo-repo's deploy workflow on main, as policies/example.yml expects.
HUMAN_PRESET: dict[str, Any] = {
    "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
    "repository": "octo-org/octo-repo",
    "repository_id": "2000",
    "repository_owner": "octo-org",
    "repository_owner_id": "1000",
    "repository_visibility": "private",
    "actor": "octocat",
    "actor_id": "583231",
    "event_name": "workflow_dispatch",
    "ref": "refs/heads/main",
    "ref_type": "branch",
    "ref_protected": "true",
    "head_ref": "",
    "base_ref": "",
    "sha": SAMPLE_SHA,
    "workflow": "deploy",
    "workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
    "workflow_sha": SAMPLE_SHA,
    "job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
    "job_workflow_sha": SAMPLE_SHA,
    "run_id": "9000",
    "run_number": "7",
    "run_attempt": "1",
    "runner_environment": "github-hosted",
}

# The Copilot coding agent as the actor (its account id is in its noreply e-mail address).
AGENT_PRESET: dict[str, Any] = {"actor": "Copilot", "actor_id": "198982749"}


class DevIssuer:
    """A local RSA key and JWKS in ``data_dir``, and a minting function."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.key_path = self.data_dir / KEY_FILE
        self.jwks_path = self.data_dir / JWKS_FILE
        self._private_key: rsa.RSAPrivateKey | None = None
        self._kid: str | None = None

    def ensure_key(self) -> None:
        """Create the key (mode 0600) and its JWKS on first use; reuse them afterwards."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key_path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        if not self.jwks_path.exists() or self._jwks_stale():
            tmp = self.jwks_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"keys": [self._public_jwk()]}, indent=2), "utf-8")
            tmp.replace(self.jwks_path)

    def _jwks_stale(self) -> bool:
        try:
            keys = json.loads(self.jwks_path.read_text("utf-8"))["keys"]
            return bool(keys[0]["kid"] != self.kid)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return True

    def _key(self) -> rsa.RSAPrivateKey:
        if self._private_key is None:
            loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{self.key_path} is not an RSA private key")
            self._private_key = loaded
        return self._private_key

    @property
    def kid(self) -> str:
        if self._kid is None:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key().public_key()))
            # RFC 7638 thumbprint-like id: stable for the key, different for another key.
            canonical = json.dumps(
                {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
            )
            self._kid = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        return self._kid

    def _public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key().public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return jwk

    def issuer_config(self) -> IssuerConfig:
        return IssuerConfig(url=DEV_ISSUER_URL, jwks_file=self.jwks_path, label="dev")

    def claims(
        self, *, audience: str, ttl: int = 300, now: float | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """GitHub-shaped claims: the human preset, fresh times and jti, then ``overrides``."""
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            **HUMAN_PRESET,
            "aud": audience,
            "iss": DEV_ISSUER_URL,
            "nbf": issued,
            "iat": issued,
            "exp": issued + ttl,
        }
        claims.update(overrides)
        if "repository" in overrides and "sub" not in overrides:
            claims["sub"] = f"repo:{claims['repository']}:ref:{claims['ref']}"
        return claims

    def mint(self, *, audience: str, ttl: int = 300, now: float | None = None, **overrides: Any) -> str:
        """A signed RS256 token with the dev key; ``overrides`` set or replace any claim."""
        self.ensure_key()
        return jwt.encode(
            self.claims(audience=audience, ttl=ttl, now=now, **overrides),
            self._key(),
            algorithm="RS256",
            headers={"kid": self.kid, "typ": "JWT"},
        )
