"""The gate as a deployment protection rule, end to end against the fake GitHub:
event -> signature -> queue -> run re-fetched -> evidence -> decision -> callback body in GitHub's shape.

A job that targets a protected environment waits whether or not its workflow calls the gate; an
agent-driven one is never approved without an independent human approval; an error never
approves and never rejects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.publish.deployments import MAX_COMMENT_BYTES, MAX_PROGRESS_COMMENTS, comment
from tests.builders import POLICY_TEXT, agent_identity, evidence, policy_set, run
from tests.fake_github import Commit, Failure, extract
from tests.github.conftest import ALICE, BOB, CAROL, HEAD, base_scenario
from tests.web.test_webhook import Hub

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: deploy-production
    actions: [deploy]
    repositories: "*"
    refs: [refs/heads/main]
    environments: [production]
    events: [workflow_dispatch, push]
    workflows: [{ref: octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main}]
    runner_environments: [github-hosted]
    approvals: {count: 1}
  - name: deploy-staging
    actions: [deploy]
    repositories: "*"
    environments: [staging]
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
"""
RUN = 9000
CALLBACK = f"https://api.github.com/repos/octo-org/octo-repo/actions/runs/{RUN}/deployment_protection_rule"


class Clock:
    """The queue's clock: the real time (the webhook stamps jobs with it), moved ahead by tests."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario(), policy=POLICY)
    h.clock = Clock()  # type: ignore[attr-defined]
    h.queue.clock = h.clock  # type: ignore[attr-defined]
    yield h
    h.close()


def requested(environment: str = "production", *, callback: str = CALLBACK, **extra: Any) -> dict[str, Any]:
    """A ``deployment_protection_rule`` ``requested`` payload, with the fields GitHub's schema names."""
    return {
        "action": "requested",
        "environment": environment,
        "event": "workflow_dispatch",
        "sha": HEAD,
        "ref": "main",  # the short name, from the run's check suite
        "deployment_callback_url": callback,
        "deployment": {"id": 555, "environment": environment, "sha": HEAD, "ref": "main"},
        "pull_requests": [],
        "repository": {
            "id": 2000,
            "full_name": "octo-org/octo-repo",
            "owner": {"login": "octo-org", "id": 1000},
        },
        "installation": {"id": 77},
        "sender": {"login": "alice", "id": 1001},
        **extra,
    }


def deployment(sha: str = HEAD, ref: str = "main", environment: str = "production") -> dict[str, Any]:
    """The event's ``deployment`` (GitHub's schema: a branch, tag or sha as ``ref``)."""
    return {"id": 555, "environment": environment, "sha": sha, "ref": ref}


def reviewed(action: str = "approved", n: int = 0) -> dict[str, Any]:
    """A ``deployment_review`` payload (each review its own: GitHub's bodies differ by ``since``)."""
    return {
        "action": action,
        "workflow_run": {"id": RUN},
        "since": f"2026-11-29T00:{n // 60:02d}:{n % 60:02d}Z",
        "repository": {
            "id": 2000,
            "full_name": "octo-org/octo-repo",
            "owner": {"login": "octo-org", "id": 1000},
        },
        "organization": {"login": "octo-org", "id": 1000},
        "sender": {"login": "bob", "id": 1002},
    }


def answers(hub: Hub) -> list[dict[str, Any]]:
    return hub.scenario.protection_answers


def assert_githubs_shape(body: dict[str, Any]) -> None:
    schema = extract()["operations"]["actions/review-custom-gates-for-run"]["request_schema"]
    jsonschema.validate({k: v for k, v in body.items() if k != "run_id"}, schema)
    assert len(body["comment"].encode()) <= MAX_COMMENT_BYTES


def audit_kinds(hub: Hub) -> list[str]:
    return [r.kind for r in hub.app.extensions["agent_gate"].store.iter_audit()]


# --- the payloads are GitHub's ---------------------------------------------------------------------


def test_the_fields_read_exist_in_githubs_webhook_schemas():
    rule = extract()["webhooks"]["deployment-protection-rule-requested"]["schema"]["properties"]
    assert {"action", "environment", "deployment_callback_url", "deployment", "repository"} <= set(rule)
    review = extract()["webhooks"]["deployment-review-approved"]["schema"]
    assert {"workflow_run", "repository"} <= set(review["properties"])
    assert "id" in review["properties"]["workflow_run"]["properties"]


# --- approve, wait, reject ---------------------------------------------------------------------------


