"""The GitHub client's HTTP hygiene: headers, retries, rate limits, pagination, ETags, caches.

Most cases use ``responses`` (the real client code, a mocked transport); the ones that depend on
urllib3 actually retrying or timing out run against a socket on loopback.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests
import responses
from pydantic import SecretStr

from app.errors import GitHubError, GitHubNotFound
from app.github.client import GitHubClient
from app.github.protocol import Credential
from app.github.transport import API_VERSION
from tests.fake_github import Failure, Scenario, start_fake_github
from tests.github.conftest import github_settings

API = "https://api.github.test"
NOW = 1_790_000_000.0
REPO = "octo-org/octo-repo"
PULL = f"{API}/repos/{REPO}/pulls/12"
REVIEWS = f"{API}/repos/{REPO}/pulls/12/reviews"


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def client(clock: list[float]) -> GitHubClient:
    return GitHubClient(github_settings(API), clock=lambda: clock[0])


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """``responses`` with the installation and its token already answered."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/repos/{REPO}/installation", json={"id": 77})
        mock.post(
            f"{API}/app/installations/77/access_tokens",
            json={"token": "installation-token", "expires_at": "2026-09-21T15:13:20Z"},
            status=201,
        )
        yield mock


def api_calls(mock: responses.RequestsMock, url: str) -> list[responses.Call]:
    return [c for c in mock.calls if c.request.url.split("?")[0] == url]


def read_pull(client: GitHubClient) -> object:
    return client.get_json(REPO, f"/repos/{REPO}/pulls/12", what="reading PR #12")


# --- requests ----------------------------------------------------------------------------------------


def test_every_request_names_the_api_version_and_the_installation_token(client, rsps):
    rsps.get(PULL, json={"number": 12})
    read_pull(client)
    [call] = api_calls(rsps, PULL)
    headers = call.request.headers
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == API_VERSION == "2022-11-28"
    assert headers["User-Agent"].startswith("agent-gate")
    assert headers["Authorization"] == "Bearer installation-token"


def test_proxy_and_ca_settings_are_read_once_at_start_up(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp-ca.pem")
    session = GitHubClient(github_settings("https://ghes.example.com/api/v3")).http._session
    assert session.trust_env is False, "no per-call scan of the environment"
    assert session.proxies == {"https": "http://proxy.internal:3128"}
    assert session.verify == "/etc/ssl/corp-ca.pem"
    monkeypatch.setenv("NO_PROXY", "ghes.example.com")
    bypassed = GitHubClient(github_settings("https://ghes.example.com/api/v3")).http._session
    assert bypassed.proxies == {}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_idempotent_gets_are_retried_on_server_errors(client, rsps, status):
    rsps.get(PULL, status=status)
    rsps.get(PULL, json={"number": 12})
    assert read_pull(client) == {"number": 12}
    assert len(api_calls(rsps, PULL)) == 2


def test_retries_are_bounded_then_the_error_says_so(client, rsps):
    rsps.get(PULL, status=502)
    with pytest.raises(
        GitHubError, match=r"GitHub answered 502 while reading PR #12 \(after 3 attempts\)"
    ) as e:
        read_pull(client)
    assert e.value.code == "github-unavailable" and e.value.status == 503
    assert len(api_calls(rsps, PULL)) == 3


def test_posts_are_never_retried(client, rsps):
    rsps.post(f"{API}/repos/{REPO}/check-runs", status=502)
    with pytest.raises(GitHubError, match="GitHub answered 502 while creating check run"):
        client.create_check_run(REPO, {"name": "agent-gate / deploy", "head_sha": "a" * 40})
    assert len(api_calls(rsps, f"{API}/repos/{REPO}/check-runs")) == 1


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error", "code", "message"),
    [
        (404, {"message": "Not Found"}, GitHubNotFound, "github-not-found", "answered 404"),
        (
            401,
            {"message": "Bad credentials"},
            GitHubError,
            "github-unauthorized",
            "refused the App's credentials",
        ),
        (
            403,
            {"message": "Resource not accessible by integration"},
            GitHubError,
            "github-forbidden",
            r"refused access \(403: Resource not accessible by integration\).*docs/github-app.md",
        ),
        (
            422,
            {"message": "Validation Failed"},
            GitHubError,
            "github-unavailable",
            r"answered 422: Validation Failed",
        ),
        (301, {"message": "Moved Permanently"}, GitHubError, "github-unavailable", "redirected"),
    ],
    ids=["not-found", "unauthorized", "forbidden-not-rate-limited", "unprocessable", "moved-not-followed"],
)
def test_github_errors_become_gate_errors_with_a_reason(client, rsps, status, body, error, code, message):
    rsps.get(PULL, status=status, json=body)
    rsps.get(PULL, status=status, json=body)  # the one retry with a fresh token after a 401
    with pytest.raises(error, match=message) as caught:
        read_pull(client)
    assert caught.value.code == code and caught.value.status == 503


