"""Token verification, as a specification: every check, every refusal code, every message.

Keys come from a local JWKS file here (no network); fetching keys over https is specified in
test_jwks.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses

from app.errors import ConfigError, TokenError, TokenTooLarge, Unavailable
from app.tokens.verify import IssuerConfig, TokenVerifier, VerifiedToken, unverified_display_claims
from tests.issuer import (
    AUDIENCE,
    DROP,
    ISSUER,
    KID,
    LocalIssuer,
    MemoryReplay,
    b64,
    b64json,
    rsa_key,
    unsigned,
)

NOW = 1_790_000_000  # 2026-09-21T14:13:20Z
T = int(NOW)


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


@pytest.fixture
def clock() -> list[float]:
    return [float(NOW)]


@pytest.fixture
def replay() -> MemoryReplay:
    return MemoryReplay()


@pytest.fixture
def verifier(tmp_path: Path, issuer: LocalIssuer, clock: list[float], replay: MemoryReplay) -> TokenVerifier:
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    return TokenVerifier([issuer.config(jwks_file=jwks)], AUDIENCE, replay=replay, clock=lambda: clock[0])


def token(issuer: LocalIssuer, **claims: Any) -> str:
    return issuer.make_token(now=NOW, **claims)


# --- accepted --------------------------------------------------------------------------------------


def test_a_good_token_becomes_a_workload_identity(verifier, issuer, replay):
    good = token(issuer)
    verified = verifier.verify(good)
    assert isinstance(verified, VerifiedToken)
    assert (verified.identity.repository_id, verified.identity.repository_owner_id) == (2000, 1000)
    assert (verified.identity.actor, verified.identity.actor_id) == ("octocat", 583231)
    assert verified.identity.issuer == verified.claims["iss"] == ISSUER
    assert verified.token_hash == hashlib.sha256(good.encode()).hexdigest() == TokenVerifier.token_hash(good)
    # The replay record lives until the verifier would refuse the token anyway: exp (here before
    # iat + max_age) plus the leeway.
    assert replay.calls == [(ISSUER, verified.claims["jti"], T + 300 + 60)]


def test_the_copilot_agent_is_an_ordinary_workload_here(verifier, issuer):
    verified = verifier.verify(token(issuer, actor="Copilot", actor_id="198982749"))
    assert (verified.identity.actor, verified.identity.actor_id) == ("Copilot", 198982749)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": T - 59}, id="expired-59-s-ago-within-leeway"),
        pytest.param({"nbf": T + 60}, id="not-before-60-s-ahead-within-leeway"),
        pytest.param({"iat": T + 60, "nbf": DROP}, id="issued-60-s-ahead-within-leeway"),
        pytest.param({"iat": T - 660, "exp": T + 60}, id="issued-max-age-plus-leeway-ago"),
        pytest.param({"nbf": DROP}, id="nbf-is-optional"),
        pytest.param({"environment": "production"}, id="with-an-environment"),
    ],
)
def test_accepted_at_the_edges(verifier, issuer, claims):
    assert verifier.verify(token(issuer, **claims)).identity


# --- refused: one scenario per row -----------------------------------------------------------------


def _tampered(i: LocalIssuer) -> str:
    header, _, signature = token(i).split(".")
    return f"{header}.{b64json(i.make_claims(now=NOW, actor='mallory'))}.{signature}"


def _flipped_signature(i: LocalIssuer) -> str:
    header, payload, signature = token(i).split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}"


def _without_signature(i: LocalIssuer) -> str:
    header, payload, _ = token(i).split(".")
    return f"{header}.{payload}."


Make = Callable[[LocalIssuer], str]
REFUSALS: list[tuple[str, Make, str, str]] = [
    # -- algorithm: RS256 only, whatever the header says -------------------------------------------
    (
        "alg-none",
        lambda i: i.sign_with(None, "none", now=NOW),
        "unsupported-algorithm",
        "algorithm is 'none'; expected RS256",
    ),
    ("alg-None", lambda i: i.sign_with(None, "None", now=NOW), "unsupported-algorithm", "'None'"),
    ("alg-NONE", lambda i: i.sign_with(None, "NONE", now=NOW), "unsupported-algorithm", "'NONE'"),
    ("alg-nOnE", lambda i: i.sign_with(None, "nOnE", now=NOW), "unsupported-algorithm", "'nOnE'"),
    (
        "alg-none-with-a-signature",
        lambda i: i.sign_with(None, "none", now=NOW) + "c2ln",
        "unsupported-algorithm",
        "'none'",
    ),
    (
        "alg-missing",
        lambda i: i.sign_with(i.key, "RS256", headers={"alg": None}, now=NOW),
        "unsupported-algorithm",
        "None",
    ),
    (
        "hs256-signed-with-the-public-key",
        lambda i: i.sign_with(i.public_pem(), "HS256", now=NOW),
        "unsupported-algorithm",
        "'HS256'; expected RS256",
    ),
    (
        "hs256-signed-with-the-jwk-modulus",
        lambda i: i.sign_with(i.jwk()["n"].encode(), "HS256", now=NOW),
        "unsupported-algorithm",
        "'HS256'",
    ),
    (
        "rs512-with-the-right-key",
        lambda i: i.sign_with(i.key, "RS512", now=NOW),
        "unsupported-algorithm",
        "'RS512'",
    ),
    (
        "ps256-with-the-right-key",
        lambda i: i.sign_with(i.key, "PS256", now=NOW),
        "unsupported-algorithm",
        "'PS256'",
    ),
    (
        "alg-rs256-lowercase",
        lambda i: i.sign_with(i.key, "RS256", headers={"alg": "rs256"}, now=NOW),
        "unsupported-algorithm",
        "'rs256'",
    ),
    # -- key and signature --------------------------------------------------------------------------
    (
        "unknown-kid",
        lambda i: i.make_token(now=NOW, headers={"kid": "someone-elses"}),
        "unknown-key",
        "no signing key 'someone-elses'",
    ),
    (
        "no-kid",
        lambda i: i.sign_with(i.key, "RS256", headers={"kid": None}, now=NOW),
        "malformed",
        "no key id",
    ),
    (
        "kid-not-a-string",
        lambda i: i.sign_with(i.key, "RS256", headers={"kid": 1}, now=NOW),
        "malformed",
        "no key id",
    ),
    (
        "signed-by-another-key-same-kid",
        lambda i: LocalIssuer(key_name="other").make_token(now=NOW),
        "bad-signature",
        "altered or forged",
    ),
    ("flipped-signature", _flipped_signature, "bad-signature", "does not verify"),
    ("tampered-payload", _tampered, "bad-signature", "does not verify"),
    ("empty-signature", _without_signature, "bad-signature", "does not verify"),
    # -- times: 60 s leeway, 600 s max age ------------------------------------------------------------
    (
        "expired",
        lambda i: token(i, exp=T - 61),
        "expired",
        r"expired at 2026-09-21T14:12:19Z; it is now 2026-09-21T14:13:20Z",
    ),
    ("expired-at-the-leeway-edge", lambda i: token(i, exp=T - 60), "expired", "expired at"),
    (
        "not-yet-valid",
        lambda i: token(i, nbf=T + 61),
        "not-yet-valid",
        "not valid before 2026-09-21T14:14:21Z",
    ),
    ("issued-in-the-future", lambda i: token(i, iat=T + 61, nbf=DROP), "not-yet-valid", "in the future"),
    (
        "too-old-though-not-expired",
        lambda i: token(i, iat=T - 661, exp=T + 3600),
        "too-old",
        "661 s ago; expected at most 600 s, whatever its exp says",
    ),
    (
        "exp-not-a-number",
        lambda i: token(i, exp="tomorrow"),
        "invalid-claim",
        "exp must be an integer number of seconds, got 'tomorrow'",
    ),
    ("exp-infinity", lambda i: token(i, exp=float("inf")), "invalid-claim", "exp must be an integer"),
    ("iat-nan", lambda i: token(i, iat=float("nan")), "invalid-claim", "iat must be an integer"),
    ("exp-a-float", lambda i: token(i, exp=T + 300.5), "invalid-claim", "exp must be an integer"),
    ("exp-a-boolean", lambda i: token(i, exp=True), "invalid-claim", "exp must be an integer"),
    ("nbf-a-string", lambda i: token(i, nbf="now"), "invalid-claim", "nbf must be an integer"),
    # -- audience: ours, and only ours ----------------------------------------------------------------
    (
        "wrong-audience",
        lambda i: token(i, aud="someone-else"),
        "wrong-audience",
        "audience is 'someone-else'; expected 'agent-gate' as its only audience",
    ),
    (
        "github-default-audience",
        lambda i: token(i, aud="https://github.com/octo-org"),
        "wrong-audience",
        "github.com/octo-org",
    ),
    ("missing-audience", lambda i: token(i, aud=DROP), "wrong-audience", "no audience"),
    ("empty-audience", lambda i: token(i, aud=""), "wrong-audience", "no audience"),
    (
        "several-audiences",
        lambda i: token(i, aud=[AUDIENCE, "other"]),
        "wrong-audience",
        r"several audiences \['agent-gate', 'other'\]",
    ),
    ("a-list-of-only-ours", lambda i: token(i, aud=[AUDIENCE]), "wrong-audience", "several audiences"),
    ("audience-not-a-string", lambda i: token(i, aud=7), "wrong-audience", "audience is 7"),
    # -- issuer: exact ------------------------------------------------------------------------------
    (
        "untrusted-issuer",
        lambda i: LocalIssuer(url="https://evil.example.com").make_token(now=NOW),
        "untrusted-issuer",
        r"issuer is 'https://evil.example.com'; expected one of: https://token\.actions\.githubusercontent\.com",
    ),
    (
        "issuer-prefix-trick",
        lambda i: LocalIssuer(url=ISSUER + ".evil.com").make_token(now=NOW),
        "untrusted-issuer",
        "evil.com",
    ),
    ("issuer-trailing-slash", lambda i: token(i, iss=ISSUER + "/"), "untrusted-issuer", "issuer is"),
    ("issuer-other-case", lambda i: token(i, iss=ISSUER.upper()), "untrusted-issuer", "HTTPS://"),
    (
        "issuer-as-a-list",
        lambda i: i.sign_with(i.key, "RS256", now=NOW, iss=[ISSUER]),
        "untrusted-issuer",
        r"\['https://",
    ),
    ("issuer-missing", lambda i: token(i, iss=DROP), "untrusted-issuer", "issuer is None"),
    # -- required claims ----------------------------------------------------------------------------
    (
        "missing-repository-id",
        lambda i: token(i, repository_id=DROP),
        "missing-claim",
        "lacks required claim.*repository_id",
    ),
    (
        "missing-two-claims",
        lambda i: token(i, actor_id=DROP, run_id=DROP),
        "missing-claim",
        "actor_id, run_id",
    ),
    ("missing-jti", lambda i: token(i, jti=DROP), "missing-claim", "jti"),
    ("missing-exp", lambda i: token(i, exp=DROP), "missing-claim", "exp"),
    ("missing-iat", lambda i: token(i, iat=DROP), "missing-claim", "iat"),
    ("missing-sub", lambda i: token(i, sub=DROP), "missing-claim", "sub"),
    (
        "missing-runner-environment",
        lambda i: token(i, runner_environment=DROP),
        "missing-claim",
        "runner_environment",
    ),
    ("empty-repository-id", lambda i: token(i, repository_id=""), "missing-claim", "repository_id"),
    (
        "non-numeric-actor-id",
        lambda i: token(i, actor_id="octocat"),
        "invalid-claim",
        "actor_id.*decimal number, got 'octocat'",
    ),
    ("jti-not-a-string", lambda i: token(i, jti=123), "invalid-claim", "wrong type"),
    ("sub-not-a-string", lambda i: token(i, sub=["repo"]), "invalid-claim", "wrong type"),
    # -- shape --------------------------------------------------------------------------------------
    ("empty", lambda i: "", "malformed", "not a JWT"),
    ("one-segment", lambda i: "hello", "malformed", "three dot-separated segments.*got 1"),
    ("four-segments", lambda i: token(i) + ".x", "malformed", "got 4"),
    ("not-base64", lambda i: "!!!.@@@.###", "malformed", "not base64url-encoded JSON"),
    ("not-json", lambda i: f"{b64(b'{oops')}.{b64(b'{}')}.c2ln", "malformed", "not base64url-encoded JSON"),
    (
        "payload-not-an-object",
        lambda i: unsigned({"alg": "RS256", "kid": KID}, [1], b"sig"),
        "malformed",
        "not a JSON object",
    ),
    (
        "header-not-an-object",
        lambda i: unsigned("RS256", i.make_claims(now=NOW), b"sig"),
        "malformed",
        "not a JSON object",
    ),
    (
        "deeply-nested-payload",
        lambda i: f"{b64json({'alg': 'RS256'})}.{b64(b'[' * 5000)}.c2ln",
        "malformed",
        "not base64url",
    ),
    ("non-ascii", lambda i: token(i) + "é", "malformed", "non-ASCII"),
    (
        "unencoded-payload-header",
        lambda i: i.sign_with(i.key, "RS256", headers={"b64": False, "crit": ["b64"]}, now=NOW),
        "malformed",
        r"not a valid JWT \(DecodeError\)",
    ),
    (
        "unknown-critical-header",
        lambda i: i.sign_with(i.key, "RS256", headers={"crit": ["exp"], "exp": 1}, now=NOW),
        "malformed",
        "not a valid JWT",
    ),
    (
        "unencoded-payload-header-alone",
        lambda i: i.sign_with(i.key, "RS256", headers={"b64": False}, now=NOW),
        "malformed",
        "names a JWS extension",
    ),
    # Python's base64 decoder drops what is not in its alphabet: each of these would decode to the
    # genuine signature's bytes (PyJWT's GHSA-hxm8-2xgr-2p9m); strictly decoded, none is accepted.
    ("junk-after-the-signature", lambda i: token(i) + "!!!!", "malformed", "signature is not base64url"),
    (
        "junk-inside-the-signature",
        lambda i: _spliced(token(i), -10, "*"),
        "malformed",
        "signature is not base64url",
    ),
    ("standard-alphabet-signature", lambda i: _standard_alphabet(token(i)), "malformed", "not base64url"),
    (
        "non-canonical-last-character",
        lambda i: _noncanonical(token(i)),
        "malformed",
        "signature is not base64url",
    ),
    ("junk-in-the-payload", lambda i: _spliced(token(i), -400, "!"), "malformed", "not base64url"),
]


def _spliced(t: str, at: int, junk: str) -> str:
    return t[:at] + junk + t[at:] if at >= 0 else t[: len(t) + at] + junk + t[len(t) + at :]


def _standard_alphabet(t: str) -> str:
    """The token with its signature in standard base64 (+ and /), forced to hold one of them."""
    head, payload, sig = t.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    standard = base64.b64encode(raw).decode().rstrip("=")
    return f"{head}.{payload}.{standard}" if standard != sig else f"{head}.{payload}.+{sig[1:]}"


def _noncanonical(t: str) -> str:
    """The signature's last character changed in its unused low bits: the same bytes, another string."""
    head, payload, sig = t.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(sig) % 4 in (2, 3), (
        "the last character then carries unused low bits (RSA-2048: 342 characters)"
    )
    return f"{head}.{payload}.{sig[:-1]}{alphabet[alphabet.index(sig[-1]) ^ 1]}"


