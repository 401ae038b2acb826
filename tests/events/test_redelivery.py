"""The redelivery sweep: what GitHub sent while the gate was down is asked for again, once.

A gate that was down while events were sent, against the fake GitHub, which records every attempt
as ``GET /app/hook/deliveries`` lists it and delivers again when asked
(``POST /app/hook/deliveries/{id}/attempts``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.events.redelivery import MAX_ASKS_PER_EVENT, RedeliverySweep
from app.server import start_queue
from tests.fake_github import send_webhook
from tests.github.conftest import base_scenario
from tests.web.test_webhook import Hub, sign

REVIEW = {"user": {"login": "bob", "id": 1002}}


class Downtime:
    """Where GitHub delivers: the gate's webhook while it is up, nothing while it is down."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.up = True
        self.lose_answers = False  # the gate keeps the delivery, but its answer never reaches GitHub

    def __call__(self, event: str, guid: str, body: bytes) -> int | None:
        if not self.up:
            return None
        response = self.hub.web.post(
            "/v1/github/webhook",
            data=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": guid,
                "X-Hub-Signature-256": sign(body),
                "Content-Type": "application/json",
            },
        )
        return None if self.lose_answers else response.status_code


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    h.scenario.hook_target = Downtime(h)
    yield h
    h.close()


def sweep_of(hub: Hub) -> RedeliverySweep:
    sweep: RedeliverySweep = hub.app.extensions["agent_gate_redelivery"]
    return sweep


def down(hub: Hub) -> Downtime:
    target: Downtime = hub.scenario.hook_target
    return target


def send(hub: Hub, event: str, action: str, **extra: Any) -> dict[str, Any]:
    return send_webhook(hub.scenario, event, hub.payload(action, **extra))


