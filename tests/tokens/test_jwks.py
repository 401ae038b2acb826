"""Issuer keys over https, as a specification: discovery, cache, cooldown, and failing closed.

Every HTTP exchange goes through ``responses``; a request nobody registered is an error.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import ec

from app.errors import ConfigError, TokenError, Unavailable
from app.tokens import jwks as jwks_module
from app.tokens.jwks import IssuerConfig, KeySource
from app.tokens.verify import TokenVerifier
from tests.issuer import AUDIENCE, ISSUER, LocalIssuer, MemoryReplay, rsa_key

NOW = 1_790_000_000

DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
JWKS_URL = f"{ISSUER}/.well-known/jwks"


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
def clock() -> list[float]:
    return [float(NOW)]


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make_verifier(clock: list[float], config: IssuerConfig | None = None, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(
        [config or IssuerConfig(url=ISSUER)],
        AUDIENCE,
        replay=MemoryReplay(),
        session=requests.Session(),
        clock=lambda: clock[0],
        **kwargs,
    )


@pytest.fixture
def verifier(clock: list[float]) -> TokenVerifier:
    return make_verifier(clock)


def fresh(issuer: LocalIssuer, clock: list[float], **headers: Any) -> str:
    return issuer.make_token(now=clock[0], headers=headers or None)


def urls(rsps: responses.RequestsMock) -> list[str]:
    return [call.request.url for call in rsps.calls]


# --- where keys come from ---------------------------------------------------------------------------


def test_keys_come_from_the_discovery_document_and_are_cached(verifier, issuer, clock, rsps):
    issuer.serve(rsps)
    verifier.verify(fresh(issuer, clock))
    verifier.verify(fresh(issuer, clock))
    assert urls(rsps) == [DISCOVERY, JWKS_URL]
    assert all(not call.request.headers.get("Authorization") for call in rsps.calls)


def test_an_explicit_jwks_url_skips_discovery(clock, issuer, rsps):
    verifier = make_verifier(clock, IssuerConfig(url=ISSUER, jwks_url="https://keys.example.com/jwks"))
    rsps.get("https://keys.example.com/jwks", json=issuer.jwks())
    verifier.verify(fresh(issuer, clock))
    assert urls(rsps) == ["https://keys.example.com/jwks"]


def test_a_jwks_file_needs_no_network(clock, issuer, rsps, tmp_path):
    verifier = make_verifier(
        clock, IssuerConfig(url=ISSUER, jwks_file=issuer.write_jwks(tmp_path / "k.json"))
    )
    verifier.verify(fresh(issuer, clock))
    assert urls(rsps) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://token.actions.githubusercontent.com/octo-enterprise",  # GitHub Enterprise Cloud, slug
        "https://token.actions.octocorp.ghe.com",  # GHE.com
        "https://ghes.example.com/_services/token",  # GitHub Enterprise Server
    ],
    ids=["enterprise-slug", "ghe-com", "ghes"],
)
def test_discovery_works_for_every_kind_of_github_issuer(clock, rsps, url):
    issuer = LocalIssuer(url=url)
    issuer.serve(rsps)
    verifier = make_verifier(clock, IssuerConfig(url=url))
    assert verifier.verify(fresh(issuer, clock)).identity.issuer == url
    assert urls(rsps) == [f"{url}/.well-known/openid-configuration", f"{url}/.well-known/jwks"]


# --- TTL and cooldown ----------------------------------------------------------------------------


def test_keys_are_refetched_when_the_ttl_runs_out(verifier, issuer, clock, rsps):
    issuer.serve(rsps)
    verifier.verify(fresh(issuer, clock))
    clock[0] += 299
    verifier.verify(fresh(issuer, clock))
    assert len(rsps.calls) == 2, "still fresh one second before the TTL"
    clock[0] += 1
    verifier.verify(fresh(issuer, clock))
    assert urls(rsps) == [DISCOVERY, JWKS_URL] * 2


def test_a_rotation_is_seen_after_the_ttl_and_retired_keys_stop_working(verifier, issuer, clock, rsps):
    rotated = LocalIssuer(kid="rotated", key_name="rotated")
    issuer.serve(rsps)
    old = fresh(issuer, clock)
    clock[0] += 300
    rsps.replace(responses.GET, JWKS_URL, json=rotated.jwks())
    assert verifier.verify(fresh(rotated, clock)).identity
    with pytest.raises(TokenError) as info:
        verifier.verify(old)
    assert info.value.code == "unknown-key"


def test_a_flood_of_unknown_kids_is_at_most_one_refetch(verifier, issuer, clock, rsps):
    issuer.serve(rsps)
    verifier.verify(fresh(issuer, clock))
    clock[0] += 30  # the cooldown since the first fetch has passed
    for _ in range(100):
        with pytest.raises(TokenError) as info:
            verifier.verify(fresh(issuer, clock, kid=uuid.uuid4().hex))
        assert info.value.code == "unknown-key"
        clock[0] += 0.1  # 100 kids in 10 s: within one cooldown
    assert urls(rsps) == [DISCOVERY, JWKS_URL] * 2, "the first fetch and exactly one refetch"


def test_an_unknown_kid_refetches_once_the_cooldown_has_passed(verifier, issuer, clock, rsps):
    rotated = LocalIssuer(kid="rotated", key_name="rotated")
    issuer.serve(rsps)
    verifier.verify(fresh(issuer, clock))
    rsps.replace(responses.GET, JWKS_URL, json={"keys": [issuer.jwk(), rotated.jwk()]})
    clock[0] += 29
    with pytest.raises(TokenError) as info:
        verifier.verify(fresh(rotated, clock))
    assert info.value.code == "unknown-key", "within the cooldown of the last fetch: no refetch"
    clock[0] += 1
    assert verifier.verify(fresh(rotated, clock)).identity
    assert urls(rsps).count(JWKS_URL) == 2


def test_a_flood_of_unknown_kids_from_many_threads_is_one_fetch(verifier, issuer, clock, rsps):
    issuer.serve(rsps)
    codes: list[str] = []
    good: list[bool] = []

    def ask(unknown: bool) -> None:
        try:
            verifier.verify(fresh(issuer, clock, kid=uuid.uuid4().hex) if unknown else fresh(issuer, clock))
            good.append(True)
        except TokenError as exc:
            codes.append(exc.code)

    threads = [threading.Thread(target=ask, args=(n % 2 == 0,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(good) == 16 and codes == ["unknown-key"] * 16
    assert urls(rsps) == [DISCOVERY, JWKS_URL], "one cold-cache fetch, shared by every thread"


# --- failing closed ------------------------------------------------------------------------------

Setup = Callable[[responses.RequestsMock, LocalIssuer], Any]


def _discovery(doc: dict[str, Any]) -> Setup:
    return lambda r, i: r.get(DISCOVERY, json=doc)


def _jwks(**kwargs: Any) -> Setup:
    def setup(r: responses.RequestsMock, i: LocalIssuer) -> None:
        r.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
        r.get(JWKS_URL, **kwargs)

    return setup


def _keys(*keys: dict[str, Any]) -> Setup:
    return _jwks(json={"keys": list(keys)})


def _ec_jwk() -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm

    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    return {**jwk, "kid": "test-key-1", "use": "sig"}


FAILURES: list[tuple[str, Setup, str]] = [
    # -- the exchange -----------------------------------------------------------------------------
    (
        "connect-timeout",
        lambda r, i: r.get(DISCOVERY, body=requests.ConnectTimeout()),
        r"could not be fetched \(ConnectTimeout\)",
    ),
    ("read-timeout", lambda r, i: r.get(DISCOVERY, body=requests.ReadTimeout()), r"\(ReadTimeout\)"),
    (
        "connection-refused",
        lambda r, i: r.get(DISCOVERY, body=requests.ConnectionError()),
        r"\(ConnectionError\)",
    ),
    ("server-error", lambda r, i: r.get(DISCOVERY, status=500), "answered HTTP 500"),
    ("not-found", lambda r, i: r.get(DISCOVERY, status=404), "answered HTTP 404"),
    (
        "redirect",
        lambda r, i: r.get(
            DISCOVERY, status=302, headers={"Location": "https://evil.example.com/openid-configuration"}
        ),
        r"answered HTTP 302 \(redirects are not followed\)",
    ),
    ("jwks-redirect", _jwks(status=301, headers={"Location": "https://evil.example.com/jwks"}), "HTTP 301"),
    (
        "jwks-declared-too-large",
        _jwks(body="{}", headers={"Content-Length": str(300 * 1024)}),
        "larger than 262144 bytes",
    ),
    (
        "jwks-too-large",
        _jwks(body=json.dumps({"keys": [], "pad": "x" * 300 * 1024})),
        "larger than 262144 bytes",
    ),
    # -- the discovery document -------------------------------------------------------------------
    (
        "discovery-names-another-issuer",
        _discovery({"issuer": "https://evil.example.com", "jwks_uri": JWKS_URL}),
        "names issuer 'https://evil.example.com'; expected exactly https://token.actions.githubusercontent.com",
    ),
    (
        "discovery-issuer-trailing-slash",
        _discovery({"issuer": ISSUER + "/", "jwks_uri": JWKS_URL}),
        "expected exactly",
    ),
    ("discovery-without-jwks-uri", _discovery({"issuer": ISSUER}), "no https jwks_uri"),
    (
        "discovery-http-jwks-uri",
        _discovery({"issuer": ISSUER, "jwks_uri": "http://x.example.com/jwks"}),
        "no https jwks_uri",
    ),
    ("discovery-not-json", lambda r, i: r.get(DISCOVERY, body="<html>"), "discovery document .* is not JSON"),
    ("discovery-a-list", lambda r, i: r.get(DISCOVERY, json=[ISSUER]), "not a JSON object"),
    # -- the key set: only RSA signing keys count; an empty set is a failure --------------------------
    ("jwks-not-json", _jwks(body="not json"), "JWKS .* is not JSON"),
    ("jwks-without-keys", _jwks(json={"kty": "RSA"}), "has no 'keys' list"),
    ("jwks-empty", _keys(), "no usable RSA signing key"),
    ("jwks-only-an-ec-key", lambda r, i: _keys(_ec_jwk())(r, i), "no usable RSA signing key"),
    ("jwks-only-an-encryption-key", lambda r, i: _keys(i.jwk(use="enc"))(r, i), "no usable RSA signing key"),
    ("jwks-only-an-rs512-key", lambda r, i: _keys(i.jwk(alg="RS512"))(r, i), "no usable RSA signing key"),
    ("jwks-only-a-key-without-kid", lambda r, i: _keys(i.jwk(kid=""))(r, i), "no usable RSA signing key"),
    ("jwks-only-a-private-key", lambda r, i: _keys(i.jwk(d="AQAB"))(r, i), "no usable RSA signing key"),
    (
        "jwks-only-a-1024-bit-key",
        lambda r, i: _keys(i.jwk(rsa_key("short", 1024)))(r, i),
        "no usable RSA signing key",
    ),
    (
        "jwks-only-an-encrypt-op-key",
        lambda r, i: _keys(i.jwk(key_ops=["encrypt"]))(r, i),
        "no usable RSA signing key",
    ),
    ("jwks-only-a-broken-key", lambda r, i: _keys({**i.jwk(), "n": "!!"})(r, i), "no usable RSA signing key"),
]


@pytest.mark.parametrize(("setup", "message"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_keys_that_cannot_be_had_fail_closed_with_503(verifier, issuer, clock, rsps, setup, message):
    setup(rsps, issuer)
    with pytest.raises(Unavailable, match=message) as info:
        verifier.verify(fresh(issuer, clock))
    assert (info.value.status, info.value.code) == (503, "keys-unavailable")
    assert info.value.headers == {"Retry-After": "5"}
    assert "retry in a few seconds" in info.value.message
    assert not any("evil" in url for url in urls(rsps)), "a redirect is never followed"


def test_usable_keys_are_kept_and_unusable_ones_ignored(verifier, issuer, clock, rsps):
    rsps.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    rsps.get(JWKS_URL, json={"keys": [_ec_jwk(), issuer.jwk(use="enc", kid="enc"), "junk", issuer.jwk()]})
    assert verifier.verify(fresh(issuer, clock)).identity


def test_a_slow_drip_is_cut_at_the_fetch_timeout(verifier, issuer, clock, rsps, monkeypatch):
    issuer.serve(rsps)
    ticks = iter(float(n) for n in range(0, 1000, 3))  # every socket read takes 3 s
    monkeypatch.setattr(jwks_module, "_monotonic", lambda: next(ticks))
    with pytest.raises(Unavailable, match="took longer than the fetch timeout"):
        verifier.verify(fresh(issuer, clock))


def test_an_empty_key_set_is_never_cached(verifier, issuer, clock, rsps):
    rsps.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    rsps.get(JWKS_URL, json={"keys": []})
    with pytest.raises(Unavailable):
        verifier.verify(fresh(issuer, clock))
    clock[0] += 5  # the retry interval, far below the TTL
    rsps.replace(responses.GET, JWKS_URL, json=issuer.jwks())
    assert verifier.verify(fresh(issuer, clock)).identity


def test_while_keys_cannot_be_had_the_issuer_is_asked_once_per_retry_interval(verifier, issuer, clock, rsps):
    rsps.get(DISCOVERY, status=503)
    for _ in range(20):
        with pytest.raises(Unavailable):
            verifier.verify(fresh(issuer, clock))
        clock[0] += 0.2
    assert len(rsps.calls) == 1, "requests in between are answered 503 at once"
    clock[0] += 1
    with pytest.raises(Unavailable):
        verifier.verify(fresh(issuer, clock))
    assert len(rsps.calls) == 2


def test_a_failed_refresh_keeps_recent_keys_then_drops_them(verifier, issuer, clock, rsps):
    issuer.serve(rsps)
    verifier.verify(fresh(issuer, clock))
    rsps.replace(responses.GET, DISCOVERY, status=500)
    clock[0] += 301  # expired: the refresh fails, but keys fetched within TTL + grace still answer
    assert verifier.verify(fresh(issuer, clock)).identity
    clock[0] += 299  # 600 s after the last good fetch: the keys are too old to trust
    with pytest.raises(Unavailable, match="answered HTTP 500"):
        verifier.verify(fresh(issuer, clock))
    rsps.replace(responses.GET, DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    clock[0] += 5
    assert verifier.verify(fresh(issuer, clock)).identity, "and it recovers as soon as the issuer does"


def test_a_failed_unknown_kid_refetch_is_503_and_keeps_the_known_keys(verifier, issuer, clock, rsps):
    issuer.serve(rsps)
    verifier.verify(fresh(issuer, clock))
    rsps.replace(responses.GET, JWKS_URL, body=requests.ConnectTimeout())
    clock[0] += 30
    with pytest.raises(Unavailable):
        verifier.verify(fresh(issuer, clock, kid="new"))
    assert verifier.verify(fresh(issuer, clock)).identity


def test_readiness_checks_every_issuer(clock, issuer, rsps):
    other = LocalIssuer(url="https://ghes.example.com/_services/token", kid="ghes")
    verifier = TokenVerifier(
        [IssuerConfig(url=ISSUER), IssuerConfig(url=other.url, label="ghes")],
        AUDIENCE,
        replay=MemoryReplay(),
        clock=lambda: clock[0],
    )
    issuer.serve(rsps)
    rsps.get(other.discovery_url, body=requests.ConnectionError())
    with pytest.raises(
        Unavailable, match=r"issuer https://ghes.example.com/_services/token \(ghes\) cannot be had"
    ):
        verifier.check_keys()
    other.serve(rsps)
    clock[0] += 5
    verifier.check_keys()


# --- configuration: https only ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (IssuerConfig(url="http://token.actions.githubusercontent.com"), "must be an https URL"),
        (IssuerConfig(url="http://127.0.0.1:8080"), "must be an https URL"),
        (IssuerConfig(url="https://"), "must be an https URL with a host"),
        (IssuerConfig(url="https://user:pw@token.example.com"), "must be an https URL"),
        (IssuerConfig(url=ISSUER + "?x=1"), "must be an https URL"),
        (IssuerConfig(url=ISSUER, jwks_url="http://127.0.0.1/jwks"), "jwks_url .* must be an https URL"),
    ],
    ids=["http", "loopback-http", "no-host", "credentials", "query", "http-jwks-url"],
)
def test_only_https_issuers_are_accepted(config, message):
    with pytest.raises(ConfigError, match=message):
        KeySource(config, session=requests.Session())


def test_fetches_never_follow_redirects_and_have_a_timeout(issuer, clock):
    seen: list[dict[str, Any]] = []

    class RecordingSession(requests.Session):
        def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            seen.append(kwargs)
            raise requests.ConnectTimeout()

    verifier = TokenVerifier(
        [IssuerConfig(url=ISSUER)],
        AUDIENCE,
        replay=MemoryReplay(),
        session=RecordingSession(),
        clock=lambda: clock[0],
    )
    with pytest.raises(Unavailable):
        verifier.verify(fresh(issuer, clock))
    assert seen[0]["allow_redirects"] is False and 0 < seen[0]["timeout"] <= 5


# --- a slow issuer: one fetch at a time, nobody queued behind it --------------------------------------


def _slow(rsps: responses.RequestsMock, issuer: LocalIssuer, seconds: float, *, fail: bool) -> None:
    import time as _time

    def answer(_request: Any) -> tuple[int, dict[str, str], str]:
        _time.sleep(seconds)
        if fail:
            raise requests.ReadTimeout("the issuer is slow")
        return 200, {}, json.dumps(issuer.jwks())

    rsps.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    rsps.add_callback(responses.GET, JWKS_URL, callback=answer)


@pytest.mark.parametrize("fail", [True, False], ids=["slow-and-failing", "slow-but-answering"])
def test_a_slow_issuer_is_fetched_once_and_nobody_queues_behind_it(verifier, issuer, clock, rsps, fail):
    import time as _time

    _slow(rsps, issuer, 1.5, fail=fail)
    outcomes: list[tuple[str, float]] = []

    def ask() -> None:
        started = _time.monotonic()
        try:
            verifier.verify(fresh(issuer, clock))
            outcomes.append(("ok", _time.monotonic() - started))
        except Unavailable as exc:
            outcomes.append((exc.code, _time.monotonic() - started))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    _time.sleep(0.2)
    started = _time.monotonic()
    with pytest.raises(Unavailable, match="being fetched"):
        verifier.check_keys()  # /readyz while the fetch runs: answered at once, never behind it
    assert _time.monotonic() - started < 0.2
    for t in threads:
        t.join()
    assert urls(rsps).count(JWKS_URL) == 1, "one fetch at a time per issuer"
    # Before: each waiting request started its own fetch after the previous one, 1.5, 3 ... 12 s.
    assert max(elapsed for _, elapsed in outcomes) < 2.5
    codes = [code for code, _ in outcomes]
    assert codes.count("keys-unavailable") >= 7 if fail else codes.count("ok") >= 1
    if fail:
        # The retry window counts from the end of the failed attempt: no immediate second fetch.
        with pytest.raises(Unavailable):
            verifier.verify(fresh(issuer, clock))
        assert urls(rsps).count(JWKS_URL) == 1