@pytest.mark.parametrize(("make", "code", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(verifier, issuer, replay, make, code, message):
    with pytest.raises(TokenError, match=message) as info:
        verifier.verify(make(issuer))
    assert (info.value.code, info.value.status) == (code, 401), info.value.message
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert replay.calls == [], "a refused token never reaches the replay store"


@pytest.mark.parametrize(
    "make",
    [r[1] for r in REFUSALS if r[2] != "malformed"],
    ids=[r[0] for r in REFUSALS if r[2] != "malformed"],
)
def test_refusals_never_carry_the_token(verifier, issuer, make):
    bad = make(issuer)
    with pytest.raises(TokenError) as info:
        verifier.verify(bad)
    said = json.dumps([info.value.to_dict(), info.value.unverified_claims], default=str)
    for segment in filter(None, bad.split(".")):
        assert segment[:40] not in said


def test_refusals_keep_the_unverified_claims_for_the_audit(verifier, issuer):
    with pytest.raises(TokenError) as info:
        verifier.verify(token(issuer, aud="someone-else"))
    assert info.value.unverified_claims["repository"] == "octo-org/octo-repo"
    assert info.value.unverified_claims["aud"] == "someone-else"
    assert "jti" not in info.value.unverified_claims


def test_an_oversized_token_is_413_before_anything_else(verifier):
    with pytest.raises(TokenTooLarge, match="20000 bytes; expected at most 16384") as info:
        verifier.verify("a" * 20_000)
    assert (info.value.status, info.value.code) == (413, "token-too-large")
    with pytest.raises(TokenError) as info:
        verifier.verify("a" * 16384)
    assert info.value.code == "malformed"


# --- no network before the issuer is known to be trusted ---------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda i: LocalIssuer(url="https://attacker.example.com").make_token(now=NOW),
        lambda i: LocalIssuer(url="http://127.0.0.1:8080").make_token(now=NOW),
        lambda i: i.sign_with(None, "none", now=NOW, iss="https://attacker.example.com"),
        lambda i: i.make_token(
            now=NOW, iss="https://attacker.example.com", headers={"jku": "https://attacker.example.com/jwks"}
        ),
        lambda i: "not-a-token",
    ],
    ids=["untrusted-issuer", "loopback-issuer", "alg-none-untrusted", "untrusted-with-jku", "malformed"],
)
def test_an_untrusted_token_makes_no_outbound_request(clock, issuer, make):
    verifier = TokenVerifier([issuer.config()], AUDIENCE, replay=MemoryReplay(), clock=lambda: clock[0])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        issuer.serve(rsps)  # the trusted issuer answers, yet nobody asks it
        with pytest.raises(TokenError):
            verifier.verify(make(issuer))
        assert len(rsps.calls) == 0


