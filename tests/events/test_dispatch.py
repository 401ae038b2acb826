"""From a queued delivery to its typed event and handlers: a payload that does not fit is refused at
the boundary as invalid-payload (given up at once); a bug inside a handler is a crash of the job
with its traceback in the log, retried, and never called a bad payload."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.events import dispatch
from tests.github.conftest import base_scenario
from tests.web.test_webhook import Hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    yield h
    h.close()


def _stats(h: Hub) -> tuple[int, int]:
    stats = h.app.extensions["agent_gate"].store.queue_stats(now=2**31)
    return stats.depth, stats.dead


def test_a_handler_gets_the_typed_event(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setitem(dispatch.HANDLERS, "pull_request", (lambda g, event, d: seen.append(event) or {},))
    hub.deliver("pull_request", hub.payload("opened"))
    [event] = seen
    assert (event.pull_request.number, event.repository.id, event.action) == (12, 2000, "opened")


def test_a_bug_in_a_handler_is_a_crash_with_its_traceback_never_an_invalid_payload(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def buggy(g, event, delivery):
        return {}["missing"]  # a programming error: a KeyError

    monkeypatch.setitem(dispatch.HANDLERS, "pull_request", (buggy,))
    with caplog.at_level(logging.WARNING, logger="agent_gate.queue"):
        hub.deliver("pull_request", hub.payload("opened"))
    assert _stats(hub) == (1, 0), "retried later, not given up as a payload that can never be handled"
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None and failed[0].exc_info[0] is KeyError
    assert "invalid-payload" not in caplog.text


@pytest.mark.parametrize(
    ("event", "patch", "field"),
    [
        pytest.param("pull_request", {"repository": None}, "repository", id="no-repository"),
        pytest.param(
            "pull_request", {"pull_request": {"number": "12"}}, "pull_request", id="pr-of-wrong-shape"
        ),
        pytest.param("check_run", {"check_run": []}, "check_run", id="check-run-is-a-list"),
        pytest.param("deployment_review", {"workflow_run": "9"}, "workflow_run", id="run-is-a-string"),
    ],
)
def test_a_payload_that_does_not_fit_is_given_up_at_the_boundary(
    hub: Hub, caplog: pytest.LogCaptureFixture, event: str, patch: dict[str, object], field: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent_gate.queue"):
        hub.deliver(event, {**hub.payload("rerequested"), **patch})
    assert _stats(hub) == (0, 1)
    assert "invalid-payload" in caplog.text and field in caplog.text
    assert hub.scenario.requests == [], "no GitHub call is made for it"
