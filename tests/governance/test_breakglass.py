"""Break-glass end to end: POST /v1/break-glass and its confirmation, a denied decision allowed under
it (marked, audited, shown on the decision page, no credentials), and the review listing. Refusal
cases first: never by or for an agent, never past the invariants, only by named invokers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.cli import main
from tests.conftest import TEST_POLICY
from tests.governance.policies import write_policy

POLICY = TEST_POLICY + "break_glass: {invokers: ['@octocat', '@alice'], confirm: true, max_minutes: 30}\n"
JUSTIFICATION = "INC-42: production is down, the fix must ship now"
BODY = {"action": "deploy", "minutes": 15, "justification": JUSTIFICATION}
ALICE = {"actor": "alice", "actor_id": "1001"}
DENIED_DEPLOY = (
    {"action": "deploy", "environment": "staging"},
    {"ref": "refs/heads/dev", "environment": "staging"},
)


@pytest.fixture
def invoke(client: FlaskClient, mint: Callable[..., str], policy_file: Path) -> Callable[..., Any]:
    write_policy(policy_file, POLICY)

    def _invoke(
        body: dict[str, Any] | None = None,
        *,
        path: str = "/v1/break-glass",
        agent: bool = False,
        **claims: Any,
    ) -> Any:
        token = mint(agent=agent, **claims)
        return client.post(
            path, json=body if body is not None else BODY, headers={"Authorization": f"Bearer {token}"}
        )

    return _invoke


REFUSED = [
    pytest.param(BODY, {"event_name": "push"}, "workflow_dispatch run a person starts", id="not-a-person-started-run"),
    pytest.param(BODY, {"actor": "mallory", "actor_id": "666"}, "@mallory may not invoke a break-glass", id="not-an-invoker"),
    pytest.param({**BODY, "minutes": 31}, {}, "minutes: got 31, expected at most 30", id="too-long"),
    pytest.param({**BODY, "action": "approve"}, {}, "not an approval action", id="approval-action"),
    pytest.param({**BODY, "action": "launch"}, {}, "expected an action of the catalog", id="unknown-action"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "claims", "message"), REFUSED)
def test_refused(
    invoke: Callable[..., Any], body: dict[str, Any], claims: dict[str, Any], message: str
) -> None:
    response = invoke(body, **claims)
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["errors"][0]["code"] == "break-glass-refused"
    assert message in response.get_json()["message"]


def test_an_agent_may_never_invoke_one(invoke: Callable[..., Any]) -> None:
    response = invoke(agent=True, event_name="workflow_dispatch")
    assert response.status_code == 403
    assert "an agent or bot may never invoke a break-glass" in response.get_json()["message"]


def test_a_policy_without_break_glass_allows_none(invoke: Callable[..., Any], policy_file: Path) -> None:
    write_policy(policy_file, TEST_POLICY)
    assert "allows no break-glass" in invoke().get_json()["message"]


def test_the_invoker_cannot_confirm_their_own(invoke: Callable[..., Any]) -> None:
    record = invoke().get_json()
    response = invoke({}, path=f"/v1/break-glass/{record['id']}/confirm")
    assert response.status_code == 403
    assert "a second person" in response.get_json()["message"]


def test_end_to_end_a_confirmed_break_glass_allows_a_denied_deploy(
    app: Flask, client: FlaskClient, invoke: Callable[..., Any], ask: Callable[..., Any], settings: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    created = invoke()
    assert created.status_code == 201, created.get_json()
    record = created.get_json()
    assert (record["state"], record["invoker"], record["action"]) == ("pending", "octocat", "deploy")
    # Unconfirmed, it changes nothing.
    assert ask(DENIED_DEPLOY[0], **DENIED_DEPLOY[1]).status_code == 403
    confirmed = invoke({}, path=f"/v1/break-glass/{record['id']}/confirm", **ALICE)
    assert confirmed.status_code == 200 and confirmed.get_json()["state"] == "active"

    response = ask(DENIED_DEPLOY[0], **DENIED_DEPLOY[1])
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["allowed"] is True and body["break_glass"] == record["id"]
    assert "grant" not in body and "github_token" not in body
    note = body["reasons"][-1]
    assert note["code"] == "break-glass" and note["ok"] is True
    assert "@octocat, confirmed by @alice" in note["message"] and JUSTIFICATION in note["message"]
    assert any(not r["ok"] for r in body["reasons"]), "the reasons it would be denied for stay"

    page = client.get(f"/decisions/{body['decision_id']}").get_data(as_text=True)
    assert record["id"] in page and JUSTIFICATION in page

    kinds = [r.kind for r in app.extensions["agent_gate"].store.iter_audit()]
    assert {"break-glass-requested", "break-glass-confirmed", "break-glass-used"} <= set(kinds)

    assert main(["break-glass", "list", "--database", settings.database_url, "--format", "json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["confirmer"], listed["uses"]) == (
        record["id"],
        "alice",
        [body["decision_id"]],
    )
    assert main(["break-glass", "list", "--database", settings.database_url]) == 0
    assert f"invoked by @octocat, confirmed by @alice: {JUSTIFICATION}" in capsys.readouterr().out


def test_never_for_an_agent_nor_past_the_invariants(
    invoke: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    record = invoke({**BODY, "minutes": 30}).get_json()
    invoke({}, path=f"/v1/break-glass/{record['id']}/confirm", **ALICE)
    agent = ask({"action": "deploy", "environment": "staging"}, agent=True, environment="staging")
    assert agent.status_code == 403 and agent.get_json()["break_glass"] is None
    pull_request = ask(
        {"action": "deploy", "environment": "staging"}, event_name="pull_request", environment="staging"
    )
    assert pull_request.status_code == 403 and pull_request.get_json()["break_glass"] is None


def test_another_action_or_repository_is_not_covered(
    invoke: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    record = invoke().get_json()
    invoke({}, path=f"/v1/break-glass/{record['id']}/confirm", **ALICE)
    other = ask(DENIED_DEPLOY[0], repository="octo-org/other", repository_id="3000", **DENIED_DEPLOY[1])
    assert other.status_code == 403
    merge = ask({"action": "merge"})
    assert merge.status_code == 403 and merge.get_json()["break_glass"] is None


def test_a_break_glass_naming_an_environment_covers_that_environment_only(
    invoke: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    created = invoke({**BODY, "environment": "production"})
    assert created.status_code == 201 and created.get_json()["environment"] == "production"
    invoke({}, path=f"/v1/break-glass/{created.get_json()['id']}/confirm", **ALICE)
    staging = ask(DENIED_DEPLOY[0], **DENIED_DEPLOY[1])
    assert staging.status_code == 403 and staging.get_json()["break_glass"] is None
    production = ask(
        {"action": "deploy", "environment": "production"}, ref="refs/heads/dev", environment="production"
    )
    body = production.get_json()
    assert production.status_code == 200 and body["break_glass"] == created.get_json()["id"]
    assert "for environment production" in body["reasons"][-1]["message"]
    no_environment = ask({"action": "deploy"}, ref="refs/heads/dev")
    assert no_environment.status_code == 403 and no_environment.get_json()["break_glass"] is None


def test_a_break_glass_naming_no_environment_covers_every_environment_of_its_action(
    invoke: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    created = invoke().get_json()
    assert created["environment"] is None
    invoke({}, path=f"/v1/break-glass/{created['id']}/confirm", **ALICE)
    for environment in ("staging", "production"):
        response = ask(
            {"action": "deploy", "environment": environment}, ref="refs/heads/dev", environment=environment
        )
        assert response.status_code == 200 and response.get_json()["break_glass"] == created["id"]


def test_a_refused_token_at_the_break_glass_endpoint_is_audited(
    app: Any, client: FlaskClient, policy_file: Path
) -> None:
    write_policy(policy_file, POLICY)
    response = client.post("/v1/break-glass", json=BODY, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    kinds = [r.kind for r in app.extensions["agent_gate"].store.iter_audit()]
    assert "token-refused" in kinds
