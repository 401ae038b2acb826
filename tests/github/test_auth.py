"""GitHub App authentication: the App JWT, the installation, installation tokens (``responses``)."""

from __future__ import annotations

import json
import logging

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from app.errors import ConfigError, GitHubError
from app.github.auth import AppAuth
from app.github.client import GitHubClient
from app.github.config import GitHubAppConfig
from tests.fake_github import example
from tests.github.conftest import app_key_pem, github_settings
from tests.issuer import rsa_key

API = "https://api.github.test"
NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z
IN_AN_HOUR = "2026-09-21T15:13:20Z"
# GitHub is rolling out a new token format: the client must take any opaque string.
TOKEN = "opaque-" + "x" * 300
INSTALLATION = f"{API}/repos/octo-org/octo-repo/installation"
ACCESS_TOKENS = f"{API}/app/installations/77/access_tokens"


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def client(clock: list[float]) -> GitHubClient:
    return GitHubClient(github_settings(API), clock=lambda: clock[0])


def installation(rsps: responses.RequestsMock, installation_id: int = 77) -> None:
    body = example("apps/get-repo-installation")
    body["id"] = installation_id
    rsps.get(INSTALLATION, json=body)


def token_answer(
    token: str = TOKEN, expires_at: str = IN_AN_HOUR, permissions: dict[str, str] | None = None
) -> dict[str, object]:
    body = example("apps/create-installation-access-token", "201")
    body.update({"token": token, "expires_at": expires_at, "permissions": permissions or {"checks": "write"}})
    return dict(body)


def access_tokens(rsps: responses.RequestsMock, **answer: object) -> None:
    rsps.post(ACCESS_TOKENS, json=token_answer(**answer), status=201)  # type: ignore[arg-type]


# --- the App JWT -------------------------------------------------------------------------------------


def test_the_app_jwt_is_rs256_short_lived_and_back_dated():
    token = AppAuth(42, SecretStr(app_key_pem()), clock=lambda: NOW).app_jwt().get_secret_value()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token,
        rsa_key("github-app").public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"iss": "42", "iat": int(NOW) - 60, "exp": int(NOW) + 540}
    assert claims["exp"] - NOW <= 600, "GitHub refuses an exp more than 10 minutes ahead"


@pytest.mark.parametrize(
    "pem",
    [
        "not a key at all",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode(),
    ],
    ids=["garbage", "truncated-pem", "ec-key-not-rsa"],
)
def test_an_unusable_private_key_stops_the_start_up_without_quoting_it(pem):
    with pytest.raises(ConfigError, match="private key") as caught:
        AppAuth(42, SecretStr(pem))
    assert "BEGIN" not in caught.value.message and "AAAA" not in caught.value.message
    assert "not a key at all" not in caught.value.message


@pytest.mark.parametrize(
    ("api_url", "accepted"),
    [
        ("https://api.github.com", "https://api.github.com"),
        ("https://ghes.example.com/api/v3/", "https://ghes.example.com/api/v3"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://ghes.example.com/api/v3", None),
        ("ftp://api.github.com", None),
    ],
    ids=["github-com", "ghes-trailing-slash", "http-loopback-for-tests", "http-elsewhere", "not-http"],
)
def test_the_api_url_must_keep_tokens_off_the_network_in_clear(api_url, accepted):
    if accepted is None:
        with pytest.raises(ValueError, match="expected an https URL"):
            GitHubAppConfig(app_id=1, private_key=SecretStr("k"), api_url=api_url)
    else:
        assert GitHubAppConfig(app_id=1, private_key=SecretStr("k"), api_url=api_url).api_url == accepted


# --- the installation ------------------------------------------------------------------------------


@responses.activate
def test_the_installation_is_looked_up_with_the_app_jwt_and_cached_for_its_ttl(client, clock):
    installation(responses.mock)
    assert client.installation_id("octo-org/octo-repo") == 77
    assert client.installation_id("Octo-Org/Octo-Repo") == 77, "repository names are case-insensitive"
    assert len(responses.calls) == 1
    bearer = responses.calls[0].request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        bearer, rsa_key("github-app").public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["iss"] == "42", "an App JWT, not an installation token"
    clock[0] += client.config.installation_ttl + 1
    client.installation_id("octo-org/octo-repo")
    assert len(responses.calls) == 2, "looked up again once the TTL passed"


@responses.activate
def test_an_app_not_installed_on_the_repository_says_so(client):
    responses.get(INSTALLATION, status=404, json={"message": "Not Found"})
    with pytest.raises(GitHubError, match=r"not installed on octo-org/octo-repo; install it") as caught:
        client.installation_id("octo-org/octo-repo")
    assert caught.value.code == "github-app-not-installed" and caught.value.status == 503


@responses.activate
def test_bad_app_credentials_say_what_to_check(client):
    responses.get(INSTALLATION, status=401, json={"message": "A JSON web token could not be decoded"})
    with pytest.raises(
        GitHubError, match="check GATE_GITHUB_APP_ID, the App's private key and the gate's clock"
    ):
        client.installation_id("octo-org/octo-repo")


# --- installation tokens ----------------------------------------------------------------------------


@responses.activate
def test_a_token_is_cached_until_shortly_before_it_expires(client, clock):
    installation(responses.mock)
    access_tokens(responses.mock)
    first = client.installation_token("octo-org/octo-repo")
    assert first.token.get_secret_value() == TOKEN, "taken as GitHub gave it, whatever its shape"
    assert first.expires_at.timestamp() == NOW + 3600
    clock[0] += 3600 - 301
    assert client.installation_token("octo-org/octo-repo") is first
    clock[0] += 2  # now within the 5-minute margin
    assert client.installation_token("octo-org/octo-repo") is not first
    # The installation id (15-minute TTL) was looked up again too, before the second token.
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "GET", "POST"]


