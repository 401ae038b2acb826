"""A freeze against the fake GitHub: a held agent deployment in its scope is rejected at once (decided
again through the pipeline, the ``frozen`` reason on GitHub's comment), a person's held deployment
keeps waiting, and an agent's merge check fails while the freeze lasts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.tokens.devissuer import DevIssuer
from tests.events.test_deployments import POLICY, RUN, answers, assert_githubs_shape, requested
from tests.fake_github import Scenario
from tests.github.conftest import ALICE, BOB, HEAD, base_scenario
from tests.web.test_webhook import Hub

FREEZE_POLICY = POLICY + "freeze: {freezers: ['@octocat']}\n"
WHY = "INC-77: an agent pushed a poisoned workflow, stop them all"


def _hub(tmp_path: Path, scenario: Scenario) -> Hub:
    return Hub(tmp_path, scenario, policy=FREEZE_POLICY)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = _hub(tmp_path, base_scenario())  # run 9000 deploys the head of Copilot's PR 12
    yield h
    h.close()


def start_freeze(hub: Hub, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /v1/freeze as octocat's workflow_dispatch run of octo-org/octo-repo, then run the queue."""
    g = hub.app.extensions["agent_gate"]
    issuer = DevIssuer(g.settings.data_dir)
    issuer.ensure_key()
    token = issuer.mint(audience=g.settings.audience)
    response = hub.web.post(
        "/v1/freeze",
        json=body or {"scope": "organisation", "justification": WHY},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()
    hub.queue.drain()
    answer: dict[str, Any] = response.get_json()
    return answer


def test_a_held_agent_deployment_is_rejected_when_agents_are_frozen(hub: Hub) -> None:
    hub.deliver("deployment_protection_rule", requested())
    assert [a.get("state") for a in answers(hub)] == [None], "held, waiting for an approval"
    record = start_freeze(hub)
    assert record["held_deployments_queued"] == 1
    rejected = answers(hub)[-1]
    assert_githubs_shape(rejected)
    assert rejected["state"] == "rejected"
    assert (
        f"frozen: agents are frozen in organisation octo-org by freeze {record['id']}" in rejected["comment"]
    )
    held = hub.app.extensions["agent_gate"].store.find_deployment_gates(2000, state=None)
    assert [h["state"] for h in held] == ["rejected"]
    # Even an independent approval does not let it through while the freeze lasts.
    hub.scenario.runs[RUN].approvals = [{"user": BOB, "state": "approved", "environments": ["production"]}]
    hub.deliver("deployment_protection_rule", requested(), delivery="again")
    assert answers(hub)[-1]["state"] == "rejected"


def test_a_persons_held_deployment_is_left_waiting(tmp_path: Path) -> None:
    scenario = base_scenario()
    scenario.runs[RUN].head_sha = "e" * 40  # a person's change (no PR)
    h = _hub(tmp_path, scenario)
    try:
        h.deliver("deployment_protection_rule", requested())
        assert start_freeze(h)["held_deployments_queued"] == 0
        assert [a.get("state") for a in answers(h)] == [None], "still held for its approval, not rejected"
    finally:
        h.close()


def test_an_agents_green_merge_check_fails_at_once_when_agents_are_frozen(hub: Hub) -> None:
    pr = hub.scenario.prs[12]
    pr.reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    hub.deliver("pull_request", hub.payload("opened"))
    assert hub.merge_check()["conclusion"] == "success"
    record = start_freeze(
        hub, {"scope": "agent", "agent": "GitHub Copilot coding agent", "justification": WHY}
    )
    check = hub.merge_check()  # no event needed: the freeze's sweep evaluated it again
    assert check["conclusion"] == "failure"
    assert f"by freeze {record['id']}" in check["output"]["summary"]
    # While the freeze lasts, a new review does not let it through either.
    pr.reviews.append({"user": ALICE, "state": "COMMENTED", "commit_id": HEAD, "id": 3})
    hub.deliver(
        "pull_request_review", hub.payload("submitted", review={"user": {"login": "alice", "id": 1001}})
    )
    assert hub.merge_check()["conclusion"] == "failure"


def test_a_merge_check_sweep_of_a_lifted_freeze_does_nothing(hub: Hub) -> None:
    from app.events.freeze import fail_merge_checks

    g = hub.app.extensions["agent_gate"]
    assert fail_merge_checks(g, "job", "fr_gone") == {
        "handled": False,
        "why": "the freeze is no longer active",
    }


def test_a_team_of_freezers_is_checked_through_the_app(tmp_path: Path) -> None:
    scenario = base_scenario()
    h = Hub(tmp_path, scenario, policy=POLICY + "freeze: {freezers: ['@octo-org/security']}\n")
    try:
        g = h.app.extensions["agent_gate"]
        issuer = DevIssuer(g.settings.data_dir)
        issuer.ensure_key()

        def ask(**claims: Any) -> Any:
            token = issuer.mint(audience=g.settings.audience, **claims)
            body = {"scope": "organisation", "justification": WHY}
            return h.web.post("/v1/freeze", json=body, headers={"Authorization": f"Bearer {token}"})

        scenario.teams["security"] = {"octocat"}
        refused = ask(actor="dave", actor_id="1004")
        assert refused.status_code == 403
        assert (
            "@dave may not start a freeze: expected one of @octo-org/security"
            in refused.get_json()["message"]
        )
        assert ask().status_code == 201, "octocat is an active member of @octo-org/security"
    finally:
        h.close()
