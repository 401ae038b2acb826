"""The development issuer: a local key, GitHub-shaped tokens, and a gate in dev mode that trusts them."""

from __future__ import annotations

import json
import stat
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import responses

from app.errors import ConfigError, TokenError
from app.tokens.devissuer import (
    AGENT_PRESET,
    DEV_ISSUER_URL,
    HUMAN_PRESET,
    JWKS_FILE,
    KEY_FILE,
    DevIssuer,
    default_claims,
    jwk_thumbprint,
)
from app.tokens.identity import REQUIRED_CLAIMS
from app.tokens.verify import TokenVerifier
from tests.issuer import LocalIssuer, MemoryReplay

AUDIENCE = "agent-gate"
NOW = 1_790_000_000


@pytest.fixture(scope="module")
def made_key(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """RSA keys are slow to make: one for the module, copied into each test's data dir."""
    issuer = DevIssuer(tmp_path_factory.mktemp("dev-key"))
    issuer.ensure_key()
    return issuer.key_path.read_bytes()


@pytest.fixture
def dev(tmp_path: Path, made_key: bytes) -> DevIssuer:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / KEY_FILE).write_bytes(made_key)
    (data / KEY_FILE).chmod(0o600)
    issuer = DevIssuer(data)
    issuer.ensure_key()
    return issuer


def verifier_for(dev: DevIssuer, now: float = NOW) -> TokenVerifier:
    return TokenVerifier([dev.issuer_config()], AUDIENCE, replay=MemoryReplay(), clock=lambda: now)


def payload(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_its_url_can_never_resolve():
    parts = urlsplit(DEV_ISSUER_URL)
    assert parts.scheme == "https" and parts.hostname is not None and parts.hostname.endswith(".invalid")


def test_ensure_key_makes_a_private_key_and_a_jwks_file(tmp_path):
    dev = DevIssuer(tmp_path / "data")
    dev.ensure_key()
    key_mode = stat.S_IMODE((tmp_path / "data" / KEY_FILE).stat().st_mode)
    dir_mode = stat.S_IMODE((tmp_path / "data").stat().st_mode)
    assert (key_mode, dir_mode) == (0o600, 0o700)
    published = json.loads((tmp_path / "data" / JWKS_FILE).read_text())
    assert published == {"keys": [dev.public_jwk()]}
    assert {"kty", "n", "e", "kid", "use", "alg"} <= set(published["keys"][0]) and "d" not in published[
        "keys"
    ][0]
    assert dev.issuer_config().jwks_file == tmp_path / "data" / JWKS_FILE
    assert dev.issuer_config().jwks_url is None


def test_the_key_is_made_once_and_reused(tmp_path):
    first = DevIssuer(tmp_path)
    first.ensure_key()
    second = DevIssuer(tmp_path)
    second.ensure_key()
    assert first.kid == second.kid
    assert verifier_for(second).verify(first.mint(audience=AUDIENCE, now=NOW)).identity


def test_workers_starting_at_once_end_up_with_one_key(tmp_path):
    issuers = [DevIssuer(tmp_path) for _ in range(4)]
    threads = [threading.Thread(target=i.ensure_key) for i in issuers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i.kid for i in issuers}) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary files left"


RFC7638_EXAMPLE = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
    "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9"
    "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44"
    "-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_the_kid_is_the_rfc7638_thumbprint(dev):
    assert jwk_thumbprint(RFC7638_EXAMPLE) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # RFC 7638, 3.1
    assert dev.kid == jwk_thumbprint(dev.public_jwk()) == DevIssuer(dev.data_dir).kid


def test_a_loose_key_file_is_tightened(dev):
    dev.key_path.chmod(0o644)
    DevIssuer(dev.data_dir).ensure_key()
    assert stat.S_IMODE(dev.key_path.stat().st_mode) == 0o600


def test_an_edited_jwks_file_is_rewritten(dev):
    dev.jwks_path.write_text(json.dumps({"keys": [LocalIssuer().jwk()]}))
    again = DevIssuer(dev.data_dir)
    again.ensure_key()
    assert json.loads(dev.jwks_path.read_text()) == {"keys": [again.public_jwk()]}


def test_a_broken_key_file_says_what_to_do(tmp_path):
    tmp_path.joinpath(KEY_FILE).write_text("not a key")
    with pytest.raises(ConfigError, match=r"cannot be loaded .* delete it and the gate makes a new one"):
        DevIssuer(tmp_path).ensure_key()