def test_an_answer_that_is_not_json_is_an_error(client, rsps):
    rsps.get(PULL, body="<html>a proxy error page</html>")
    with pytest.raises(GitHubError, match="was not JSON while reading PR #12"):
        read_pull(client)


# --- rate limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "message", "wait"),
    [
        (403, {"Retry-After": "30"}, "You have exceeded a secondary rate limit", 30),
        (429, {"Retry-After": "5"}, "Too many requests", 5),
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)},
            "API rate limit exceeded",
            120,
        ),
        (403, {}, "You have exceeded a secondary rate limit. Please wait", 60),
        (429, {}, "", 60),
    ],
    ids=["secondary-retry-after", "429-retry-after", "primary-reset", "secondary-no-headers", "429-bare"],
)
def test_rate_limits_stop_at_once_and_say_when_to_come_back(
    client, rsps, clock, status, headers, message, wait
):
    rsps.get(PULL, status=status, headers=headers, json={"message": message})
    with pytest.raises(GitHubError, match=f"rate limit was reached .*retry after {wait} s") as caught:
        read_pull(client)
    assert caught.value.code == "github-rate-limited" and caught.value.retry_after == wait
    assert caught.value.headers == {"Retry-After": str(wait)}
    assert len(api_calls(rsps, PULL)) == 1, "never retried"


def test_after_a_rate_limit_the_client_does_not_call_github_until_the_wait_is_over(client, rsps, clock):
    rsps.get(PULL, status=403, headers={"Retry-After": "30"}, json={"message": "secondary rate limit"})
    rsps.get(PULL, json={"number": 12})
    with pytest.raises(GitHubError):
        read_pull(client)
    clock[0] += 20
    with pytest.raises(GitHubError, match="not calling GitHub for 10 s") as caught:
        read_pull(client)
    assert caught.value.retry_after == 10
    assert len(api_calls(rsps, PULL)) == 1, "refused without a request"
    clock[0] += 10
    assert read_pull(client) == {"number": 12}


def test_a_server_error_with_retry_after_is_not_retried_early(client, rsps):
    rsps.get(PULL, status=503, headers={"Retry-After": "20"}, json={"message": "maintenance"})
    with pytest.raises(GitHubError, match="asked to come back in 20 s") as caught:
        read_pull(client)
    assert caught.value.retry_after == 20 and len(api_calls(rsps, PULL)) == 1


# --- pagination --------------------------------------------------------------------------------------


def test_lists_follow_link_headers_100_a_page(client, rsps):
    pages = [[{"id": i} for i in range(n, n + 100)] for n in (0, 100)] + [[{"id": 200}]]
    for number, items in enumerate(pages, start=1):
        link = {"Link": f'<{REVIEWS}?per_page=100&page={number + 1}>; rel="next"'} if number < 3 else {}
        rsps.get(REVIEWS, json=items, headers=link, match=[_page(number)])
    items = client.get_all(REPO, f"/repos/{REPO}/pulls/12/reviews", what="listing the reviews of PR #12")
    assert [i["id"] for i in items] == list(range(201))
    assert "per_page=100" in api_calls(rsps, REVIEWS)[0].request.url


