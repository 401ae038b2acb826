"""Token verification, as a specification: every check, every refusal code."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from app.errors import TokenError, TokenTooLarge, Unavailable
from app.jwks import IssuerConfig
from app.oidc import TokenVerifier, unverified_display_claims
from tests.issuer import AUDIENCE, DROP, ISSUER, KID, LocalIssuer, b64, unsigned

NOW = 1_790_000_000.0


class MemoryReplay:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        if (issuer, jti) in self.seen:
            return False
        self.seen.add((issuer, jti))
        return True


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def verifier(tmp_path: Path, issuer: LocalIssuer, clock: list[float]) -> TokenVerifier:
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    return TokenVerifier(
        [IssuerConfig(url=ISSUER, jwks_file=jwks)], AUDIENCE, replay=MemoryReplay(), clock=lambda: clock[0]
    )


def token(issuer: LocalIssuer, **claims: Any) -> str:
    return issuer.make_token(now=NOW, **claims)


def test_a_good_token_becomes_a_workload_identity(verifier, issuer):
    verified = verifier.verify(token(issuer))
    assert verified.identity.repository_id == 2000
    assert verified.identity.actor == "octocat"
    assert verified.claims["iss"] == ISSUER
    assert len(verified.token_hash) == 64


def _alg_none(issuer: LocalIssuer, alg: str) -> str:
    return unsigned({"alg": alg, "typ": "JWT", "kid": KID}, issuer.make_claims(now=NOW))


def _hs256_with_public_key(issuer: LocalIssuer) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}
    payload = issuer.make_claims(now=NOW)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(issuer.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def _tampered(issuer: LocalIssuer) -> str:
    header, _, sig = token(issuer).split(".")
    payload = issuer.make_claims(now=NOW, actor="mallory")
    return f"{header}.{b64(json.dumps(payload).encode())}.{sig}"


def _bad_signature(issuer: LocalIssuer) -> str:
    header, payload, sig = token(issuer).split(".")
    flipped = "A" if sig[10] != "A" else "B"
    return f"{header}.{payload}.{sig[:10]}{flipped}{sig[11:]}"


ATTACKS: list[tuple[str, Callable[[LocalIssuer], str], str]] = [
    ("alg-none", lambda i: _alg_none(i, "none"), "unsupported-algorithm"),
    ("alg-None", lambda i: _alg_none(i, "None"), "unsupported-algorithm"),
    ("alg-NONE", lambda i: _alg_none(i, "NONE"), "unsupported-algorithm"),
    ("alg-nOnE", lambda i: _alg_none(i, "nOnE"), "unsupported-algorithm"),
    ("hs256-signed-with-the-public-key", _hs256_with_public_key, "unsupported-algorithm"),
    ("unknown-kid", lambda i: i.make_token(now=NOW, headers={"kid": "someone-elses"}), "unknown-key"),
    ("signed-by-another-key", lambda i: LocalIssuer(key_name="other").make_token(now=NOW), "bad-signature"),
    ("bad-signature", _bad_signature, "bad-signature"),
    ("tampered-payload", _tampered, "bad-signature"),
    ("expired", lambda i: token(i, exp=int(NOW) - 61, iat=int(NOW) - 400), "expired"),
    ("not-yet-valid", lambda i: token(i, nbf=int(NOW) + 120), "not-yet-valid"),
    ("issued-in-the-future", lambda i: token(i, iat=int(NOW) + 120, nbf=DROP), "not-yet-valid"),
    (
        "too-old-though-not-expired",
        lambda i: token(i, iat=int(NOW) - 700, nbf=int(NOW) - 700, exp=int(NOW) + 3600),
        "too-old",
    ),
    ("wrong-audience", lambda i: token(i, aud="someone-else"), "wrong-audience"),
    ("missing-audience", lambda i: token(i, aud=DROP), "wrong-audience"),
    ("several-audiences", lambda i: token(i, aud=[AUDIENCE, "other"]), "wrong-audience"),
    (
        "untrusted-issuer",
        lambda i: LocalIssuer(url="https://evil.example.com").make_token(now=NOW),
        "untrusted-issuer",
    ),
    (
        "issuer-prefix-trick",
        lambda i: LocalIssuer(url=ISSUER + ".evil.com").make_token(now=NOW),
        "untrusted-issuer",
    ),
    ("missing-repository-id", lambda i: token(i, repository_id=DROP), "missing-claim"),
    ("missing-jti", lambda i: token(i, jti=DROP), "missing-claim"),
    ("missing-runner-environment", lambda i: token(i, runner_environment=DROP), "missing-claim"),
    ("non-numeric-actor-id", lambda i: token(i, actor_id="octocat"), "invalid-claim"),
    ("not-a-jwt", lambda i: "hello", "malformed"),
    ("not-base64", lambda i: "!!!.@@@.###", "malformed"),
    ("payload-not-an-object", lambda i: unsigned({"alg": "RS256", "kid": KID}, [1]), "malformed"),  # type: ignore[arg-type]
    ("no-kid", lambda i: unsigned({"alg": "RS256"}, i.make_claims(now=NOW), b"x"), "malformed"),
]


@pytest.mark.parametrize(("make", "code"), [(a[1], a[2]) for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_refusals(verifier, issuer, make, code):
    with pytest.raises(TokenError) as info:
        verifier.verify(make(issuer))
    assert info.value.code == code, info.value.message
    assert info.value.status == 401


def test_refusal_messages_say_what_was_expected(verifier, issuer):
    with pytest.raises(TokenError, match="audience is 'someone-else'; expected 'agent-gate'"):
        verifier.verify(token(issuer, aud="someone-else"))
    with pytest.raises(TokenError, match=r"not trusted by this gate; expected one of https://token\.actions"):
        verifier.verify(LocalIssuer(url="https://evil.example.com").make_token(now=NOW))


def test_refusal_never_contains_the_token(verifier, issuer):
    bad = token(issuer, aud="someone-else")
    with pytest.raises(TokenError) as info:
        verifier.verify(bad)
    assert bad not in info.value.message and bad.split(".")[2] not in str(info.value.to_dict())


def test_leeway_of_sixty_seconds(verifier, issuer, clock):
    fresh = token(issuer, exp=int(NOW) - 30)
    assert verifier.verify(fresh).identity


def test_oversized_token_is_413(verifier):
    with pytest.raises(TokenTooLarge) as info:
        verifier.verify("a" * 20_000)
    assert info.value.status == 413 and info.value.code == "token-too-large"


def test_replay_is_refused(verifier, issuer):
    t = token(issuer)
    verifier.verify(t)
    with pytest.raises(TokenError) as info:
        verifier.verify(t)
    assert info.value.code == "replayed"


def test_replay_with_padding_appended_to_the_signature_is_still_a_replay(verifier, issuer):
    t = token(issuer)
    verifier.verify(t)
    with pytest.raises(TokenError) as info:
        verifier.verify(t + "=")
    assert info.value.code in {"replayed", "bad-signature", "malformed"}


def test_unverified_display_claims_never_raise():
    assert unverified_display_claims("garbage") == {}
    assert unverified_display_claims(LocalIssuer().make_token(now=NOW))["repository"] == "octo-org/octo-repo"


# --- keys over HTTP: discovery, cache, cooldown, fail closed -----------------------------------------

DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
JWKS_URL = f"{ISSUER}/.well-known/jwks"


@pytest.fixture
def http_verifier(clock: list[float]) -> TokenVerifier:
    return TokenVerifier(
        [IssuerConfig(url=ISSUER)],
        AUDIENCE,
        replay=MemoryReplay(),
        session=requests.Session(),
        clock=lambda: clock[0],
        jwks_ttl=300,
    )


def _serve_keys(rsps: responses.RequestsMock, issuer: LocalIssuer) -> None:
    rsps.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    rsps.get(JWKS_URL, json=issuer.jwks())


@responses.activate
def test_keys_come_from_discovery_and_are_cached(http_verifier, issuer):
    _serve_keys(responses.mock, issuer)
    http_verifier.verify(token(issuer))
    http_verifier.verify(token(issuer))
    assert [c.request.url for c in responses.calls] == [DISCOVERY, JWKS_URL]


@responses.activate
def test_keys_are_refetched_after_the_ttl(http_verifier, issuer, clock):
    _serve_keys(responses.mock, issuer)
    http_verifier.verify(token(issuer))
    clock[0] += 301
    http_verifier.verify(issuer.make_token(now=clock[0]))
    assert len(responses.calls) == 4


@responses.activate
def test_untrusted_issuer_makes_no_outbound_request(http_verifier):
    with pytest.raises(TokenError):
        http_verifier.verify(LocalIssuer(url="https://attacker.example.com").make_token(now=NOW))
    assert len(responses.calls) == 0


@responses.activate
def test_a_flood_of_unknown_kids_is_not_a_flood_of_fetches(http_verifier, issuer):
    _serve_keys(responses.mock, issuer)
    http_verifier.verify(token(issuer))
    for i in range(100):
        with pytest.raises(TokenError):
            http_verifier.verify(issuer.make_token(now=NOW, headers={"kid": f"random-{i}"}))
    assert len(responses.calls) <= 3, "at most one refetch per cooldown"


@responses.activate
def test_an_unknown_kid_refetches_once_after_the_cooldown(http_verifier, issuer, clock):
    _serve_keys(responses.mock, issuer)
    http_verifier.verify(token(issuer))
    rotated = LocalIssuer(kid="rotated", key_name="rotated")
    responses.replace(responses.GET, JWKS_URL, json={"keys": [issuer.jwk(), rotated.jwk()]})
    clock[0] += 31
    assert http_verifier.verify(rotated.make_token(now=clock[0])).identity


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: r.get(DISCOVERY, body=requests.ConnectTimeout()), "could not be fetched"),
        (lambda r: r.get(DISCOVERY, status=500), "answered HTTP 500"),
        (
            lambda r: r.get(DISCOVERY, status=302, headers={"Location": "https://evil.example.com/jwks"}),
            "redirects are not followed",
        ),
        (
            lambda r: r.get(DISCOVERY, json={"issuer": "https://evil.example.com", "jwks_uri": JWKS_URL}),
            "names issuer",
        ),
        (
            lambda r: (
                r.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL}),
                r.get(JWKS_URL, json={"keys": []}),
            ),
            "no usable RSA signing key",
        ),
        (
            lambda r: (
                r.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL}),
                r.get(JWKS_URL, body="not json"),
            ),
            "not JSON",
        ),
    ],
    ids=["timeout", "server-error", "redirect", "discovery-issuer-mismatch", "empty-key-set", "not-json"],
)
def test_keys_that_cannot_be_had_fail_closed_with_503(http_verifier, issuer, setup, message):
    with responses.RequestsMock() as rsps:
        setup(rsps)
        with pytest.raises(Unavailable, match=message) as info:
            http_verifier.verify(token(issuer))
    assert info.value.status == 503 and info.value.code == "keys-unavailable"


def test_an_empty_key_set_is_never_cached(http_verifier, issuer, clock):
    with responses.RequestsMock() as rsps:
        rsps.get(DISCOVERY, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
        rsps.get(JWKS_URL, json={"keys": []})
        with pytest.raises(Unavailable):
            http_verifier.verify(token(issuer))
    clock[0] += 31
    with responses.RequestsMock() as rsps:
        _serve_keys(rsps, issuer)
        assert http_verifier.verify(issuer.make_token(now=clock[0])).identity


def test_check_keys_for_readiness(tmp_path, issuer):
    good = TokenVerifier(
        [IssuerConfig(url=ISSUER, jwks_file=issuer.write_jwks(tmp_path / "k.json"))],
        AUDIENCE,
        replay=MemoryReplay(),
    )
    good.check_keys()
    bad = TokenVerifier(
        [IssuerConfig(url=ISSUER, jwks_file=tmp_path / "missing.json")], AUDIENCE, replay=MemoryReplay()
    )
    with pytest.raises(Unavailable, match="cannot be read"):
        bad.check_keys()


def test_real_clock_default_is_used(tmp_path, issuer):
    v = TokenVerifier(
        [IssuerConfig(url=ISSUER, jwks_file=issuer.write_jwks(tmp_path / "k.json"))],
        AUDIENCE,
        replay=MemoryReplay(),
    )
    assert v.verify(issuer.make_token(now=time.time())).identity