# --- replay -----------------------------------------------------------------------------------------


def test_a_token_is_accepted_once(verifier, issuer):
    good = token(issuer)
    verifier.verify(good)
    with pytest.raises(TokenError, match="already used; expected a fresh token for every call") as info:
        verifier.verify(good)
    assert info.value.code == "replayed"


def _padded(t: str) -> str:
    signature = t.rsplit(".", 1)[1]
    return t + "=" * (-len(signature) % 4)


def test_pyjwt_accepts_a_padded_signature(tmp_path, issuer):
    """Why replay is keyed on (iss, jti): the same token has more than one accepted spelling."""
    fresh = TokenVerifier(
        [issuer.config(jwks_file=issuer.write_jwks(tmp_path / "k.json"))],
        AUDIENCE,
        replay=MemoryReplay(),
        clock=lambda: NOW,
    )
    good = token(issuer)
    assert _padded(good) != good
    assert fresh.verify(_padded(good)).identity


@pytest.mark.parametrize(
    ("first", "again"),
    [(lambda t: t, _padded), (_padded, lambda t: t)],
    ids=["padded-after-plain", "plain-after-padded"],
)
def test_a_respelled_token_is_still_a_replay(verifier, issuer, first, again):
    good = token(issuer)
    verifier.verify(first(good))
    with pytest.raises(TokenError) as info:
        verifier.verify(again(good))
    assert info.value.code == "replayed"


