"""The gate's grant-signing keys (ES256) and the key that seals GitHub tokens at rest, in the store.

The newest signing key signs; retired keys stay published while grants they signed live.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.store.base import Store
from app.store.clock import shared_time

ALGORITHM = "ES256"
# Clock difference tolerated when checking a grant's iat, nbf and exp (the same bound as GATE_LEEWAY's
# largest value): a grant minted by another replica is not refused because the clocks differ a little.
GRANT_LEEWAY = 60

_SEAL_KID = "__seal__"


class SigningKeys:
    """ES256 keys kept in the store; the newest signs, older ones stay published while grants live."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        return [k for k in self._store.signing_keys() if k["kid"] != _SEAL_KID]

    def rotate(self) -> str:
        """Add a new signing key; the previous one is retired but stays published until its grants expire."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid = "gk_" + secrets.token_hex(8)
        self._store.add_signing_key(kid, pem, int(self._clock()))
        return kid

    def current(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        with self._lock:
            active = [k for k in self._load() if k["retired_at"] is None]
            if not active:
                self.rotate()
                active = [k for k in self._load() if k["retired_at"] is None]
            chosen = active[-1]
        key = serialization.load_pem_private_key(chosen["private_pem"], password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return chosen["kid"], key

    def published(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """Public keys still needed: the active one, and retired ones whose grants have not all expired
        (with the leeway grants are checked with, by the database's clock: app.store.clock)."""
        now: int | None = None
        out: dict[str, ec.EllipticCurvePublicKey] = {}
        for k in self._load():
            if k["retired_at"] is not None:
                last = self._store.max_grant_expiry(k["kid"])
                if now is None:  # asked only when a retired key is weighed
                    now = int(shared_time(self._store, self._clock))
                if last is None or last + GRANT_LEEWAY < now:
                    continue
            key = serialization.load_pem_private_key(k["private_pem"], password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            out[k["kid"]] = key.public_key()
        return out

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, public in self.published().items():
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
            keys.append(jwk)
        return {"keys": keys}

    def sealing_key(self) -> bytes:
        """An AES-256-GCM key that seals GitHub tokens at rest, so revocation can reach them later."""
        with self._lock:
            for k in self._store.signing_keys():
                if k["kid"] == _SEAL_KID:
                    return bytes(k["private_pem"])
            # Another process may win the race: keep whichever key the store holds.
            self._store.add_seal_key(_SEAL_KID, AESGCM.generate_key(bit_length=256), int(self._clock()))
            return next(bytes(k["private_pem"]) for k in self._store.signing_keys() if k["kid"] == _SEAL_KID)
