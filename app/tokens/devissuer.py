"""The development issuer: mints GitHub-shaped OIDC tokens with a key kept in the data directory.

Only a gate started in dev mode (``agent-gate serve --dev``) trusts it, and it says so loudly. Its
URL is on the ``.invalid`` top-level domain, which can never resolve (RFC 2606): its keys come from
the local JWKS file only, never from the network.

The claims follow GitHub's "OpenID Connect reference" (ids are strings, as GitHub sends them) and
describe a human (octocat) running octo-org/octo-repo's deploy workflow on main, as the example
policy expects. :data:`AGENT_PRESET` turns the actor into the Copilot coding agent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.errors import ConfigError
from app.tokens.jwks import ALGORITHM, IssuerConfig

log = logging.getLogger("agent_gate.devissuer")

DEV_ISSUER_URL = "https://dev-issuer.agent-gate.invalid"
KEY_FILE = "dev-issuer-key.pem"
JWKS_FILE = "dev-issuer-jwks.json"

SAMPLE_SHA = "e5a8f2c1d3b4a5968778695a4b3c2d1e0f9a8b7c"
DEPLOY_WORKFLOW = "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"

# GitHub sends nbf ten minutes before iat (see the example token in its OIDC documentation).
NBF_SKEW = 600

# Claims of a human (octocat) running octo-org/octo-repo's deploy workflow on main. Every claim a
# github.com job's token carries, except environment (only for jobs that use one) and the enterprise
# claims (only for enterprise-owned repositories).
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
    "workflow_ref": DEPLOY_WORKFLOW,
    "workflow_sha": SAMPLE_SHA,
    "job_workflow_ref": DEPLOY_WORKFLOW,
    "job_workflow_sha": SAMPLE_SHA,
    "run_id": "9000",
    "run_number": "7",
    "run_attempt": "1",
    "check_run_id": "90001",
    "runner_environment": "github-hosted",
}

# The Copilot coding agent as the actor (its account id is in its noreply e-mail address).
AGENT_PRESET: dict[str, Any] = {"actor": "Copilot", "actor_id": "198982749"}


def default_claims(
    *,
    audience: str,
    issuer: str = DEV_ISSUER_URL,
    now: float | None = None,
    ttl: int = 300,
    **overrides: Any,
) -> dict[str, Any]:
    """GitHub-shaped claims: :data:`HUMAN_PRESET`, a fresh jti and times, then ``overrides``.

    An override of ``None`` leaves the claim out. Unless overridden, ``sub`` follows GitHub's
    default subject format and ``repository_owner`` follows ``repository``.
    """
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        **HUMAN_PRESET,
        "aud": audience,
        "iss": issuer,
        "nbf": issued - NBF_SKEW,
        "iat": issued,
        "exp": issued + ttl,
    }
    claims.update(overrides)
    if "repository" in overrides and "repository_owner" not in overrides:
        claims["repository_owner"] = str(claims["repository"]).split("/", 1)[0]
    if "sub" not in overrides:
        claims["sub"] = github_subject(claims)
    return {k: v for k, v in claims.items() if v is not None}


def github_subject(claims: dict[str, Any]) -> str:
    """GitHub's default ``sub``: by environment, else pull_request, else ref (for display only)."""
    repository = claims.get("repository")
    if claims.get("environment"):
        return f"repo:{repository}:environment:{claims['environment']}"
    if claims.get("event_name") == "pull_request":
        return f"repo:{repository}:pull_request"
    return f"repo:{repository}:ref:{claims.get('ref')}"


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an RSA JWK, base64url without padding."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class DevIssuer:
    """A local RSA key and JWKS in ``data_dir``, and a minting function."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.key_path = self.data_dir / KEY_FILE
        self.jwks_path = self.data_dir / JWKS_FILE
        self._lock = threading.Lock()
        self._private_key: rsa.RSAPrivateKey | None = None
        self._kid: str | None = None
        self._ensured = False

    def ensure_key(self) -> None:
        """Create the RSA-2048 key (mode 0600) and its JWKS file if absent; reuse them afterwards.

        Safe when several processes start at once: the key appears atomically, once.
        Raises :class:`ConfigError` when the key file exists but is not an RSA private key.
        """
        with self._lock:
            if self._ensured and self.key_path.exists() and self.jwks_path.exists():
                return
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.key_path.exists():
                self._create_key()
            mode = self.key_path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning("tightening the permissions of %s from %o to 600", self.key_path, mode)
                self.key_path.chmod(0o600)
            self._private_key, self._kid = None, None  # (re)load what is on disk
            expected = {"keys": [self.public_jwk()]}
            if _read_json(self.jwks_path) != expected:
                _write_atomically(self.jwks_path, json.dumps(expected, indent=2).encode(), 0o644)
            self._ensured = True

    def _create_key(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = self.data_dir / f".{KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            # Atomic create-if-absent: a complete file or none. If another process made it first,
            # theirs is used.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.key_path)
        finally:
            tmp.unlink(missing_ok=True)

    def _key(self) -> rsa.RSAPrivateKey:
        if self._private_key is None:
            try:
                loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"the dev issuer key {self.key_path} cannot be loaded ({exc.__class__.__name__}); "
                    "delete it and the gate makes a new one"
                ) from exc
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ConfigError(
                    f"{self.key_path} is not an RSA private key; delete it and the gate makes a new one"
                )
            self._private_key = loaded
        return self._private_key

    @property
    def kid(self) -> str:
        """The RFC 7638 thumbprint of the public key: stable for the key, different for another."""
        if self._kid is None:
            self._kid = jwk_thumbprint(self._bare_public_jwk())
        return self._kid

    def _bare_public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key().public_key()))
        return jwk

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, as the JWKS file publishes it."""
        return {**self._bare_public_jwk(), "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def issuer_config(self) -> IssuerConfig:
        """How a gate in dev mode trusts this issuer: its JWKS file, no network."""
        return IssuerConfig(url=DEV_ISSUER_URL, jwks_file=self.jwks_path, label="dev")

    def mint(self, *, audience: str, ttl: int = 300, now: float | None = None, **claims: Any) -> str:
        """A GitHub-shaped RS256 token signed with the dev key; ``claims`` set, replace or (None) drop claims."""
        self.ensure_key()
        return jwt.encode(
            default_claims(audience=audience, issuer=DEV_ISSUER_URL, now=now, ttl=ttl, **claims),
            self._key(),
            algorithm=ALGORITHM,
            headers={"kid": self.kid, "typ": "JWT"},
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