@responses.activate
def test_down_scoped_tokens_carry_exactly_what_was_asked_and_are_never_cached(client):
    installation(responses.mock)
    access_tokens(responses.mock, permissions={"contents": "read", "metadata": "read"})
    for _ in range(2):
        token = client.installation_token(
            "octo-org/octo-repo", repository_ids=[2000], permissions={"contents": "read"}
        )
    assert token.repository_ids == (2000,)
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 2
    assert json.loads(posts[0].request.body) == {
        "repository_ids": [2000],
        "permissions": {"contents": "read"},
    }


@pytest.mark.parametrize(
    ("asked", "granted", "refused"),
    [
        ({"contents": "read"}, {"contents": "read", "metadata": "read"}, False),
        ({"contents": "write"}, {"contents": "read"}, False),
        ({"contents": "read"}, {"contents": "write"}, True),
        ({"contents": "read"}, {"contents": "read", "administration": "write"}, True),
        ({"contents": "read"}, {"contents": "read", "metadata": "write"}, True),
    ],
    ids=["as-asked-plus-metadata", "narrower", "higher-level", "extra-permission", "metadata-write"],
)
@responses.activate
def test_a_token_broader_than_asked_is_revoked_and_refused(client, asked, granted, refused):
    installation(responses.mock)
    access_tokens(responses.mock, permissions=granted)
    responses.delete(f"{API}/installation/token", status=204)
    if not refused:
        client.installation_token("octo-org/octo-repo", repository_ids=[2000], permissions=asked)
        return
    with pytest.raises(GitHubError, match="broader than asked") as caught:
        client.installation_token("octo-org/octo-repo", repository_ids=[2000], permissions=asked)
    assert caught.value.code == "github-token-too-broad"
    [revocation] = [c for c in responses.calls if c.request.method == "DELETE"]
    assert revocation.request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_a_gone_installation_is_looked_up_again(client):
    installation(responses.mock)
    responses.post(ACCESS_TOKENS, status=404, json={"message": "Not Found"})
    with pytest.raises(GitHubError, match="installation 77 is gone; re-install the App"):
        client.installation_token("octo-org/octo-repo")
    installation(responses.mock, installation_id=78)
    responses.post(f"{API}/app/installations/78/access_tokens", json=token_answer(), status=201)
    assert client.installation_token("octo-org/octo-repo").installation_id == 78


@responses.activate
def test_a_refused_cached_token_is_replaced_once(client):
    installation(responses.mock)
    access_tokens(responses.mock, token="first")
    access_tokens(responses.mock, token="second")
    url = f"{API}/repos/octo-org/octo-repo/pulls/12"
    responses.get(url, status=401, json={"message": "Bad credentials"})
    responses.get(url, json={"number": 12})
    assert client.get_json(
        "octo-org/octo-repo", "/repos/octo-org/octo-repo/pulls/12", what="reading PR #12"
    ) == {"number": 12}
    used = [c.request.headers["Authorization"] for c in responses.calls if c.request.url == url]
    assert used == ["Bearer first", "Bearer second"]


@responses.activate
def test_revoking_is_idempotent_and_drops_the_cached_token(client):
    installation(responses.mock)
    access_tokens(responses.mock)
    responses.delete(f"{API}/installation/token", status=204)
    responses.delete(f"{API}/installation/token", status=401, json={"message": "Bad credentials"})
    token = client.installation_token("octo-org/octo-repo")
    client.revoke_installation_token(token.token)
    client.revoke_installation_token(token.token)  # already revoked: not an error
    deletes = [c for c in responses.calls if c.request.method == "DELETE"]
    assert [d.request.headers["Authorization"] for d in deletes] == [f"Bearer {TOKEN}"] * 2
    client.installation_token("octo-org/octo-repo")
    assert sum(1 for c in responses.calls if c.request.method == "POST") == 2, "a revoked token is not reused"


@responses.activate
def test_a_failed_revocation_is_an_error(client):
    responses.delete(f"{API}/installation/token", status=500)
    with pytest.raises(GitHubError, match="answered 500 while revoking an installation token"):
        client.revoke_installation_token(SecretStr("t"))


# --- secrets -----------------------------------------------------------------------------------------


@responses.activate
def test_keys_and_tokens_never_appear_in_reprs_errors_or_logs(client, caplog):
    installation(responses.mock)
    access_tokens(responses.mock)
    responses.get(f"{API}/repos/octo-org/octo-repo/pulls/12", status=500, json={"message": "boom"})
    # Debug everywhere (urllib3 too); the gate's own logger may have been set to INFO by an app factory.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="agent_gate"):
        token = client.installation_token("octo-org/octo-repo")
        with pytest.raises(GitHubError) as caught:
            client.get_json("octo-org/octo-repo", "/repos/octo-org/octo-repo/pulls/12", what="reading PR #12")
        credential = client.auth.credential("octo-org/octo-repo")
    key = app_key_pem()
    shown = " ".join(
        [
            repr(token),
            str(token),
            repr(credential),
            repr(client),
            repr(client.config),
            repr(client.auth),
            str(caught.value),
            json.dumps(caught.value.to_dict()),
            caplog.text,
        ]
    )
    assert TOKEN not in shown and "opaque-" not in shown
    assert "PRIVATE KEY" not in shown and key.splitlines()[1] not in shown
    assert "Bearer" not in caplog.text
    assert "GitHub GET" in caplog.text, "requests are logged, without their headers"
