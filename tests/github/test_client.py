"""The GitHub App client in isolation (responses): tokens, secrets, pagination limits, revocation."""

from __future__ import annotations

import logging

import jwt
import pytest
import responses
from pydantic import SecretStr

from app.errors import GitHubError
from app.github.auth import AppAuth
from app.github.client import MAX_PAGES, GitHubClient
from tests.github.conftest import app_key_pem, github_settings
from tests.issuer import rsa_key

API = "https://api.github.test"
NOW = 1_790_000_000.0


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def client(clock) -> GitHubClient:
    return GitHubClient(github_settings(API), clock=lambda: clock[0], backoff=0)


def _installation(rsps: responses.RequestsMock, expires: str = "2026-09-21T15:13:20Z") -> None:
    rsps.get(f"{API}/repos/o/r/installation", json={"id": 5})
    rsps.post(
        f"{API}/app/installations/5/access_tokens",
        json={
            "token": "opaque-token-of-any-shape",
            "expires_at": expires,
            "permissions": {"checks": "write"},
        },
        status=201,
    )


def test_app_jwt_is_short_lived_and_back_dated():
    token = AppAuth(42, SecretStr(app_key_pem()), clock=lambda: NOW).app_jwt()
    claims = jwt.decode(
        token,
        rsa_key("github-app").public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == "42"
    assert claims["iat"] == NOW - 60 and claims["exp"] - claims["iat"] <= 600


@responses.activate
def test_installation_token_is_cached_until_shortly_before_it_expires(client, clock):
    _installation(responses.mock, expires="2026-09-21T15:13:20Z")  # NOW + 1 h
    first = client.installation_token("o/r")
    assert client.installation_token("o/r") is first
    clock[0] += 3600 - 200  # within the refresh margin
    client.installation_token("o/r")
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "POST"]


@responses.activate
def test_down_scoped_tokens_are_never_cached_and_carry_exactly_what_was_asked(client):
    _installation(responses.mock)
    client.installation_token("o/r", repository_ids=[2000], permissions={"contents": "read"})
    client.installation_token("o/r", repository_ids=[2000], permissions={"contents": "read"})
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 2
    assert posts[0].request.body == b'{"repository_ids": [2000], "permissions": {"contents": "read"}}'


@responses.activate
def test_secrets_never_appear_in_reprs_or_logs(client, caplog):
    _installation(responses.mock)
    with caplog.at_level(logging.DEBUG):
        token = client.installation_token("o/r")
    assert "opaque-token" not in repr(token) and "opaque-token" not in repr(client)
    assert "PRIVATE KEY" not in repr(client)
    assert "opaque-token" not in caplog.text


@responses.activate
def test_pagination_has_a_cap_and_fails_closed(client):
    _installation(responses.mock)
    url = f"{API}/repos/o/r/pulls/1/reviews"
    responses.get(url, json=[{"id": 1}], headers={"Link": f'<{url}?page=2>; rel="next"'})
    with pytest.raises(GitHubError, match=f"more than {MAX_PAGES} pages"):
        client.paginate("o/r", "/repos/o/r/pulls/1/reviews", what="listing reviews")


@responses.activate
def test_revoking_a_token_is_idempotent(client):
    responses.delete(f"{API}/installation/token", status=204)
    responses.delete(f"{API}/installation/token", status=401)
    client.revoke_installation_token(SecretStr("t"))
    client.revoke_installation_token(SecretStr("t"))
    assert len(responses.calls) == 2


@responses.activate
def test_bad_app_credentials_say_what_to_check(client):
    responses.get(f"{API}/repos/o/r/installation", status=401, json={"message": "Bad credentials"})
    with pytest.raises(GitHubError, match="check the App id, its private key"):
        client.installation_id("o/r")


@responses.activate
def test_posts_are_never_retried(client):
    responses.get(f"{API}/repos/o/r/installation", json={"id": 5})
    responses.post(f"{API}/app/installations/5/access_tokens", status=502)
    with pytest.raises(GitHubError, match="GitHub answered 502"):
        client.installation_token("o/r")
    assert sum(1 for c in responses.calls if c.request.method == "POST") == 1