def test_a_new_token_with_a_used_jti_is_a_replay(verifier, issuer):
    verifier.verify(token(issuer, jti="same"))
    with pytest.raises(TokenError) as info:
        verifier.verify(token(issuer, jti="same", run_attempt="2"))
    assert info.value.code == "replayed"


def test_replay_is_keyed_per_issuer(tmp_path, issuer):
    other = LocalIssuer(url="https://token.actions.githubusercontent.com/octo-enterprise", kid="ent")
    verifier = TokenVerifier(
        [
            issuer.config(jwks_file=issuer.write_jwks(tmp_path / "a.json")),
            other.config(jwks_file=other.write_jwks(tmp_path / "b.json")),
        ],
        AUDIENCE,
        replay=MemoryReplay(),
        clock=lambda: NOW,
    )
    verifier.verify(token(issuer, jti="shared"))
    assert verifier.verify(token(other, jti="shared")).identity.issuer == other.url


def test_a_refused_token_does_not_use_up_its_jti(verifier, issuer):
    with pytest.raises(TokenError):
        verifier.verify(token(issuer, jti="kept", aud="someone-else"))
    assert verifier.verify(token(issuer, jti="kept")).identity


def test_the_replay_record_ends_when_max_age_would_refuse_the_token(verifier, issuer, replay):
    verifier.verify(token(issuer, iat=T - 100, exp=T + 3600))
    assert replay.calls[0][2] == T - 100 + 600 + 60