# --- minting ---------------------------------------------------------------------------------------


def test_round_trip_through_the_verifier_without_network(dev):
    with responses.RequestsMock() as rsps:
        verified = verifier_for(dev).verify(dev.mint(audience=AUDIENCE, now=NOW))
        assert len(rsps.calls) == 0
    identity = verified.identity
    assert identity.issuer == DEV_ISSUER_URL
    assert (identity.repository, identity.repository_id, identity.repository_owner_id) == (
        "octo-org/octo-repo",
        2000,
        1000,
    )
    assert (identity.actor, identity.actor_id, identity.ref) == ("octocat", 583231, "refs/heads/main")


def test_the_agent_preset_is_the_copilot_coding_agent(dev):
    identity = verifier_for(dev).verify(dev.mint(audience=AUDIENCE, now=NOW, **AGENT_PRESET)).identity
    assert (identity.actor, identity.actor_id) == ("Copilot", 198982749)


def test_tokens_are_github_shaped(dev):
    token = dev.mint(audience=AUDIENCE, now=NOW, ttl=120)
    header = jwt.get_unverified_header(token)
    claims = payload(token)
    assert header == {"alg": "RS256", "kid": dev.kid, "typ": "JWT"}
    assert set(REQUIRED_CLAIMS) <= set(claims)
    assert set(HUMAN_PRESET) <= set(claims)
    assert (claims["iss"], claims["aud"]) == (DEV_ISSUER_URL, AUDIENCE)
    # Times as GitHub sets them: nbf ten minutes before iat.
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (NOW, NOW - 600, NOW + 120)
    # GitHub sends every id as a string.
    for name in ("repository_id", "repository_owner_id", "actor_id", "run_id", "run_number", "run_attempt"):
        assert isinstance(claims[name], str) and claims[name].isdigit(), name
    assert uuid.UUID(claims["jti"])
    assert "environment" not in claims


def test_every_token_has_a_fresh_jti(dev):
    assert len({payload(dev.mint(audience=AUDIENCE))["jti"] for _ in range(5)}) == 5


def test_each_minted_token_is_accepted_once(dev):
    verifier = verifier_for(dev)
    token = dev.mint(audience=AUDIENCE, now=NOW)
    verifier.verify(token)
    with pytest.raises(TokenError) as info:
        verifier.verify(token)
    assert info.value.code == "replayed"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"sub": "repo:octo-org/octo-repo:ref:refs/heads/main"}),
        (
            {"environment": "production"},
            {"sub": "repo:octo-org/octo-repo:environment:production", "environment": "production"},
        ),
        (
            {"event_name": "pull_request", "ref": "refs/pull/12/merge"},
            {"sub": "repo:octo-org/octo-repo:pull_request", "ref": "refs/pull/12/merge"},
        ),
        (
            {"repository": "acme/rockets", "repository_id": "3000"},
            {"sub": "repo:acme/rockets:ref:refs/heads/main", "repository_owner": "acme"},
        ),
        (
            {"sub": "repo:octo-org@1000/octo-repo@2000:ref:refs/heads/main"},
            {"sub": "repo:octo-org@1000/octo-repo@2000:ref:refs/heads/main"},
        ),
        ({"head_ref": None}, {}),
    ],
    ids=[
        "default-subject",
        "environment-subject",
        "pull-request-subject",
        "other-repository",
        "explicit-subject",
        "none-drops",
    ],
)
def test_overrides_set_replace_or_drop_claims(overrides, expected):
    claims = default_claims(audience=AUDIENCE, now=NOW, **overrides)
    assert {k: claims.get(k) for k in expected} == expected
    if overrides.get("head_ref", "") is None:
        assert "head_ref" not in claims


def test_a_token_from_another_data_dir_is_not_trusted(dev, tmp_path):
    stranger = DevIssuer(tmp_path / "elsewhere")
    with pytest.raises(TokenError) as info:
        verifier_for(dev).verify(stranger.mint(audience=AUDIENCE, now=NOW))
    assert info.value.code == "unknown-key"


def test_the_test_issuer_shares_the_dev_issuers_defaults():
    local = LocalIssuer().make_claims(now=NOW)
    dev = default_claims(audience=AUDIENCE, now=NOW)
    different = {k for k in set(local) | set(dev) if local.get(k) != dev.get(k)}
    assert different == {"iss", "jti"}
