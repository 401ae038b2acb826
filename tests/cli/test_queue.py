"""``agent-gate queue list`` and ``queue retry``: the jobs given up on are visible, and retried on demand."""

from __future__ import annotations

import json
import time

import pytest

from app.cli import main
from tests.store.conftest import open_any

LEASE = 60


@pytest.fixture
def queue_url(store_url: str) -> str:
    """A store on either backend holding a queued job (d-live) and one given up on (d-dead)."""
    store = open_any(store_url)
    now = int(time.time())
    store.enqueue_job("d-dead", "webhook", "pull_request", b'{"n": 1}', now=now - 100)
    job = store.claim_job("w", now=now - 100, lease=LEASE)
    assert job is not None
    store.fail_job(job.id, "w", now=now - 90, error="github-unavailable", retry_at=None)
    store.enqueue_job("d-live", "webhook", "deployment_protection_rule", b'{"n": 2}', now=now + 3600)
    store.close()
    return store_url


def test_list_names_every_job_and_the_given_up_ones_error(queue_url, capsys):
    assert main(["queue", "list", "--database", queue_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("d-live queued deployment_protection_rule (webhook), attempts 0, queued ")
    assert lines[1].startswith("d-dead dead pull_request (webhook), attempts 1, queued ")
    assert lines[2] == "  last error: github-unavailable"
    assert lines[3] == "2 job(s); `agent-gate queue retry ID` queues one again"


def test_list_dead_as_json(queue_url, capsys):
    assert main(["queue", "list", "--dead", "--format", "json", "--database", queue_url]) == 0
    [job] = json.loads(capsys.readouterr().out)
    assert {k: job[k] for k in ("id", "kind", "topic", "state", "attempts", "last_error")} == {
        "id": "d-dead",
        "kind": "webhook",
        "topic": "pull_request",
        "state": "dead",
        "attempts": 1,
        "last_error": "github-unavailable",
    }
    assert sorted(job) == sorted(
        ["id", "kind", "topic", "state", "attempts", "due_at", "created_at", "updated_at", "last_error"]
    )


def test_retry_queues_a_job_given_up_on_again(queue_url, capsys):
    assert main(["queue", "retry", "d-dead", "--database", queue_url]) == 0
    assert capsys.readouterr().out.startswith("job d-dead queued again: the next queue worker runs it")
    assert main(["queue", "list", "--dead", "--format", "json", "--database", queue_url]) == 0
    assert json.loads(capsys.readouterr().out) == []
    store = open_any(queue_url)
    try:
        job = store.claim_job("w", now=int(time.time()), lease=LEASE)
    finally:
        store.close()
    assert job is not None and (job.id, job.attempts) == ("d-dead", 1)


def test_retry_as_json(queue_url, capsys):
    assert main(["queue", "retry", "d-dead", "--format", "json", "--database", queue_url]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "d-dead", "state": "queued", "was": "dead"}


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        pytest.param("d-live", "job d-live is queued, not given up (it runs when due)", id="a-queued-job"),
        pytest.param("d-nowhere", "no job d-nowhere in the queue", id="no-such-job"),
    ],
)
def test_retry_refuses_what_is_not_given_up(queue_url, capsys, job_id, message):
    assert main(["queue", "retry", job_id, "--database", queue_url]) == 1
    assert message in capsys.readouterr().err


def test_list_refuses_a_limit_below_one(queue_url, capsys):
    assert main(["queue", "list", "--limit", "0", "--database", queue_url]) == 1
    assert "--limit: got 0, expected 1 or more" in capsys.readouterr().err


def test_queue_alone_shows_its_commands(capsys):
    assert main(["queue"]) == 2
    out = capsys.readouterr().out
    assert "list" in out and "retry" in out
