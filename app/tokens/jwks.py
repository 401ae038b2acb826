"""Issuer keys: OpenID discovery, an explicit JWKS URL or a local JWKS file; cached, bounded, fail-closed.

How the keys of one issuer are kept (:class:`KeySource`):

- **Where from.** A local ``jwks_file`` (air-gapped GHES, tests, the dev issuer; no network), else an
  explicit ``jwks_url``, else discovery: ``{issuer}/.well-known/openid-configuration``, whose
  ``issuer`` must equal the configured issuer exactly and whose ``jwks_uri`` must be https.
- **Only https.** Every URL fetched is https, loopback included: tests mock https with ``responses``
  and the dev issuer reads a file. Redirects are never followed (a 3xx is a failure), each fetch has
  a timeout of at most 5 s and a body cap (256 KiB) read under a wall-clock deadline.
- **Only RSA signing keys.** JWKs that are not ``kty: RSA``, ``use: sig`` (or no ``use``), ``alg:
  RS256`` (or no ``alg``), that lack a ``kid``, carry private material or are under 2048 bits are
  ignored. A key set with no usable key is a failure and is never cached.
- **Cached for a TTL.** Within the TTL the cached keys answer. An unknown ``kid`` (the issuer may have
  rotated) causes at most one refetch per cooldown (>= 30 s) per issuer, counting every fetch attempt,
  so a flood of random kids is never a flood of fetches.
- **Fail closed, not flaky.** When a refresh fails, keys fetched less than ``ttl + stale_grace`` ago
  (10 minutes by default) keep answering and the failure is logged; older keys are dropped. While an
  issuer's keys cannot be had, one attempt is made per ``retry_after`` seconds (5) and requests in
  between get :class:`~app.errors.Unavailable` (503, ``keys-unavailable``, ``Retry-After``) at once
  instead of queueing behind timeouts.
- **Thread-safe.** One lock per issuer guards the cache and serialises its fetches (gunicorn gthread).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError

from app.errors import ConfigError, Unavailable
from app.observe.metrics import metrics

log = logging.getLogger("agent_gate.jwks")

MAX_FETCH_TIMEOUT = 5.0
MIN_REFETCH_COOLDOWN = 30.0
RETRY_AFTER_FAILURE = 5.0
# While one thread fetches, the others wait at most this long for it, then answer from the keys at hand
# (stale ones within the grace period) or 503: a slow issuer never queues requests behind its timeouts.
FOLLOWER_WAIT = 1.0
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_KEYS = 64
MIN_RSA_BITS = 2048
ALGORITHM = "RS256"
KEYS_UNAVAILABLE = "keys-unavailable"

# The wall clock for fetch deadlines (the injected clock drives the cache, not socket reads).
_monotonic = time.monotonic


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer and where its keys come from (discovery unless told otherwise)."""

    url: str  # the exact issuer, e.g. https://token.actions.githubusercontent.com
    jwks_url: str | None = None  # explicit JWKS URL; else discovery at {url}/.well-known/openid-configuration
    jwks_file: Path | None = None  # local JWKS file (air-gapped GHES, tests, the dev issuer); no network
    label: str = ""  # e.g. "github.com", "dev": for messages

    @property
    def name(self) -> str:
        """How messages name this issuer."""
        return f"{self.url} ({self.label})" if self.label and self.label != self.url else self.url

    @property
    def discovery_url(self) -> str:
        return f"{self.url.rstrip('/')}/.well-known/openid-configuration"

    def validate(self) -> None:
        """Raise :class:`ConfigError` unless this configuration can be used as is."""
        if not is_https_url(self.url):
            raise ConfigError(f"issuer {self.url!r} must be an https URL with a host, e.g. {_GITHUB}")
        if self.jwks_url is not None and self.jwks_file is not None:
            raise ConfigError(f"issuer {self.url} has both jwks_url and jwks_file; expected at most one")
        if self.jwks_url is not None and not is_https_url(self.jwks_url):
            raise ConfigError(
                f"the jwks_url of issuer {self.url} must be an https URL, got {self.jwks_url!r}"
            )