def test_events_sent_while_the_gate_was_down_are_redelivered_and_decided(hub: Hub) -> None:
    down(hub).up = False
    labeled = send(hub, "pull_request", "labeled")
    review = send(hub, "pull_request_review", "submitted", review=REVIEW)
    ping = send_webhook(hub.scenario, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert [d["status_code"] for d in (labeled, review, ping)] == [502, 502, 502]
    assert hub.merge_check_runs() == [], "the gate heard nothing"

    down(hub).up = True  # the gate is back; GitHub sends nothing by itself
    report = sweep_of(hub).sweep()
    assert report is not None
    assert sorted(hub.scenario.redelivery_requests) == sorted([labeled["id"], review["id"]]), (
        "the two events the gate handles, not the ping"
    )
    assert report.asked and report.failed == 2 and report.left == 0
    redelivered = [d for d in hub.scenario.hook_deliveries if d["redelivery"]]
    assert {d["guid"] for d in redelivered} == {labeled["guid"], review["guid"]}, "same X-GitHub-Delivery"
    assert all(d["status_code"] == 202 for d in redelivered)
    hub.queue.drain()
    assert hub.merge_check()["conclusion"] == "action_required", "the merge check is current again"


def test_a_second_sweep_asks_for_nothing_already_recovered(hub: Hub) -> None:
    down(hub).up = False
    send(hub, "pull_request", "labeled")
    down(hub).up = True
    sweep_of(hub).sweep()
    asked = list(hub.scenario.redelivery_requests)
    report = sweep_of(hub).sweep()
    assert report is not None and report.asked == () and report.failed == 0
    assert hub.scenario.redelivery_requests == asked, "a recovered event is never asked again"


def test_each_failed_delivery_is_asked_for_once_and_an_event_at_most_three_times(hub: Hub) -> None:
    down(hub).up = False  # and it stays down: every redelivery fails too
    first = send(hub, "pull_request", "labeled")
    for _ in range(MAX_ASKS_PER_EVENT + 2):
        sweep_of(hub).sweep()
    asked = hub.scenario.redelivery_requests
    assert len(asked) == MAX_ASKS_PER_EVENT, "bounded per event"
    assert len(set(asked)) == len(asked), "never the same delivery id twice"
    assert asked[0] == first["id"]
    ids = [d["id"] for d in hub.scenario.hook_deliveries]
    assert asked == ids[:MAX_ASKS_PER_EVENT], "each time the latest failed attempt of the event"
    report = sweep_of(hub).sweep()
    assert report is not None and report.given_up == 1


def test_a_delivery_the_gate_holds_is_not_asked_for_though_github_saw_it_fail(hub: Hub) -> None:
    down(hub).lose_answers = True  # stored and queued, but GitHub timed out waiting for the answer
    lost = send(hub, "pull_request", "labeled")
    assert lost["status_code"] == 502
    report = sweep_of(hub).sweep()
    assert report is not None and report.held == 1 and report.asked == ()
    assert hub.scenario.redelivery_requests == []


def test_a_sweep_is_bounded_and_the_rest_waits_for_the_next(hub: Hub) -> None:
    down(hub).up = False
    sent = [send(hub, "pull_request_review", "submitted", review=REVIEW) for _ in range(3)]
    down(hub).up = True
    sweep = sweep_of(hub)
    sweep.per_sweep = 2
    report = sweep.sweep()
    assert report is not None and len(report.asked) == 2 and report.left == 1
    assert hub.scenario.redelivery_requests == [sent[0]["id"], sent[1]["id"]], "the oldest first"
    report = sweep.sweep()
    assert report is not None and report.asked == (sent[2]["id"],)


def test_deliveries_older_than_the_window_are_left_alone(hub: Hub) -> None:
    down(hub).up = False
    old = send(hub, "pull_request", "labeled")
    old["delivered_at"] = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = send(hub, "pull_request", "unlabeled")
    report = sweep_of(hub).sweep()  # GATE_REDELIVERY_WINDOW: one day by default
    assert report is not None and report.listed == 1
    assert hub.scenario.redelivery_requests == [recent["id"]]


def test_the_listing_follows_githubs_cursor(hub: Hub) -> None:
    down(hub).up = False
    sent = [send(hub, "pull_request_review", "edited", review=REVIEW) for _ in range(130)]
    down(hub).up = True
    sweep = sweep_of(hub)
    sweep.per_sweep = 200
    report = sweep.sweep()
    assert report is not None and report.listed == 130
    assert sorted(hub.scenario.redelivery_requests) == sorted(d["id"] for d in sent)
    queries = [r["query"] for r in hub.scenario.requests if r["path"] == "/app/hook/deliveries"]
    assert len(queries) == 2 and "cursor=" in queries[1]
    assert all(r["headers"]["Authorization"].startswith("Bearer ey") for r in hub.scenario.requests[-3:])


def test_one_worker_sweeps_at_a_time(hub: Hub) -> None:
    down(hub).up = False
    send(hub, "pull_request", "labeled")
    first = sweep_of(hub)
    other = RedeliverySweep(
        store=first.store,
        github=first.github,
        clock=first.clock,
        events=first.events,
        interval=first.interval,
        window=first.window,
        per_sweep=first.per_sweep,
        queue_limit=first.queue_limit,
    )
    assert first.sweep() is not None
    assert other.sweep() is None, "the lease is held by the first worker"
    assert len(hub.scenario.redelivery_requests) == 1


def test_the_sweep_runs_after_start_up_on_its_own_thread(hub: Hub) -> None:
    down(hub).up = False
    send(hub, "pull_request", "labeled")
    down(hub).up = True
    sweep = sweep_of(hub)
    sweep.start(delay=0)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not hub.scenario.redelivery_requests and datetime.now(UTC) < deadline:
            hub.queue.wakeup.wait(0.05)
    finally:
        sweep.stop()
    assert len(hub.scenario.redelivery_requests) == 1


def test_a_redelivery_github_refuses_is_left_for_the_next_sweep(hub: Hub) -> None:
    down(hub).up = False
    sent = send(hub, "pull_request", "labeled")
    down(hub).up = True
    hub.scenario.failures.append(
        {"path": r"/app/hook/deliveries/\d+/attempts", "method": "POST", "status": 422, "times": 1}
    )
    report = sweep_of(hub).sweep()
    assert report is not None and report.asked == () and report.left == 1
    report = sweep_of(hub).sweep()
    assert report is not None and report.asked == (sent["id"],), "not recorded as asked: asked again"
    metrics = hub.web.get("/metrics").get_data(as_text=True)
    assert 'agent_gate_webhook_redeliveries_total{outcome="failed"}' in metrics
    assert 'agent_gate_webhook_redeliveries_total{outcome="asked"}' in metrics


def test_a_sweep_that_cannot_list_the_deliveries_fails_closed_and_the_thread_carries_on(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.scenario.failures.append({"path": "/app/hook/deliveries", "status": 500})
    sweep = sweep_of(hub)
    sweep.interval = 1
    with caplog.at_level("WARNING", logger="agent_gate.redelivery"):
        sweep.start(delay=0)
        try:
            deadline = datetime.now(UTC) + timedelta(seconds=10)
            while not any("redelivery sweep failed" in r.getMessage() for r in caplog.records):
                assert datetime.now(UTC) < deadline, "the failure was not logged"
                hub.queue.wakeup.wait(0.05)
        finally:
            sweep.stop()
    assert hub.scenario.redelivery_requests == []
    assert 'agent_gate_webhook_redelivery_sweeps_total{outcome="failed"}' in hub.web.get("/metrics").get_data(
        as_text=True
    )


def test_no_sweep_without_the_github_app(app: Any) -> None:
    assert app.extensions["agent_gate_redelivery"] is None


def test_each_worker_starts_the_sweep_beside_its_queue_threads(hub: Hub) -> None:
    before = {t.name for t in threading.enumerate()}
    start_queue(hub.app)
    try:
        started = {t.name for t in threading.enumerate()} - before
        assert "agent-gate-redelivery" in started
    finally:
        sweep_of(hub).stop()
        hub.queue.stop()
