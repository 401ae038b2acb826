"""The merge check cannot be faked by another App and is never left stale.

Another App (or a workflow) may post a check run named ``agent-gate / merge``: the gate neither
reads nor updates it, and the ruleset pins the check to the agent-gate App. The check is evaluated
again on every event that can change its inputs, and a delivery whose processing failed is
processed when retried or redelivered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_github import APP_ID, Failure
from tests.github.conftest import BOB, HEAD, base_scenario
from tests.web.test_webhook import Hub

OTHER_APP = 99


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    yield h
    h.close()


def gate_checks(hub: Hub) -> list[dict[str, Any]]:
    return [c for c in hub.scenario.check_runs.values() if c["app_id"] == APP_ID]


def plant_forged_check(hub: Hub, conclusion: str = "success") -> dict[str, Any]:
    forged = {
        "id": 1000,
        "app_id": OTHER_APP,
        "name": "agent-gate / merge",
        "head_sha": HEAD,
        "status": "completed",
        "conclusion": conclusion,
        "history": [],
    }
    hub.scenario.check_runs[1000] = forged
    return forged


def test_another_apps_check_of_the_same_name_is_never_read_or_updated(hub):
    forged = plant_forged_check(hub)
    hub.deliver("pull_request", hub.payload("opened"))
    [ours] = gate_checks(hub)
    assert ours["conclusion"] == "action_required", "the gate's own check says what it decided"
    assert forged["history"] == [] and forged["conclusion"] == "success", "the forged one is left alone"
    lists = [r for r in hub.scenario.requests if r["path"].endswith("/check-runs") and r["method"] == "GET"]
    assert lists and all(f"app_id={APP_ID}" in r["query"] for r in lists), "filtered by App id at GitHub"


@pytest.mark.parametrize(
    ("event", "payload_extra", "action"),
    [
        pytest.param("pull_request", {"label": {"name": "ai-generated"}}, "labeled", id="labeled"),
        pytest.param("pull_request", {"label": {"name": "ai-generated"}}, "unlabeled", id="unlabeled"),
        pytest.param(
            "pull_request", {"changes": {"base": {"ref": {"from": "develop"}}}}, "edited", id="base-edited"
        ),
    ],
)
def test_label_and_base_changes_evaluate_the_check_again(hub, event, payload_extra, action):
    hub.deliver("pull_request", hub.payload("opened"))
    hub.scenario.prs[12].reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    hub.deliver(event, hub.payload(action, **payload_extra))
    [check] = gate_checks(hub)
    assert check["conclusion"] == "success", "evaluated again, with the new approval"
    assert len(check["history"]) == 2


def test_a_title_edit_changes_nothing(hub):
    hub.deliver("pull_request", hub.payload("opened"))
    calls = len(hub.scenario.requests)
    hub.deliver("pull_request", hub.payload("edited", changes={"title": {"from": "old"}}))
    assert len(hub.scenario.requests) == calls


def rerequested(hub: Hub, event: str, app_id: int, name: str = "agent-gate / merge") -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": 1,
        "app": {"id": app_id, "slug": "agent-gate"},
        "pull_requests": [{"number": 12, "head": {"sha": HEAD}}],
        "head_sha": HEAD,
    }
    if event == "check_run":
        item["name"] = name
    base = hub.payload("rerequested")
    return {"action": "rerequested", event: item, "repository": base["repository"], "sender": base["sender"]}


@pytest.mark.parametrize("event", ["check_run", "check_suite"])
def test_the_rerun_button_evaluates_the_check_again(hub, event):
    hub.deliver("pull_request", hub.payload("opened"))
    hub.scenario.prs[12].reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    hub.deliver(event, rerequested(hub, event, APP_ID))
    [check] = gate_checks(hub)
    assert check["conclusion"] == "success"


@pytest.mark.parametrize("event", ["check_run", "check_suite"])
def test_a_rerun_of_another_apps_check_is_ignored(hub, event):
    hub.deliver(event, rerequested(hub, event, OTHER_APP))
    assert gate_checks(hub) == [] and hub.scenario.requests == []


def test_a_failed_check_post_is_retried_and_posted(hub):
    hub.scenario.failures.append(Failure(r"/check-runs$", 502, method="POST", times=1))
    hub.deliver("pull_request", hub.payload("opened"))
    assert gate_checks(hub) == [], "GitHub refused the check run"
    queue = hub.queue
    queue.clock = lambda: time.time() + 3600
    assert queue.drain() == 1
    [check] = gate_checks(hub)
    assert check["conclusion"] == "action_required"


def test_a_delivery_given_up_is_processed_when_github_redelivers_it(hub):
    # GitHub keeps failing past every retry: the job is given up; when GitHub is back, an admin
    # presses Redeliver (same delivery id, same body) and the check is posted.
    hub.scenario.failures.append(Failure.server_error(r"/pulls/12$", 502))
    queue = hub.queue
    queue.max_attempts = 2
    hub.deliver("pull_request", hub.payload("opened"), delivery="d-1")
    queue.clock = lambda: time.time() + 3600
    queue.drain()
    store = hub.app.extensions["agent_gate"].store
    assert store.queue_stats(now=int(time.time())).dead == 1
    hub.scenario.failures.clear()
    again = hub.deliver("pull_request", hub.payload("opened"), delivery="d-1")
    assert again.status_code == 202 and again.get_json()["status"] == "queued"
    [check] = gate_checks(hub)
    assert check["conclusion"] == "action_required"


def test_the_webhook_made_check_has_no_dead_link_and_no_repeated_signal(hub):
    hub.deliver("pull_request", hub.payload("opened"))
    [check] = gate_checks(hub)
    summary = check["output"]["summary"]
    assert "/actions/runs/0" not in summary
    signals = [line for line in summary.splitlines() if line.startswith("- ")]
    assert len(signals) == len(set(signals)) and signals
    assert not any("PR #12 author" in line for line in signals), "the author is already the actor"