def test_an_unwritable_replay_store_fails_closed(tmp_path, issuer):
    class BrokenStore:
        def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
            raise Unavailable("the store is down", code="store-unavailable")

    verifier = TokenVerifier(
        [issuer.config(jwks_file=issuer.write_jwks(tmp_path / "k.json"))],
        AUDIENCE,
        replay=BrokenStore(),
        clock=lambda: NOW,
    )
    with pytest.raises(Unavailable) as info:
        verifier.verify(token(issuer))
    assert info.value.code == "store-unavailable"


# --- the system clock: the same checks, on the real clock ---------------------------------------------


@pytest.fixture
def wall_verifier(tmp_path: Path, issuer: LocalIssuer) -> TokenVerifier:
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    return TokenVerifier([issuer.config(jwks_file=jwks)], AUDIENCE, replay=MemoryReplay())


def test_on_the_system_clock_a_fresh_token_is_accepted(wall_verifier, issuer):
    assert wall_verifier.verify(issuer.make_token()).identity


@pytest.mark.parametrize(
    ("claims", "code", "message"),
    [
        ({"exp": -61}, "expired", "the token expired at"),
        ({"nbf": 120}, "not-yet-valid", "not valid before"),
        ({"iat": 120, "nbf": DROP}, "not-yet-valid", "in the future"),
    ],
    ids=["expired", "not-before", "issued-in-the-future"],
)
def test_on_the_system_clock_the_times_are_refused_alike(wall_verifier, issuer, claims, code, message):
    now = int(time.time())
    shifted = {k: (v if v is DROP else now + v) for k, v in claims.items()}
    with pytest.raises(TokenError, match=message) as info:
        wall_verifier.verify(issuer.make_token(now=now, **shifted))
    assert info.value.code == code