_GITHUB = "https://token.actions.githubusercontent.com"


def is_https_url(url: str) -> bool:
    """An absolute https URL with a host and no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and bool(parts.hostname)
        and parts.username is None
        and not parts.query
        and not parts.fragment
    )


class KeySource:
    """The signing keys of one issuer, cached with a TTL and a refetch cooldown. Thread-safe."""

    def __init__(
        self,
        issuer: IssuerConfig,
        *,
        session: requests.Session,
        clock: Callable[[], float] = time.time,
        ttl: float = 300.0,
        refetch_cooldown: float = MIN_REFETCH_COOLDOWN,
        timeout: float = MAX_FETCH_TIMEOUT,
        retry_after: float = RETRY_AFTER_FAILURE,
        stale_grace: float | None = None,
        follower_wait: float = FOLLOWER_WAIT,
    ) -> None:
        issuer.validate()
        if ttl <= 0:
            raise ConfigError(f"the JWKS cache TTL must be positive, got {ttl}")
        if refetch_cooldown < MIN_REFETCH_COOLDOWN:
            raise ConfigError(
                f"the unknown-kid refetch cooldown must be at least {MIN_REFETCH_COOLDOWN:.0f} s, got {refetch_cooldown}"
            )
        if not 0 < timeout <= MAX_FETCH_TIMEOUT:
            raise ConfigError(
                f"the JWKS fetch timeout must be in (0, {MAX_FETCH_TIMEOUT:.0f}] s, got {timeout}"
            )
        self.issuer = issuer
        self._session = session
        self._clock = clock
        self._ttl = ttl
        self._cooldown = refetch_cooldown
        self._timeout = timeout
        self._retry_after = retry_after
        self._grace = ttl if stale_grace is None else stale_grace
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful load
        self._attempted_at: float | None = None  # last load attempt, successful or not
        self._failure: str | None = None  # why the last attempt failed; None after a success
        self._inflight = False  # a thread is fetching the keys now (single flight)
        self._fetched = threading.Condition(self._lock)  # notified when a fetch ends
        self._follower_wait = follower_wait

    def key(self, kid: str) -> PyJWK | None:
        """The issuer's key named ``kid``, or None when the issuer does not publish it.

        Raises :class:`Unavailable` (``keys-unavailable``) when the keys cannot be had.

        One fetch at a time (single flight): the thread that finds the keys due fetches them without
        holding the lock; every other thread is answered at once from the keys at hand (stale ones
        within the grace period) or with ``keys-unavailable``, never queued behind the fetch.
        """
        self._ensure_fresh(self._follower_wait)
        with self._lock:
            if self._inflight and self._keys.get(kid) is None:
                self._fetched.wait_for(lambda: not self._inflight, timeout=self._follower_wait)
            key = self._keys.get(kid)
            if key is not None or not self._may_refetch(self._clock()) or self._inflight:
                return key
            # Maybe the issuer rotated its keys: look once, then not again for a cooldown.
            self._inflight = True
        try:
            self._load(reason="unknown kid")
        finally:
            self._done()
        with self._lock:
            return self._keys.get(kid)

    def check(self) -> None:
        """Raise :class:`Unavailable` unless the keys can be had now (for /readyz).

        Never waits for another thread's fetch: while one runs, the answer comes from the keys at hand.
        """
        self._ensure_fresh(0.0)

    def _ensure_fresh(self, wait: float) -> None:
        """Lead a fetch when the keys are due, or follow one: wait at most ``wait`` seconds for it."""
        with self._lock:
            if self._inflight and self._age(self._clock()) >= self._ttl and wait > 0:
                self._fetched.wait_for(lambda: not self._inflight, timeout=wait)
            now = self._clock()
            if self._age(now) < self._ttl:
                return
            if self._inflight or (self._failure is not None and not self._may_retry(now)):
                # Another thread is fetching, or the last attempt failed moments ago: don't hammer the
                # issuer, don't queue behind its timeouts.
                if self._usable_stale(now):
                    return
                why = self._failure or "the keys are being fetched by another request"
                raise self._unavailable(why)
            self._inflight = True
            reason = "expired" if self._keys else "first use"
        try:
            self._load(reason=reason)
        except Unavailable:
            with self._lock:
                now = self._clock()
                if self._usable_stale(now):
                    log.warning(
                        "keeping the keys of %s fetched %.0f s ago after a failed refresh",
                        self.issuer.url,
                        self._age(now),
                    )
                    return
                self._keys = {}
            raise
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._inflight = False
            self._fetched.notify_all()

    def _age(self, now: float) -> float:
        if self._fetched_at is None or now < self._fetched_at:  # never fetched, or the clock went back
            return math.inf
        return now - self._fetched_at

    def _may_refetch(self, now: float) -> bool:
        return self._attempted_at is None or not 0 <= now - self._attempted_at < self._cooldown

    def _may_retry(self, now: float) -> bool:
        return self._attempted_at is None or not 0 <= now - self._attempted_at < self._retry_after

    def _usable_stale(self, now: float) -> bool:
        return bool(self._keys) and self._age(now) < self._ttl + self._grace

    def _unavailable(self, why: str) -> Unavailable:
        return Unavailable(
            f"the signing keys of issuer {self.issuer.name} cannot be had: {why}. No token from this issuer "
            f"can be verified now; retry in a few seconds. If it persists, check that the gate can reach "
            f"{self._where()}",
            code=KEYS_UNAVAILABLE,
            retry_after=max(1, math.ceil(self._retry_after)),
        )

    def _where(self) -> str:
        if self.issuer.jwks_file is not None:
            return f"its JWKS file {self.issuer.jwks_file}"
        return self.issuer.jwks_url or self.issuer.discovery_url

    def _load(self, *, reason: str) -> None:
        """Fetch the keys (the caller holds the single flight, not the lock). The retry window and the
        refetch cooldown count from when the attempt ends, so a slow failure is not retried at once."""
        try:
            keys = self._fetch()
        except _FetchError as exc:
            metrics().jwks_fetches.labels(self.issuer.url, "failed").inc()
            with self._lock:
                self._attempted_at, self._failure = self._clock(), str(exc)
            log.warning("loading the keys of %s (%s) failed: %s", self.issuer.url, reason, exc)
            raise self._unavailable(str(exc)) from exc
        metrics().jwks_fetches.labels(self.issuer.url, "ok").inc()
        with self._lock:
            now = self._clock()
            self._keys, self._fetched_at, self._attempted_at, self._failure = keys, now, now, None
        log.info("loaded %d signing key(s) of %s (%s)", len(keys), self.issuer.url, reason)

    # -- fetching: every failure is a _FetchError with a sentence for a person ---------------------

    def _fetch(self) -> dict[str, PyJWK]:
        if self.issuer.jwks_file is not None:
            return self._parse(_read_file(self.issuer.jwks_file), f"the JWKS file {self.issuer.jwks_file}")
        url = self.issuer.jwks_url or self._discover()
        return self._parse(self._get_json(url, "JWKS"), f"the JWKS at {url}")

    def _discover(self) -> str:
        url = self.issuer.discovery_url
        doc = self._get_json(url, "discovery document")
        named = doc.get("issuer")
        if named != self.issuer.url:
            raise _FetchError(
                f"the discovery document at {url} names issuer {_short(named)}; expected exactly {self.issuer.url}"
            )
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not is_https_url(jwks_uri):
            raise _FetchError(
                f"the discovery document at {url} has no https jwks_uri (got {_short(jwks_uri)})"
            )
        return jwks_uri

    def _get_json(self, url: str, what: str) -> Mapping[str, Any]:
        if not is_https_url(url):
            raise _FetchError(f"refusing to fetch the {what} from {url!r}: only https URLs are fetched")
        deadline = _monotonic() + self._timeout
        try:
            with self._session.get(
                url,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect is a failure: the keys come from where configured
                stream=True,
                # identity: the size cap counts the bytes on the wire, and no decoder buffers behind it
                headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            ) as response:
                if response.status_code != 200:
                    hint = " (redirects are not followed)" if 300 <= response.status_code < 400 else ""
                    raise _FetchError(f"the {what} at {url} answered HTTP {response.status_code}{hint}")
                body = _read_capped(response, deadline, f"the {what} at {url}")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _FetchError(f"the {what} at {url} could not be fetched ({exc.__class__.__name__})") from exc
        return _json_object(body, f"the {what} at {url}")

    def _parse(self, data: Mapping[str, Any], source: str) -> dict[str, PyJWK]:
        raw = data.get("keys")
        if not isinstance(raw, list):
            raise _FetchError(f"{source} has no 'keys' list")
        usable = [k for k in raw[:MAX_KEYS] if _is_rsa_signing_jwk(k)]
        keys: dict[str, PyJWK] = {}
        try:
            parsed = PyJWKSet(usable).keys if usable else []
        except PyJWKSetError:  # every candidate failed to load
            parsed = []
        for jwk in parsed:
            kid = jwk.key_id
            size = getattr(jwk.key, "key_size", 0)
            if not kid or size < MIN_RSA_BITS:
                log.warning(
                    "ignoring key %r of %s: %s bits, below %s", kid, self.issuer.url, size, MIN_RSA_BITS
                )
                continue
            if kid in keys:
                log.warning("ignoring a second key with kid %r in %s", kid, source)
                continue
            keys[kid] = jwk
        if not keys:
            # Never cache an empty key set: it would refuse every token until the TTL ran out.
            raise _FetchError(
                f"{source} holds no usable RSA signing key (kty RSA, use sig, alg RS256, a kid, >= {MIN_RSA_BITS} bits)"
            )
        return keys


class _FetchError(Exception):
    """Internal: why one fetch of an issuer's keys failed (becomes Unavailable at the boundary)."""