def test_an_agent_deployment_waits_for_an_independent_approval_then_is_approved(hub):
    response = hub.deliver("deployment_protection_rule", requested())
    assert response.status_code == 202
    [progress] = answers(hub)
    assert_githubs_shape(progress)
    assert "state" not in progress, "a progress comment: the job stays held"
    assert progress["environment_name"] == "production"
    assert "independent human approval" in progress["comment"]
    assert "other than @alice (actor, triggering actor" in progress["comment"], (
        "who cannot unblock it is named"
    )
    assert "Decision: http://gate.test/decisions/dec_" in progress["comment"]
    # A release manager approves the production deployment of this run in GitHub's UI.
    hub.scenario.runs[RUN].approvals = [{"user": BOB, "state": "approved", "environments": ["production"]}]
    hub.deliver("deployment_review", reviewed())
    approved = answers(hub)[-1]
    assert_githubs_shape(approved)
    assert approved["state"] == "approved"
    assert approved["comment"].startswith("agent-gate: Allowed: deploy by rule deploy-production")
    assert audit_kinds(hub).count("deployment-protection") == 2


def test_a_self_approval_of_the_environment_never_approves(hub):
    hub.scenario.runs[RUN].approvals = [{"user": ALICE, "state": "approved", "environments": ["production"]}]
    hub.deliver("deployment_protection_rule", requested())
    assert [a.get("state") for a in answers(hub)] == [None]


def test_a_deployment_the_policy_forbids_is_rejected_with_the_reason(hub):
    hub.deliver("deployment_protection_rule", requested("sandbox"))
    [rejected] = answers(hub)
    assert_githubs_shape(rejected)
    assert rejected["state"] == "rejected"
    assert "environment: got sandbox" in rejected["comment"]


def test_a_human_change_on_a_rule_without_approvals_is_approved_at_once(hub):
    human = "e" * 40
    hub.scenario.runs[RUN].head_sha = human  # no PR: a human's push to main
    hub.deliver("deployment_protection_rule", requested("staging", sha=human, deployment=deployment(human)))
    [approved] = answers(hub)
    assert approved["state"] == "approved"


def test_the_workload_is_built_from_the_run_not_the_payload(hub):
    # The payload claims a push by someone else; the gate reads the run.
    hub.deliver(
        "deployment_protection_rule",
        requested(event="push", sender={"login": "bob", "id": 1002}),
    )
    store = hub.app.extensions["agent_gate"].store
    [record] = [r for r in store.iter_audit() if r.kind == "deployment-protection"]
    subject = record.payload["subject"]
    assert (subject["sha"], subject["event"], subject["actor"]) == (HEAD, "workflow_dispatch", "alice")
    assert subject["workflow"] == "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"
    assert any(r["code"] == "runner" and r["ok"] for r in record.payload["reasons"]), (
        "runner checked when it runs"
    )


# --- errors never approve and never reject -----------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Failure.server_error(r"/actions/runs/9000$", 502), id="github-5xx"),
        pytest.param(Failure.secondary_rate_limit(r"/actions/runs/9000$", retry_after=1), id="rate-limited"),
        pytest.param(
            Failure(r"/deployment_protection_rule$", 500, method="POST", times=1), id="callback-5xx"
        ),
    ],
)
def test_a_transient_failure_is_retried_never_turned_into_an_answer(hub, failure):
    hub.scenario.failures.append(failure)
    hub.deliver("deployment_protection_rule", requested("sandbox"))  # would be a rejection
    assert answers(hub) == [], "neither approved nor rejected while GitHub fails"
    store = hub.app.extensions["agent_gate"].store
    stats = store.queue_stats(now=int(hub.clock()))
    assert (stats.depth, stats.dead) == (1, 0), "kept for a retry"
    hub.scenario.failures.clear()
    hub.clock.ahead += 3600
    time.sleep(1.05)  # the client itself waits out a rate limit's Retry-After (1 s here)
    assert hub.queue.drain() == 1
    assert [a["state"] for a in answers(hub)] == ["rejected"]


def test_a_forged_callback_for_another_repository_is_never_answered(hub):
    other = "https://api.github.com/repos/evil/repo/actions/runs/9000/deployment_protection_rule"
    hub.deliver("deployment_protection_rule", requested(callback=other))
    assert answers(hub) == []
    stats = hub.app.extensions["agent_gate"].store.queue_stats(now=int(hub.clock()))
    assert stats.dead == 1, "given up at once: it can never be answered"


def test_an_unsigned_event_is_refused_before_anything(hub):
    response = hub.deliver("deployment_protection_rule", requested(), signature="sha256=" + "0" * 64)
    assert response.status_code == 401
    assert answers(hub) == [] and hub.scenario.requests == []


# --- GitHub's limits on comments ---------------------------------------------------------------------