def test_on_an_injected_clock_the_gate_alone_checks_the_times(verifier, issuer):
    with pytest.raises(TokenError) as info:
        verifier.verify(token(issuer, exp=T - 61))
    assert info.value.code == "expired" and info.value.__cause__ is None


# --- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuers", "kwargs", "message"),
    [
        ([IssuerConfig(url=ISSUER)], {"leeway": 61}, "leeway must be between 0 and 60 s, got 61"),
        ([IssuerConfig(url=ISSUER)], {"audience": ""}, "audience must not be empty"),
        ([IssuerConfig(url=ISSUER), IssuerConfig(url=ISSUER)], {}, "configured twice"),
        ([IssuerConfig(url="http://token.example.com")], {}, "must be an https URL"),
        (
            [IssuerConfig(url=ISSUER, jwks_url="http://keys.example.com/jwks")],
            {},
            "jwks_url .* must be an https URL",
        ),
        (
            [IssuerConfig(url=ISSUER, jwks_url="https://k/j", jwks_file=Path("j"))],
            {},
            "both jwks_url and jwks_file",
        ),
        ([IssuerConfig(url=ISSUER)], {"refetch_cooldown": 29}, "cooldown must be at least 30 s"),
        ([IssuerConfig(url=ISSUER)], {"fetch_timeout": 6}, r"timeout must be in \(0, 5\] s"),
    ],
    ids=[
        "leeway",
        "audience",
        "duplicate-issuer",
        "http-issuer",
        "http-jwks-url",
        "url-and-file",
        "cooldown",
        "timeout",
    ],
)
def test_unsafe_configuration_is_refused_at_start_up(issuers, kwargs, message):
    audience = kwargs.pop("audience", AUDIENCE)
    with pytest.raises(ConfigError, match=message):
        TokenVerifier(issuers, audience, replay=MemoryReplay(), **kwargs)


def test_check_keys_for_readiness(tmp_path, issuer):
    good = TokenVerifier(
        [issuer.config(jwks_file=issuer.write_jwks(tmp_path / "k.json"))], AUDIENCE, replay=MemoryReplay()
    )
    good.check_keys()
    bad = TokenVerifier([issuer.config(jwks_file=tmp_path / "missing.json")], AUDIENCE, replay=MemoryReplay())
    with pytest.raises(Unavailable, match="cannot be read") as info:
        bad.check_keys()
    assert (info.value.status, info.value.code) == (503, "keys-unavailable")


# --- unverified display claims (for auditing refusals) ------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["garbage", "", "a.b.c", "!!!.@@@.###", None, 42, "x" * 100_000],
    ids=["garbage", "empty", "not-base64-json", "symbols", "none", "int", "huge"],
)
def test_unverified_display_claims_never_raise(value):
    assert unverified_display_claims(value) == {}


def test_unverified_display_claims_show_identity_but_nothing_secret(issuer):
    shown = unverified_display_claims(token(issuer))
    assert shown["repository"] == "octo-org/octo-repo" and shown["actor_id"] == "583231"
    assert "jti" not in shown


def test_unverified_display_claims_are_bounded(issuer):
    shown = unverified_display_claims(
        token(issuer, actor="m" * 5000, repository={"nested": 1}, aud=["a"] * 50, run_id=float("nan"))
    )
    assert len(shown["actor"]) <= 203 and shown["actor"].endswith("...")
    assert shown["repository"] == "<dict>"
    assert len(shown["aud"]) == 5
    assert shown["run_id"] == "nan"


def test_rsa_key_helper_is_shared(issuer):
    assert rsa_key("main") is issuer.key
