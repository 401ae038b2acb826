"""Check runs of POST /v1/decisions leave the request path: queued durably, posted by the queue.

The answer never waits on GitHub's check-run API (nor fails with it); the check is posted by the
queue's workers, with retries, on the commit the decision judged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.tokens.devissuer import DevIssuer
from tests.fake_github import Failure
from tests.github.conftest import BOB, HEAD, base_scenario
from tests.web.test_webhook import Hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    yield h
    h.close()


def merge(hub: Hub) -> dict:
    token = DevIssuer(hub.app.extensions["agent_gate"].settings.data_dir).mint(
        audience="agent-gate", sha="b" * 40, event_name="workflow_dispatch"
    )
    response = hub.web.post(
        "/v1/decisions",
        json={"action": "merge", "pull_request": 12},
        headers={"Authorization": f"Bearer {token}"},
    )
    body: dict = response.get_json()
    return body


def check_posts(hub: Hub) -> list[dict]:
    return [r for r in hub.scenario.requests if r["path"].endswith("/check-runs")]


def test_the_answer_does_not_wait_for_the_check_run(hub):
    hub.scenario.prs[12].reviews.append({"user": BOB, "state": "APPROVED", "commit_id": HEAD, "id": 2})
    decision = merge(hub)
    assert decision["allowed"] is True, decision["reasons"]
    assert check_posts(hub) == [], "no check-run call inside the request"
    assert hub.queue.drain() == 1
    [check] = list(hub.scenario.check_runs.values())
    assert (check["head_sha"], check["conclusion"]) == (HEAD, "success"), "on the judged head, not main"


def test_a_check_run_github_refuses_is_posted_on_retry(hub):
    hub.scenario.failures.append(Failure(r"/check-runs$", 502, method="POST", times=1))
    merge(hub)
    hub.queue.drain()
    assert hub.scenario.check_runs == {}
    hub.queue.clock = lambda: time.time() + 3600
    assert hub.queue.drain() == 1
    assert len(hub.scenario.check_runs) == 1
