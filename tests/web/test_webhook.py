"""The App's webhook: signatures first, redeliveries ignored, and the merge check through a PR's life."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from app import create_app
from app.events.worker import QueueWorker
from app.evidence.gather import GitHubEvidence
from app.github.client import GitHubClient
from app.settings import Settings
from tests.fake_github import Commit, FakeGitHub, Scenario, extract
from tests.github.conftest import ALICE, BOB, COPILOT, HEAD, base_scenario, github_settings

SECRET = "webhook-secret-for-tests"
POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
"""


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Hub:
    """A gate with webhooks, a fake GitHub, and a way to deliver events the way GitHub does."""

    def __init__(self, tmp_path: Path, scenario: Scenario, policy: str = POLICY, **settings: Any) -> None:
        self.scenario = scenario
        self.fake = FakeGitHub(scenario).__enter__()
        (tmp_path / "policies").mkdir(exist_ok=True)
        (tmp_path / "policies" / "octo.yml").write_text(policy)
        settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp_path / "data",
            policy_path=tmp_path / "policies",
            public_url="http://gate.test",
            webhook_secret=SecretStr(SECRET),
            policy_check_interval=0,
            **settings,
        )
        client = GitHubClient(github_settings(self.fake.url), backoff=0)
        self.app = create_app(settings, github=client, evidence=GitHubEvidence(client))
        self.web: FlaskClient = self.app.test_client()
        self.events: list[tuple[str, Any]] = []
        self.app.extensions["agent_gate"].evidence_listeners.append(
            lambda change: self.events.append(("change", change))
        )

    def payload(self, action: str, **extra: Any) -> dict[str, Any]:
        pr = self.scenario.prs[12]
        if isinstance(extra.get("review"), dict):  # its id and (lowercase in webhooks) state, as GitHub sends
            state = "dismissed" if action == "dismissed" else "approved"
            extra["review"] = {"id": 80, "state": state, **extra["review"]}
        return {
            "action": action,
            "number": 12,
            "pull_request": {
                "number": 12,
                "state": "open",
                "user": {"login": pr.author.login, "id": pr.author.id, "type": pr.author.type},
                "head": {"sha": pr.head_sha, "ref": pr.head_ref},
                "base": {"ref": pr.base_ref, "sha": "e" * 40},
            },
            "repository": {
                "id": 2000,
                "full_name": "octo-org/octo-repo",
                "owner": {"login": "octo-org", "id": 1000},
            },
            "sender": {"login": "alice", "id": 1001},
            **extra,
        }

    def deliver(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        delivery: str | None = None,
        signature: str | None = None,
        process: bool = True,
    ) -> Any:
        """POST the event as GitHub does; then, unless ``process=False``, run the queue as its
        workers would (the webhook itself only verifies and stores)."""
        body = json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        if signature != "omit":
            headers["X-Hub-Signature-256"] = signature or sign(body)
        response = self.web.post("/v1/github/webhook", data=body, headers=headers)
        if process:
            self.queue.drain()
        return response

    @property
    def queue(self) -> QueueWorker:
        worker: QueueWorker = self.app.extensions["agent_gate_queue"]
        return worker

    def merge_check_runs(self) -> list[dict[str, Any]]:
        return [c for c in self.scenario.check_runs.values() if c["name"] == "agent-gate / merge"]

    def merge_check(self) -> dict[str, Any]:
        runs = [
            c
            for c in self.scenario.check_runs.values()
            if c["name"] == "agent-gate / merge" and c["head_sha"] == self.scenario.prs[12].head_sha
        ]
        assert len(runs) == 1, "one check run per head, created then updated"
        return runs[0]

    def close(self) -> None:
        self.fake.__exit__()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    yield h
    h.close()


# --- signatures and redeliveries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "status", "code"),
    [
        (None, 202, None),
        ("sha256=" + "0" * 64, 401, "bad-signature"),
        ("omit", 401, "missing-signature"),
        ("wrong-secret", 401, "bad-signature"),
        ("sha1=abc", 401, "bad-signature"),
    ],
    ids=["valid", "invalid", "missing", "wrong-secret", "wrong-scheme"],
)
def test_signatures_are_verified_before_anything_else(hub, signature, status, code):
    body = hub.payload("opened")
    if signature == "wrong-secret":
        signature = sign(json.dumps(body).encode(), "another-secret")
    response = hub.deliver("pull_request", body, signature=signature)
    assert response.status_code == status
    if code:
        assert response.get_json()["errors"][0]["code"] == code
        assert hub.scenario.requests == [], "nothing is done for an unsigned delivery"


def test_a_redelivery_is_acknowledged_and_ignored(hub):
    first = hub.deliver("pull_request", hub.payload("opened"), delivery="d-1")
    calls = len(hub.scenario.requests)
    again = hub.deliver("pull_request", hub.payload("opened"), delivery="d-1")
    assert first.status_code == 202 and first.get_json()["status"] == "queued"
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert len(hub.scenario.requests) == calls


