"""The decision deadline: GitHub calls are shortened to the time left and refused past it; a decision
that could not be made is a 503 in the error shape and an audit record, never a silent gap."""

from __future__ import annotations

import pytest
import responses

from app.errors import GitHubError
from app.github.client import GitHubClient
from app.observe import deadline
from tests.fake_github import Failure, FakeGitHub
from tests.github.conftest import base_scenario, github_settings

API = "https://api.github.test"
REPO = "octo-org/octo-repo"
PULL = f"{API}/repos/{REPO}/pulls/12"


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/repos/{REPO}/installation", json={"id": 77})
        mock.post(
            f"{API}/app/installations/77/access_tokens",
            json={"token": "installation-token", "expires_at": "2026-09-21T15:13:20Z"},
            status=201,
        )
        mock.get(PULL, json={"number": 12})
        yield mock


def _read(client: GitHubClient) -> object:
    return client.get_json(REPO, f"/repos/{REPO}/pulls/12", what="reading PR #12")


def test_past_the_deadline_no_github_call_is_started(rsps):
    client = GitHubClient(github_settings(API))
    token = deadline.bind(-1.0)
    try:
        with pytest.raises(GitHubError) as info:
            _read(client)
    finally:
        deadline.reset(token)
    assert info.value.code == "decision-deadline" and info.value.status == 503
    assert "decision was not made" in info.value.message
    assert not rsps.calls


def test_each_github_call_waits_at_most_the_time_left(rsps):
    client = GitHubClient(github_settings(API))
    token = deadline.bind(2.0)
    try:
        _read(client)
    finally:
        deadline.reset(token)
    timeouts = [call.request.req_kwargs["timeout"] for call in rsps.calls]
    assert timeouts and all(read <= 2.0 and connect <= 2.0 for connect, read in timeouts)


def test_outside_a_decision_calls_keep_their_own_timeout(rsps):
    _read(GitHubClient(github_settings(API)))
    assert all(call.request.req_kwargs["timeout"][1] > 2.0 for call in rsps.calls)


def test_a_decision_gathers_evidence_under_its_deadline(ask, evidence_source, settings, monkeypatch):
    seen = []
    original = evidence_source.gather

    def gather(*args, **kwargs):
        seen.append(deadline.remaining())
        return original(*args, **kwargs)

    monkeypatch.setattr(evidence_source, "gather", gather)
    ask({"action": "deploy", "environment": "production"}, agent=True, environment="production")
    assert seen and 0 < seen[0] <= settings.decision_deadline
    assert deadline.remaining() is None  # unbound after the request


def test_a_decision_not_made_is_a_503_and_an_audit_record(app, client, mint, evidence_source):
    evidence_source.error = GitHubError("ran out of time", code="decision-deadline", retry_after=5)
    token = mint(agent=True, environment="production")
    answer = client.post(
        "/v1/decisions",
        json={"action": "deploy", "environment": "production"},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "slow-github-1"},
    )
    assert answer.status_code == 503
    assert answer.get_json()["errors"][0]["code"] == "decision-deadline"
    record = list(app.extensions["agent_gate"].store.iter_audit())[-1]
    assert record.kind == "decision-not-made"
    assert record.payload["code"] == "decision-deadline" and record.payload["delivered"] is False
    assert record.payload["request_id"] == "slow-github-1" and record.payload["token_sha256"]


@pytest.mark.parametrize(
    ("deadline_seconds", "code", "message"),
    [
        pytest.param(
            0.5, "decision-deadline", "ran out of time while reading PR #12", id="cut-by-the-deadline"
        ),
        pytest.param(None, "github-unavailable", "did not answer in time (0.8 s)", id="github-s-own-timeout"),
    ],
)
def test_a_github_call_the_deadline_cuts_short_is_a_decision_deadline(deadline_seconds, code, message):
    """Over real HTTP: the fake GitHub answers the pull request after 3 s."""
    scenario = base_scenario()
    scenario.failures.append(Failure.slow(r"/pulls/12$", 3.0))
    with FakeGitHub(scenario) as fake:
        settings = github_settings(fake.url).model_copy(update={"timeout": 0.8})
        client = GitHubClient(settings, backoff=0)
        bound = deadline.bind(deadline_seconds) if deadline_seconds is not None else None
        try:
            with pytest.raises(GitHubError) as info:
                client.get_json(
                    "octo-org/octo-repo", "/repos/octo-org/octo-repo/pulls/12", what="reading PR #12"
                )
        finally:
            if bound is not None:
                deadline.reset(bound)
    assert (info.value.code, info.value.status) == (code, 503)
    assert message in info.value.message
