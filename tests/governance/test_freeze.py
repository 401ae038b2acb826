"""The freeze end to end: POST /v1/freeze stops every agent in its scope at once (their grants revoked,
no new grant or execute decision), people are untouched, agents out of scope are untouched, and a
person lifts it. Refusal cases first: never by an agent or a bot, only by people the policy names,
from a person's run of the organisation (and repository) it freezes, once per token."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.cli import main
from app.errors import TokenError
from tests.conftest import TEST_POLICY
from tests.governance.policies import write_policy

POLICY = TEST_POLICY + "freeze: {freezers: ['@octocat', '@alice']}\n"
WHY = "INC-77: an agent pushed a poisoned workflow, stop them all"
ORG = {"scope": "organisation", "justification": WHY}
LIFT = {"justification": "INC-77 resolved: the workflow was reverted"}
ALICE = {"actor": "alice", "actor_id": "1001"}
OTHER_REPO = {"repository": "octo-org/other", "repository_id": "3000"}
CLAUDE = {"actor": "claude[bot]", "actor_id": "209825114"}


@pytest.fixture
def freeze(client: FlaskClient, mint: Callable[..., str], policy_file: Path) -> Callable[..., Any]:
    """freeze(body, path=..., token=..., agent=False, **claims) -> the response."""
    write_policy(policy_file, POLICY)

    def _freeze(
        body: dict[str, Any] | None = None,
        *,
        path: str = "/v1/freeze",
        token: str | None = None,
        agent: bool = False,
        **claims: Any,
    ) -> Any:
        token = token or mint(agent=agent, **claims)
        return client.post(
            path, json=body if body is not None else ORG, headers={"Authorization": f"Bearer {token}"}
        )

    return _freeze


def _grant(ask: Callable[..., Any], **claims: Any) -> str:
    response = ask({"action": "read", "grant": True}, **claims)
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["grant"]["token"]
    return token


def _active(app: Flask, token: str) -> bool:
    return bool(app.extensions["agent_gate"].grants.introspect(token)["active"])


# --- refusals ------------------------------------------------------------------------------------------

REFUSED = [
    pytest.param(ORG, {"agent": True}, "is GitHub Copilot coding agent: an agent or bot may never start a freeze", id="an-agents-token"),
    pytest.param(ORG, {"actor": "dependabot[bot]", "actor_id": "49699333"}, "is Dependabot: an agent or bot may never start", id="a-bot"),
    pytest.param(ORG, {"actor": "mallory", "actor_id": "666"}, "@mallory may not start a freeze: expected one of @octocat, @alice", id="a-person-the-policy-does-not-name"),
    pytest.param(ORG, {"event_name": "push"}, "workflow_dispatch run a person starts; got a push run", id="not-a-person-started-run"),
    pytest.param({**ORG, "organisation": "other-org"}, {}, "organisation: got other-org, expected octo-org", id="another-organisation"),
    pytest.param({"scope": "repository", "repository": "octo-org/other", "justification": WHY}, {}, "repository: got octo-org/other, expected octo-org/octo-repo", id="widened-to-another-repository"),
    pytest.param({"scope": "agent", "agent": "Skynet", "justification": WHY}, {}, "agent: got 'Skynet', expected the name of an AI agent", id="an-unknown-agent-kind"),
    pytest.param(ORG, {"repository_owner": "evil-org", "repository_owner_id": "6660"}, "the policy of evil-org names nobody who may freeze", id="a-token-from-another-org"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "claims", "message"), REFUSED)
def test_refused(
    freeze: Callable[..., Any], body: dict[str, Any], claims: dict[str, Any], message: str
) -> None:
    response = freeze(body, **claims)
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["errors"][0]["code"] == "freeze-refused"
    assert message in response.get_json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"scope": "repository", "justification": WHY}, id="repository-scope-without-repository"),
        pytest.param({**ORG, "agent": "Claude"}, id="an-agent-with-another-scope"),
        pytest.param({**ORG, "justification": "because"}, id="no-real-justification"),
        pytest.param({**ORG, "everything": True}, id="an-unknown-field"),
    ],
)
def test_an_invalid_body_is_refused(freeze: Callable[..., Any], body: dict[str, Any]) -> None:
    response = freeze(body)
    assert response.status_code == 400 and response.get_json()["errors"][0]["code"] == "invalid-field"


def test_a_replayed_token_is_refused(freeze: Callable[..., Any], mint: Callable[..., str]) -> None:
    token = mint()
    assert freeze(token=token).status_code == 201
    again = freeze(token=token)
    assert again.status_code == 401 and again.get_json()["errors"][0]["code"] == "replayed"


def test_a_policy_without_freeze_names_nobody(freeze: Callable[..., Any], policy_file: Path) -> None:
    write_policy(policy_file, TEST_POLICY)
    assert "names nobody who may freeze agents (no freeze: section)" in freeze().get_json()["message"]


def test_a_refused_token_at_the_freeze_endpoint_is_audited(app: Flask, client: FlaskClient) -> None:
    response = client.post("/v1/freeze", json=ORG, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert "token-refused" in [r.kind for r in app.extensions["agent_gate"].store.iter_audit()]


LIFT_REFUSED = [
    pytest.param({"agent": True}, 403, "an agent or bot may never lift a freeze", id="by-an-agent"),
    pytest.param({"actor": "mallory", "actor_id": "666"}, 403, "@mallory may not lift a freeze", id="by-a-person-the-policy-does-not-name"),
    pytest.param({"repository_owner": "evil-org", "repository_owner_id": "6660"}, 403, "no freeze fr_", id="from-another-org"),
    pytest.param(OTHER_REPO, 403, "it is lifted from a run of that repository", id="from-another-repository"),
]  # fmt: skip


@pytest.mark.parametrize(("claims", "status", "message"), LIFT_REFUSED)
def test_lifting_is_refused(
    freeze: Callable[..., Any], claims: dict[str, Any], status: int, message: str
) -> None:
    record = freeze(
        {"scope": "repository", "repository": "octo-org/octo-repo", "justification": WHY}
    ).get_json()
    response = freeze(LIFT, path=f"/v1/freeze/{record['id']}/lift", **claims)
    assert response.status_code == status, response.get_json()
    assert message in response.get_json()["message"]


def test_an_unknown_or_lifted_freeze_cannot_be_lifted(freeze: Callable[..., Any]) -> None:
    assert freeze(LIFT, path="/v1/freeze/nonsense/lift").status_code == 404
    record = freeze().get_json()
    assert freeze(LIFT, path=f"/v1/freeze/{record['id']}/lift").status_code == 200
    again = freeze(LIFT, path=f"/v1/freeze/{record['id']}/lift", **ALICE)
    assert again.status_code == 403 and "is lifted, not active" in again.get_json()["message"]


# --- what a freeze does --------------------------------------------------------------------------------


def test_end_to_end_an_organisation_freeze_stops_agents_and_not_people(
    app: Flask, client: FlaskClient, freeze: Callable[..., Any], ask: Callable[..., Any], settings: Any,
    policy_file: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    agents_grant = _grant(ask, agent=True)
    persons_grant = _grant(ask)
    assert _active(app, agents_grant) and _active(app, persons_grant)

    created = freeze()
    body = created.get_json()
    assert created.status_code == 201, body
    assert (body["scope"], body["organisation"], body["state"], body["invoker"]) == (
        "organisation", "octo-org", "active", "octocat",
    )  # fmt: skip
    assert body["grants_revoked"] == 1

    # The agent's grant stops working at once: introspection says inactive, verification refuses it.
    assert not _active(app, agents_grant)
    with pytest.raises(TokenError, match="the grant was revoked"):
        app.extensions["agent_gate"].grants.verify(agents_grant)
    assert _active(app, persons_grant), "a person's grant is untouched"

    # No new grant or execute decision for an agent; reading without credentials stays allowed.
    denied = ask({"action": "read", "grant": True}, agent=True)
    assert denied.status_code == 403 and "grant" not in denied.get_json()
    frozen = denied.get_json()["reasons"][-1]
    assert frozen["code"] == "frozen" and not frozen["ok"]
    assert f"by freeze {body['id']} of @octocat" in frozen["message"] and WHY in frozen["message"]
    assert f"/v1/freeze/{body['id']}/lift" in denied.get_json()["remedy"]
    assert ask({"action": "read"}, agent=True).status_code == 200
    deploy = ask({"action": "deploy", "environment": "staging"}, agent=True, environment="staging")
    assert "frozen" in [r["code"] for r in deploy.get_json()["reasons"]]
    assert ask({"action": "read", "grant": True}).status_code == 200, "people are never frozen"

    page = client.get(f"/decisions/{denied.get_json()['decision_id']}").get_data(as_text=True)
    assert body["id"] in page and WHY in page

    # A person lifts it; agents get grants again.
    lifted = freeze(LIFT, path=f"/v1/freeze/{body['id']}/lift", **ALICE)
    assert lifted.status_code == 200 and lifted.get_json()["state"] == "lifted"
    assert lifted.get_json()["lifter"] == "alice"
    assert _active(app, _grant(ask, agent=True))

    kinds = [r.kind for r in app.extensions["agent_gate"].store.iter_audit()]
    assert {"freeze-started", "freeze-swept", "grant-revoked", "freeze-lifted"} <= set(kinds)

    assert main(["freeze", "list", "--database", settings.database_url, "--format", "json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["state"], listed["lifter"]) == (body["id"], "lifted", "alice")
    assert main(["freeze", "list", "--database", settings.database_url]) == 0
    out = capsys.readouterr().out
    assert f"started by @octocat (from octo-org/octo-repo): {WHY}" in out and "lifted by @alice" in out
    assert main(["freeze", "list", "--database", settings.database_url, "--active"]) == 0
    assert "0 freeze(s)" in capsys.readouterr().out


def test_a_repository_freeze_leaves_agents_of_other_repositories_alone(
    app: Flask, freeze: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    here, elsewhere = _grant(ask, agent=True), _grant(ask, agent=True, **OTHER_REPO)
    response = freeze({"scope": "repository", "repository": "octo-org/octo-repo", "justification": WHY})
    assert response.status_code == 201 and response.get_json()["repository"] == "octo-org/octo-repo"
    assert not _active(app, here) and _active(app, elsewhere)
    assert ask({"action": "read", "grant": True}, agent=True, **OTHER_REPO).status_code == 200
    assert ask({"action": "read", "grant": True}, agent=True).status_code == 403


def test_an_agent_kind_freeze_stops_that_agent_only(
    app: Flask, freeze: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    claude, copilot = _grant(ask, **CLAUDE), _grant(ask, agent=True)
    response = freeze({"scope": "agent", "agent": "claude", "justification": WHY})
    assert response.status_code == 201 and response.get_json()["agent"] == "Claude", "the catalog's name"
    assert not _active(app, claude) and _active(app, copilot)
    stopped = ask({"action": "read", "grant": True}, **CLAUDE).get_json()
    assert "Claude agents of octo-org" in stopped["reasons"][-1]["message"]
    assert ask({"action": "read", "grant": True}, agent=True).status_code == 200


def test_an_active_freeze_is_in_the_inventory(
    freeze: Callable[..., Any], settings: Any, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = freeze().get_json()
    argv = ["inventory", "--database", settings.database_url, "--policy", str(policy_file.parent)]
    assert main([*argv, "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["kind"] == "freeze"]
    assert [(r["key"], r["repository"], r["flags"], r["requesters"]) for r in rows] == [
        (record["id"], "octo-org", ["frozen"], ["octocat"])
    ]


def test_a_grant_whose_decision_record_is_gone_is_revoked_too(
    app: Flask, freeze: Callable[..., Any], ask: Callable[..., Any]
) -> None:
    # It cannot be told apart from an agent's: fail closed, and say how many in the audit event.
    persons_grant = _grant(ask)
    store = app.extensions["agent_gate"].store
    store.purge_retained(2**40)
    assert freeze().get_json()["grants_revoked"] == 1
    assert not _active(app, persons_grant)
    [swept] = [r.payload for r in store.iter_audit() if r.kind == "freeze-swept"]
    assert swept["grants_unattributed"] == 1


def test_a_queued_held_deployment_already_answered_is_left_alone(app: Flask) -> None:
    from app.errors import InvalidRequest
    from app.events.freeze import decide_held_again

    g = app.extensions["agent_gate"]
    key = json.dumps({"repository_id": 2000, "run_id": 9, "environment": "production"}).encode()
    assert decide_held_again(g, "freeze:fr_x:2000:9:production", "fr_x", key) == {
        "handled": False,
        "why": "the deployment was answered meanwhile",
    }
    with pytest.raises(InvalidRequest, match="the queued held deployment is not valid"):
        decide_held_again(g, "freeze:fr_x", "fr_x", b"{}")
