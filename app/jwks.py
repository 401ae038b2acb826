"""Issuer keys: OpenID discovery, explicit JWKS URLs or local files, cached and fail-closed.

- Keys are cached for a TTL. An unknown ``kid`` causes at most one refetch per cooldown per issuer,
  so a flood of random kids is never a flood of fetches.
- Fetches use a timeout and no redirects; only https URLs are fetched.
- An empty or unusable key set is never cached.
- When keys cannot be had, :class:`app.errors.Unavailable` (503) says so; nothing is guessed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from app.errors import Unavailable

log = logging.getLogger("agent_gate.jwks")

MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer and where its keys come from (discovery unless told otherwise)."""

    url: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    label: str = ""


class KeySource:
    """The keys of one issuer, cached with a TTL and a refetch cooldown. Thread-safe."""

    def __init__(
        self,
        issuer: IssuerConfig,
        *,
        session: requests.Session,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = 300.0,
        refetch_cooldown: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        if refetch_cooldown < 30:
            raise ValueError("the unknown-kid refetch cooldown must be at least 30 s")
        self.issuer = issuer
        self._session = session
        self._clock = clock
        self._ttl = ttl
        self._cooldown = refetch_cooldown
        self._timeout = min(timeout, 5.0)
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None

    def key(self, kid: str) -> PyJWK | None:
        """The key with this ``kid``, or None when the issuer does not have it (after one refetch).

        Raises :class:`Unavailable` when the keys cannot be had at all.
        """
        with self._lock:
            now = self._clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._ttl
            if not fresh:
                self._refresh(now, force_reason="expired")
            if kid in self._keys:
                return self._keys[kid]
            # Unknown kid: the issuer may have rotated. Refetch at most once per cooldown.
            if self._last_attempt is None or now - self._last_attempt >= self._cooldown:
                self._refresh(now, force_reason="unknown kid")
            return self._keys.get(kid)

    def check(self) -> None:
        """Raise :class:`Unavailable` unless the keys can be had now (for /readyz)."""
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self._ttl:
                self._refresh(now, force_reason="readiness")

    def _refresh(self, now: float, force_reason: str) -> None:
        if self._last_attempt is not None and now - self._last_attempt < self._cooldown and self._keys:
            return  # a recent attempt already ran; keep the cached keys
        self._last_attempt = now
        try:
            keys = self._load()
        except Unavailable:
            if self._keys and self._fetched_at is not None and now - self._fetched_at < 2 * self._ttl:
                # Keep serving keys fetched within the last two TTLs rather than flapping; older
                # keys are dropped and the gate answers 503.
                log.warning("keeping cached keys of %s after a failed refresh", self.issuer.url)
                return
            self._keys = {}
            self._fetched_at = None
            raise
        self._keys = keys
        self._fetched_at = now
        log.info("loaded %d key(s) for %s (%s)", len(keys), self.issuer.url, force_reason)

    def _load(self) -> dict[str, PyJWK]:
        if self.issuer.jwks_file is not None:
            try:
                data = json.loads(Path(self.issuer.jwks_file).read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise Unavailable(
                    f"the keys of issuer {self.issuer.url} cannot be read from its JWKS file",
                    code="keys-unavailable",
                ) from exc
            return self._parse(data)
        jwks_url = self.issuer.jwks_url or self._discover()
        return self._parse(self._get_json(jwks_url, "JWKS"))

    def _discover(self) -> str:
        doc = self._get_json(
            f"{self.issuer.url.rstrip('/')}/.well-known/openid-configuration", "discovery document"
        )
        if doc.get("issuer") != self.issuer.url:
            raise Unavailable(
                f"the discovery document of {self.issuer.url} names issuer {doc.get('issuer')!r}; expected exactly "
                f"{self.issuer.url}",
                code="keys-unavailable",
            )
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise Unavailable(
                f"the discovery document of {self.issuer.url} has no https jwks_uri", code="keys-unavailable"
            )
        return jwks_uri

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        if not url.startswith("https://"):
            raise Unavailable(
                f"refusing to fetch the {what} of {self.issuer.url} over plain http", code="keys-unavailable"
            )
        try:
            response = self._session.get(url, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise Unavailable(
                f"the {what} of issuer {self.issuer.url} could not be fetched ({exc.__class__.__name__}); "
                "no token from it can be verified now, retry later",
                code="keys-unavailable",
            ) from exc
        if response.status_code != 200:
            raise Unavailable(
                f"the {what} of issuer {self.issuer.url} answered HTTP {response.status_code}"
                + (" (redirects are not followed)" if 300 <= response.status_code < 400 else ""),
                code="keys-unavailable",
            )
        if len(response.content) > MAX_JWKS_BYTES:
            raise Unavailable(f"the {what} of issuer {self.issuer.url} is too large", code="keys-unavailable")
        try:
            data = response.json()
        except ValueError as exc:
            raise Unavailable(
                f"the {what} of issuer {self.issuer.url} is not JSON", code="keys-unavailable"
            ) from exc
        if not isinstance(data, dict):
            raise Unavailable(
                f"the {what} of issuer {self.issuer.url} is not a JSON object", code="keys-unavailable"
            )
        return data

    def _parse(self, data: dict[str, Any]) -> dict[str, PyJWK]:
        keys: dict[str, PyJWK] = {}
        raw = data.get("keys")
        if isinstance(raw, list):
            # Only RSA signing keys with a kid: anything else could never verify an RS256 token.
            usable = [
                k
                for k in raw
                if isinstance(k, dict)
                and k.get("kty") == "RSA"
                and k.get("use", "sig") == "sig"
                and k.get("kid")
            ]
            try:
                for jwk in PyJWKSet(usable).keys if usable else []:
                    if jwk.key_id:
                        keys[jwk.key_id] = jwk
            except (PyJWKError, PyJWKSetError) as exc:
                log.warning("ignoring unusable keys of %s: %s", self.issuer.url, exc)
        if not keys:
            raise Unavailable(
                f"issuer {self.issuer.url} published no usable RSA signing key", code="keys-unavailable"
            )
        return keys