def test_progress_comments_stop_at_githubs_limit_of_ten(hub):
    hub.deliver("deployment_protection_rule", requested())
    for n in range(14):
        # Something new to say each time: another reviewer who does not count.
        hub.scenario.runs[RUN].approvals = [
            {"user": CAROL if n % 2 else ALICE, "state": "approved", "environments": ["production"]}
        ]
        hub.deliver("deployment_review", reviewed(n=n + 1))
    progress = [a for a in answers(hub) if "state" not in a]
    assert len(progress) == MAX_PROGRESS_COMMENTS
    assert all(len(a["comment"].encode()) <= MAX_COMMENT_BYTES for a in progress)
    # Once allowed, it is approved even past the comment limit (a state is not a comment).
    hub.scenario.runs[RUN].approvals = [{"user": BOB, "state": "approved", "environments": ["production"]}]
    hub.deliver("deployment_review", reviewed(n=99))
    assert answers(hub)[-1]["state"] == "approved"


def test_the_same_news_is_not_commented_twice(hub):
    hub.deliver("deployment_protection_rule", requested())
    hub.deliver("deployment_review", reviewed("rejected"))
    assert len(answers(hub)) == 1


def test_a_comment_fits_1024_characters_and_keeps_its_link():
    pr_commits = [Commit(sha=c * 40, message="x" * 5000) for c in "123"]
    assert pr_commits  # long commit messages make long signal lists
    decision = run(policy_set(POLICY_TEXT), agent_identity(environment="production"), "deploy", evidence())
    long = decision.model_copy(
        update={"remedy": "r" * 5000, "details_url": "http://gate.test/decisions/dec_x"}
    )
    text = comment(long, attempt=3)
    assert len(text.encode()) <= MAX_COMMENT_BYTES
    assert text.endswith("Decision: http://gate.test/decisions/dec_x")


def test_a_redelivered_request_keeps_its_comment_count(hub):
    payload = requested()
    hub.deliver("deployment_protection_rule", payload, delivery="d-1")
    hub.deliver("deployment_protection_rule", payload, delivery="d-1")
    assert len(answers(hub)) == 1, "a duplicate delivery is not run twice"
    store = hub.app.extensions["agent_gate"].store
    [held] = store.find_deployment_gates(2000, run_id=RUN)
    assert (held["comments"], held["state"]) == (1, "pending")
    assert json.dumps(held)  # a plain JSON record


# --- break-glass holds here too ----------------------------------------------------------------------

BREAK_GLASS_POLICY = (
    POLICY
    + """break_glass:
  invokers: ["@bob"]
"""
)


def live_break_glass(hub: Hub, action: str = "deploy") -> None:
    now = int(time.time())
    hub.app.extensions["agent_gate"].store.save_break_glass(
        {
            "id": "bg_test",
            "repository": "octo-org/octo-repo",
            "repository_id": 2000,
            "owner_id": 1000,
            "action": action,
            "justification": "outage: roll back the broken release",
            "invoker": "bob",
            "invoker_id": 1002,
            "run_id": 1,
            "confirmer": None,
            "state": "active",
            "created_at": now,
            "expires_at": now + 600,
            "uses": [],
        }
    )


def test_a_live_break_glass_lets_a_persons_held_deployment_through(tmp_path):
    scenario = base_scenario()
    scenario.runs[RUN].head_sha = "e" * 40  # a person's change (no PR), production needs an approval
    h = Hub(tmp_path, scenario, policy=BREAK_GLASS_POLICY)
    try:
        h.deliver("deployment_protection_rule", requested(sha="e" * 40, deployment=deployment("e" * 40)))
        assert [a.get("state") for a in answers(h)] == [None], "waits for an approval"
        live_break_glass(h)
        h.scenario.runs[RUN].approvals = [
            {"user": CAROL, "state": "approved", "environments": ["production"]}
        ]
        h.deliver("deployment_review", reviewed(n=1))
        approved = answers(h)[-1]
        assert approved["state"] == "approved"
        assert "break-glass bg_test of @bob" in approved["comment"] or "Allowed" in approved["comment"]
        kinds = [r.kind for r in h.app.extensions["agent_gate"].store.iter_audit()]
        assert "break-glass-used" in kinds
    finally:
        h.close()


def test_a_break_glass_never_lets_an_agent_deployment_through(tmp_path):
    h = Hub(tmp_path, base_scenario(), policy=BREAK_GLASS_POLICY)  # run 9000 deploys Copilot's PR head
    try:
        live_break_glass(h)
        h.deliver("deployment_protection_rule", requested())
        assert [a.get("state") for a in answers(h)] == [None], "still waits for an independent approval"
    finally:
        h.close()