def test_a_full_last_page_answered_304_is_fetched_again_in_case_the_list_grew(client, rsps):
    full = [{"id": i} for i in range(100)]
    rsps.get(REVIEWS, json=full, headers={"ETag": '"p1"'}, match=[_page(1)])
    rsps.get(REVIEWS, status=304, headers={"ETag": '"p1"'}, match=[_page(1)])
    link = {"ETag": '"p1"', "Link": f'<{REVIEWS}?per_page=100&page=2>; rel="next"'}
    rsps.get(REVIEWS, json=full, headers=link, match=[_page(1)])
    rsps.get(REVIEWS, json=[{"id": 100}], match=[_page(2)])
    path = f"/repos/{REPO}/pulls/12/reviews"
    assert len(client.get_all(REPO, path, what="listing reviews")) == 100
    assert len(client.get_all(REPO, path, what="listing reviews")) == 101
    sent = [c.request.headers.get("If-None-Match") for c in api_calls(rsps, REVIEWS)]
    assert sent == [None, '"p1"', None, None], "the re-fetch is unconditional"


def test_a_list_longer_than_the_page_cap_fails_closed(client, rsps):
    rsps.get(REVIEWS, json=[{"id": 1}], headers={"Link": f'<{REVIEWS}?page=2>; rel="next"'})
    with pytest.raises(
        GitHubError, match=r"more than 30 pages of 100 .* does not decide on part of a list"
    ) as e:
        client.get_all(REPO, f"/repos/{REPO}/pulls/12/reviews", what="listing the reviews of PR #12")
    assert e.value.code == "github-list-too-long"
    assert len(api_calls(rsps, REVIEWS)) == 30


def test_a_next_link_to_another_host_is_never_followed(client, rsps):
    rsps.get(REVIEWS, json=[{"id": 1}], headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'})
    with pytest.raises(GitHubError, match=r"next-page link left https://api\.github\.test"):
        client.get_all(REPO, f"/repos/{REPO}/pulls/12/reviews", what="listing reviews")
    assert not [c for c in rsps.calls if "evil.example" in c.request.url]


# --- conditional requests ----------------------------------------------------------------------------


def test_a_304_is_served_from_the_etag_cache_and_counted(client, rsps):
    rsps.get(PULL, json={"number": 12}, headers={"ETag": 'W/"v1"'})
    rsps.get(PULL, status=304, headers={"ETag": 'W/"v1"'})
    before = client.calls
    assert read_pull(client) == {"number": 12}
    assert read_pull(client) == {"number": 12}
    first, second = api_calls(rsps, PULL)
    assert "If-None-Match" not in first.request.headers
    assert second.request.headers["If-None-Match"] == 'W/"v1"'
    assert client.not_modified == 1
    assert client.calls - before == 4, "installation, token, 200, 304: a 304 is still a request"


def test_the_etag_cache_is_kept_per_credential_scope(client, rsps):
    rsps.get(PULL, json={"number": 12}, headers={"ETag": '"v1"'})
    http = client.http
    one, other = Credential("installation:1", SecretStr("a")), Credential("installation:2", SecretStr("b"))
    http.request("GET", f"/repos/{REPO}/pulls/12", credential=one, what="x", conditional=True)
    http.request("GET", f"/repos/{REPO}/pulls/12", credential=other, what="x", conditional=True)
    http.request("GET", f"/repos/{REPO}/pulls/12", credential=one, what="x", conditional=True)
    sent = [c.request.headers.get("If-None-Match") for c in api_calls(rsps, PULL)]
    assert sent == [None, None, '"v1"']


def test_the_etag_cache_is_bounded_by_size(clock, rsps):
    small = GitHubClient(github_settings(API, etag_cache_bytes=1024), clock=lambda: clock[0])
    rsps.get(PULL, json={"body": "x" * 2000}, headers={"ETag": '"big"'})
    read_pull(small)
    read_pull(small)
    assert all("If-None-Match" not in c.request.headers for c in api_calls(rsps, PULL))


# --- caches of stable facts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permission", "role_name", "shown"),
    [
        ("admin", "admin", "admin"),
        ("write", "maintain", "maintain"),
        ("write", "write", "write"),
        ("read", "triage", "triage"),
        ("write", "security-engineer", "write"),
        ("read", "write", "read"),
        ("none", "none", "none"),
    ],
    ids=["admin", "maintain", "write", "triage", "custom-role-uses-base", "inconsistent-uses-base", "none"],
)
def test_permission_is_the_built_in_role_or_the_base_permission(client, rsps, permission, role_name, shown):
    rsps.get(
        f"{API}/repos/{REPO}/collaborators/bob/permission",
        json={"permission": permission, "role_name": role_name, "user": None},
    )
    assert client.collaborator_permission(REPO, "bob") == shown


