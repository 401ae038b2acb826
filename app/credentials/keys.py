"""The gate's ES256 signing keys, kept in the store, one key ring per purpose.

- Grant keys (:class:`SigningKeys`, ``gk_...``) sign the just-in-time grants. A rotated key stays
  published only until the last grant it signed expires: grants live minutes, and a retired key
  that no longer verifies anything should not be trusted by anyone.
- Attestation keys (:class:`AttestationKeys`, ``ak_...``) sign decision attestations
  (app/credentials/attestation.py). An attestation is evidence kept for years, verified long after
  its decision, so a rotated attestation key stays published: rotating it stops new signatures, and
  removing a compromised one is the operator's explicit act, never a side effect of a rotation.

Both rings are published at ``/.well-known/jwks.json``; only grant keys go in the SPIFFE bundle
(app/credentials/spiffe.py). Keeping the purposes apart means that rotating one never touches the
other, and that a relying party of grants is never handed a key that signs something else.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

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
    """ES256 grant keys kept in the store; the newest signs, older ones stay published while grants live."""

    purpose: ClassVar[str] = "grant"
    prefix: ClassVar[str] = "gk_"

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        return [
            k for k in self._store.signing_keys() if k["kid"] != _SEAL_KID and k["purpose"] == self.purpose
        ]

    def rotate(self) -> str:
        """Add a new signing key; the previous one is retired but stays published as long as it must."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid = self.prefix + secrets.token_hex(8)
        self._store.add_signing_key(kid, pem, int(self._clock()), purpose=self.purpose)
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

    def _still_needed(self, retired: dict[str, Any], now: int) -> bool:
        """Whether a retired grant key must stay published: until the last grant it signed expires,
        with the leeway grants are checked with."""
        last = self._store.max_grant_expiry(retired["kid"])
        return last is not None and last + GRANT_LEEWAY >= now

    def _now(self) -> int:
        """The database's clock where there is one (app.store.clock): every replica publishes alike."""
        return int(shared_time(self._store, self._clock))

    def records(self) -> list[dict[str, Any]]:
        """The key records still published (kid, created_at, retired_at; the private key too)."""
        now = self._now()
        return [k for k in self._load() if k["retired_at"] is None or self._still_needed(k, now)]

    def changed_at(self) -> int:
        """When the published set last changed (unix seconds): a key added, or a retired one dropped
        when it was no longer needed. It only grows, so it can number the set's revisions."""
        now = self._now()
        latest = 0
        for k in self._load():
            latest = max(latest, int(k["created_at"]))
            if k["retired_at"] is not None and not self._still_needed(k, now):
                last = self._store.max_grant_expiry(k["kid"])
                latest = max(latest, int(k["retired_at"]), last + GRANT_LEEWAY if last is not None else 0)
        return latest

    def published(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """Public keys still needed: the active one, and retired ones that still verify something."""
        out: dict[str, ec.EllipticCurvePublicKey] = {}
        for k in self.records():
            key = serialization.load_pem_private_key(k["private_pem"], password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            out[k["kid"]] = key.public_key()
        return out

    def jwks(self, *, use: str = "sig", alg: bool = True) -> dict[str, Any]:
        """The published keys as a JWK Set (RFC 7517); ``use`` and whether to name ``alg`` vary by reader."""
        keys = []
        for kid, public in self.published().items():
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            jwk.update({"kid": kid, "use": use, **({"alg": ALGORITHM} if alg else {})})
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


class AttestationKeys(SigningKeys):
    """ES256 keys that sign decision attestations; a rotated one stays published (see the module)."""

    purpose: ClassVar[str] = "attestation"
    prefix: ClassVar[str] = "ak_"

    def _still_needed(self, retired: dict[str, Any], now: int) -> bool:
        return True