def test_webhooks_without_a_configured_secret_are_refused(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "o.yml").write_text(POLICY)
    app = create_app(Settings(dev_mode=True, issuers=(), data_dir=tmp_path / "d", policy_path=tmp_path / "p"))
    response = app.test_client().post(
        "/v1/github/webhook", data=b"{}", headers={"X-Hub-Signature-256": sign(b"{}")}
    )
    assert response.status_code == 503
    assert "set GATE_WEBHOOK_SECRET" in response.get_json()["message"]


# --- the agent PR lifecycle ---------------------------------------------------------------------------


def test_the_merge_check_follows_an_agent_pull_request_through_its_life(hub):
    pr = hub.scenario.prs[12]

    hub.deliver("pull_request", hub.payload("opened"))
    check = hub.merge_check()
    assert check["conclusion"] == "action_required"
    assert check["output"]["title"] == "Blocked: agent change needs an independent human approval"

    pr.reviews.append({"user": ALICE, "state": "APPROVED", "commit_id": HEAD, "id": 1})
    hub.deliver(
        "pull_request_review", hub.payload("submitted", review={"user": {"login": "alice", "id": 1001}})
    )
    check = hub.merge_check()
    assert check["conclusion"] == "action_required"
    assert "@alice is tied to the change" in check["output"]["summary"]

    pr.reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    hub.deliver(
        "pull_request_review", hub.payload("submitted", review={"user": {"login": "bob", "id": 1002}})
    )
    check = hub.merge_check()
    assert check["conclusion"] == "success"

    new_head = "d" * 40
    pr.head_sha = new_head
    pr.commits.append(
        Commit(sha=new_head, author=COPILOT, author_email="198982749+Copilot@users.noreply.github.com")
    )
    hub.deliver("pull_request", hub.payload("synchronize", before=HEAD, after=new_head))
    check = hub.merge_check()
    assert check["head_sha"] == new_head
    assert check["conclusion"] == "action_required"
    assert "stale: approved commit aaaaaaa" in check["output"]["summary"]
    assert ("change", "new commits pushed") in [(k, c.reason) for k, c in hub.events]


def test_a_pr_without_agent_signals_gets_a_success_that_says_what_was_looked_for(tmp_path):
    scenario = base_scenario()
    scenario.prs[12].author = ALICE
    scenario.prs[12].head_ref = "feature/x"
    scenario.prs[12].commits = [
        Commit(sha=HEAD, author=ALICE, committer=ALICE, author_email="alice@example.com")
    ]
    hub = Hub(tmp_path, scenario)
    try:
        hub.deliver("pull_request", hub.payload("opened"))
        check = hub.merge_check()
        assert check["conclusion"] == "success"
        assert "No agent involvement found" in check["output"]["summary"]
        assert "agent co-author trailer" in check["output"]["summary"]
    finally:
        hub.close()


def test_a_dismissed_approval_and_a_closed_pr_are_evidence_changes(hub):
    hub.deliver(
        "pull_request_review", hub.payload("dismissed", review={"user": {"login": "bob", "id": 1002}})
    )
    hub.deliver("pull_request", hub.payload("closed"))
    assert [c.reason for _, c in hub.events] == ["approval by @bob dismissed", "pull request closed"]


def test_check_run_bodies_match_githubs_schemas(hub):
    pr = hub.scenario.prs[12]
    hub.deliver("pull_request", hub.payload("opened"))
    pr.reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    hub.deliver(
        "pull_request_review", hub.payload("submitted", review={"user": {"login": "bob", "id": 1002}})
    )
    create, update = hub.merge_check()["history"]
    jsonschema.validate(create, extract()["operations"]["checks/create"]["request_schema"])
    jsonschema.validate(update, extract()["operations"]["checks/update"]["request_schema"])


def test_webhook_payloads_used_here_have_githubs_shape():
    # The fields the gate reads exist, with these names, in GitHub's published webhook schemas.
    schema = extract()["webhooks"]["pull-request-opened"]["schema"]
    pr = schema["properties"]["pull_request"]
    assert {"number", "user", "head", "base", "state"} <= set(
        pr.get("properties", {}) or pr["allOf"][0]["properties"]
    )
    assert {"id", "full_name", "owner"} <= set(schema["properties"]["repository"]["properties"])


def test_a_signed_payload_missing_fields_is_given_up_at_once(hub, caplog):
    payload = hub.payload("opened")
    del payload["pull_request"]["head"]
    response = hub.deliver("pull_request", payload)
    assert response.status_code == 202, "stored first; GitHub gets its answer within its 10 s"
    stats = hub.app.extensions["agent_gate"].store.queue_stats(now=2**31)
    assert (stats.depth, stats.dead) == (0, 1), "a payload that can never be handled is not retried"
    assert hub.scenario.requests == []
    assert "invalid-payload" in caplog.text or "lacks a field" in caplog.text


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"not json", "invalid-json"), (b"[1, 2]", "invalid-json")],
    ids=["not-json", "not-an-object"],
)
def test_a_signed_body_that_is_not_a_json_object_is_a_clear_400(hub, body, code):
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "d-x",
        "X-Hub-Signature-256": sign(body),
        "Content-Type": "application/json",
    }
    response = hub.web.post("/v1/github/webhook", data=body, headers=headers)
    assert response.status_code == 400 and response.get_json()["errors"][0]["code"] == code