def test_permissions_are_cached_for_the_fact_ttl(client, rsps, clock):
    url = f"{API}/repos/{REPO}/collaborators/bob/permission"
    rsps.get(url, json={"permission": "write", "role_name": "write"})
    assert client.collaborator_permission(REPO, "bob") == "write"
    assert client.collaborator_permission(REPO, "Bob") == "write"
    assert len(api_calls(rsps, url)) == 1
    clock[0] += client.config.fact_ttl + 1
    client.collaborator_permission(REPO, "bob")
    assert len(api_calls(rsps, url)) == 2, "re-checked once the TTL passed"


@pytest.mark.parametrize(
    ("status", "body", "member"),
    [
        (200, {"state": "active", "role": "member"}, True),
        (200, {"state": "pending", "role": "member"}, False),
        (404, {"message": "Not Found"}, False),
    ],
    ids=["active", "pending-invitation", "not-a-member"],
)
def test_team_membership_counts_only_when_active_and_is_cached(client, rsps, clock, status, body, member):
    url = f"{API}/orgs/octo-org/teams/release-managers/memberships/bob"
    rsps.get(url, status=status, json=body)
    assert client.is_active_team_member(REPO, "octo-org", "release-managers", "bob") is member
    assert client.is_active_team_member(REPO, "octo-org", "release-managers", "bob") is member
    assert len(api_calls(rsps, url)) == 1


def test_calls_are_counted_per_thread(client, rsps):
    rsps.get(PULL, json={"number": 12})
    before = client.calls
    worker = threading.Thread(target=read_pull, args=(client,))
    worker.start()
    worker.join()
    assert client.calls == before, "another thread's requests are its own decision's"


# --- over real sockets -------------------------------------------------------------------------------


def test_a_dropped_connection_is_retried():
    """A server that closes the first connection without answering, then answers."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        answered: list[bytes] = []

        def serve() -> None:
            first, _ = server.accept()
            first.recv(65536)
            first.close()
            second, _ = server.accept()
            answered.append(second.recv(65536))
            body = b'{"number": 12}'
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            second.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
            second.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = GitHubClient(github_settings(f"http://127.0.0.1:{port}"))
        reply = client.http.request(
            "GET", "/x", credential=Credential("app", SecretStr("t")), what="reading x"
        )
        thread.join(5)
    assert reply.data == {"number": 12} and len(answered) == 1
    assert client.calls == 2, "the retry counts as a request"


def test_a_read_timeout_is_not_retried_and_names_the_wait():
    scenario = Scenario()
    scenario.failures.append(Failure.slow(r"/installation$", 1.0, times=5))
    url, server = start_fake_github(scenario)
    try:
        client = GitHubClient(github_settings(url, timeout=0.2))
        with pytest.raises(GitHubError, match=r"did not answer in time \(0.2 s\) while finding the App's"):
            client.installation_id(REPO)
        assert scenario.failures[0].times == 4, "exactly one request reached GitHub"
    finally:
        server.close()


def test_an_unreachable_github_is_a_clear_503():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = GitHubClient(github_settings(f"http://127.0.0.1:{port}", retries=1))
    with pytest.raises(
        GitHubError, match=r"could not be reached at http://127.0.0.1:\d+ while reading x"
    ) as e:
        client.http.request("GET", "/x", credential=Credential("app", SecretStr("t")), what="reading x")
    assert e.value.status == 503 and isinstance(e.value.__cause__, requests.ConnectionError)


def _page(number: int) -> object:
    expected = {"per_page": "100"} if number == 1 else {"per_page": "100", "page": str(number)}
    return responses.matchers.query_param_matcher(expected)