def _is_rsa_signing_jwk(jwk: Any) -> bool:
    if not isinstance(jwk, dict):
        return False
    kid = jwk.get("kid")
    ops = jwk.get("key_ops")
    return (
        jwk.get("kty") == "RSA"
        and jwk.get("use", "sig") == "sig"
        and jwk.get("alg", ALGORITHM) == ALGORITHM
        and isinstance(kid, str)
        and bool(kid)
        and "d" not in jwk  # private key material never belongs in a published key set
        and (ops is None or (isinstance(ops, list) and "verify" in ops))
    )


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        with open(path, "rb") as f:
            body = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise _FetchError(f"the JWKS file {path} cannot be read ({exc.__class__.__name__})") from exc
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _FetchError(f"the JWKS file {path} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return _json_object(body, f"the JWKS file {path}")


def _read_capped(response: requests.Response, deadline: float, what: str) -> bytes:
    """The body, at most MAX_DOCUMENT_BYTES, read before ``deadline``: a slow drip is a failure.

    ``read1`` makes at most one socket read per call (each bounded by the request's timeout), so
    the deadline is checked between reads rather than after a whole buffer has trickled in.
    """
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise _FetchError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        if _monotonic() > deadline:
            raise _FetchError(f"{what} took longer than the fetch timeout to arrive")
        chunk = response.raw.read1(16384)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise _FetchError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
        chunks.append(chunk)


def _json_object(body: bytes, what: str) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _FetchError(f"{what} is not JSON") from exc
    if not isinstance(data, dict):
        raise _FetchError(f"{what} is not a JSON object")
    return data


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


__all__ = ["IssuerConfig", "KeySource", "is_https_url"]
