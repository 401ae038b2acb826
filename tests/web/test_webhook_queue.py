"""The webhook's queue: deliveries about one subject coalesce, total pending work is bounded, and
past the bound the answer is 503 in the gate's error shape; the redelivery sweep recovers the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.events.redelivery import RedeliverySweep
from tests.events.test_redelivery import Downtime
from tests.fake_github import send_webhook
from tests.github.conftest import base_scenario
from tests.web.test_webhook import Hub

REVIEW = {"user": {"login": "bob", "id": 1002}}
LIMIT = 10


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario(), queue_max_pending=LIMIT)
    h.scenario.hook_target = Downtime(h)
    yield h
    h.close()


def statuses(hub: Hub, deliveries: list[tuple[str, str]]) -> list[tuple[int, str]]:
    answers = []
    for i, (event, action) in enumerate(deliveries):
        # Each body its own (a label's name, a review's id): the same body twice is "same-body".
        extra = (
            {"review": {**REVIEW, "id": 80 + i}}
            if event == "pull_request_review"
            else {"label": {"name": f"l{i}"}}
        )
        response = hub.deliver(event, hub.payload(action, **extra), process=False)
        body = response.get_json()
        answers.append((response.status_code, body.get("status") or body["errors"][0]["code"]))
    return answers


def test_deliveries_about_one_pull_request_head_share_one_pending_job(hub: Hub) -> None:
    answers = statuses(
        hub,
        [
            ("pull_request", "labeled"),
            ("pull_request", "unlabeled"),
            ("pull_request", "labeled"),
            ("pull_request_review", "submitted"),  # other handlers: a job of its own
            ("pull_request_review", "edited"),
        ],
    )
    assert answers == [
        (202, "queued"),
        (200, "coalesced"),
        (200, "coalesced"),
        (202, "queued"),
        (200, "coalesced"),
    ]
    assert hub.queue.drain() == 2, "two runs for five deliveries"
    assert hub.merge_check()["conclusion"] == "action_required"


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("pull_request", "synchronize"),  # revokes the old head's grants
        ("pull_request", "closed"),
        ("pull_request_review", "dismissed"),  # revokes the grants it approved
    ],
    ids=["a-push", "a-close", "a-dismissal"],
)
def test_deliveries_that_do_more_than_decide_again_never_coalesce(hub: Hub, event: str, action: str) -> None:
    first = "pull_request_review" if event == "pull_request_review" else "pull_request"
    opening = "submitted" if first == "pull_request_review" else "labeled"
    assert statuses(hub, [(first, opening), (event, action)])[1] == (202, "queued")


def test_past_the_bound_the_webhook_answers_503_and_keeps_nothing(hub: Hub) -> None:
    for number in range(LIMIT):
        payload = hub.payload("closed")  # never coalesced: each is pending work of its own
        payload["pull_request"]["number"] = payload["number"] = 100 + number
        assert hub.deliver("pull_request", payload, process=False).status_code == 202
    response = hub.deliver("pull_request", hub.payload("opened"), delivery="one-too-many", process=False)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    error = response.get_json()
    assert error["errors"][0]["code"] == "queue-full"
    assert error["message"].startswith("the gate's webhook queue holds its bound of 10 pending jobs")
    assert "GATE_QUEUE_MAX_PENDING" in error["message"]
    assert hub.app.extensions["agent_gate"].store.known_deliveries(["one-too-many"]) == set()
    metrics = hub.web.get("/metrics").get_data(as_text=True)
    assert "agent_gate_webhook_queue_limit 10.0" in metrics
    assert 'agent_gate_webhook_deliveries_total{status="queue-full"}' in metrics


def test_what_a_full_queue_refused_is_recovered_by_the_sweep_once_drained(hub: Hub) -> None:
    for number in range(LIMIT):
        payload = hub.payload("closed")
        payload["pull_request"]["number"] = payload["number"] = 100 + number
        send_webhook(hub.scenario, "pull_request", payload)
    refused = send_webhook(hub.scenario, "pull_request", hub.payload("opened"))
    assert refused["status_code"] == 503
    sweep: RedeliverySweep = hub.app.extensions["agent_gate_redelivery"]
    assert sweep.sweep() is None, "no redelivery into a queue that is more than half full"
    assert hub.scenario.redelivery_requests == []
    hub.queue.drain()
    report = sweep.sweep()
    assert report is not None and report.asked == (refused["id"],)
    hub.queue.drain()
    assert hub.merge_check()["conclusion"] == "action_required", "the refused event was decided after all"
