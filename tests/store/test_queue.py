"""The durable job queue: every verified delivery is kept, leased to one worker at a time, retried,
and run once; a redelivery of a job given up on runs again, a replayed body under a new id does not.
On both stores: SQLite (BEGIN IMMEDIATE) and PostgreSQL (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import pytest

from app.store.base import DUPLICATE, QUEUED, SAME_BODY, Store
from tests.store.conftest import open_any

LEASE = 60


@pytest.fixture
def store(any_store: Store) -> Store:
    """Each specification here runs on both backends."""
    return any_store


def enqueue(store: Store, job_id: str = "d-1", body: bytes = b'{"n": 1}', now: int = 100) -> str:
    return store.enqueue_job(job_id, "webhook", "pull_request", body, now=now)


def test_a_job_is_leased_to_one_worker_and_done_once(store: Store) -> None:
    assert enqueue(store) == QUEUED
    job = store.claim_job("w1", now=100, lease=LEASE)
    assert job is not None and (job.id, job.topic, job.body, job.attempts) == (
        "d-1",
        "pull_request",
        b'{"n": 1}',
        1,
    )
    assert store.claim_job("w2", now=101, lease=LEASE) is None, "leased to w1"
    assert store.complete_job("d-1", "w1", now=102) is True
    assert store.claim_job("w2", now=10_000, lease=LEASE) is None, "done jobs never run again"
    assert store.queue_stats(now=200).depth == 0


@pytest.mark.parametrize(
    ("second_id", "second_body", "expected"),
    [
        pytest.param("d-1", b'{"n": 1}', DUPLICATE, id="a-redelivery-of-a-queued-job"),
        pytest.param("d-2", b'{"n": 1}', SAME_BODY, id="the-same-signed-body-under-a-new-id"),
        pytest.param("d-2", b'{"n": 2}', QUEUED, id="another-event"),
    ],
)
def test_duplicates_are_not_queued_twice(
    store: Store, second_id: str, second_body: bytes, expected: str
) -> None:
    enqueue(store)
    assert enqueue(store, second_id, second_body) == expected


def test_a_redelivery_after_the_job_was_done_is_a_duplicate(store: Store) -> None:
    enqueue(store)
    job = store.claim_job("w", now=100, lease=LEASE)
    assert job is not None and store.complete_job(job.id, "w", now=101)
    assert enqueue(store, now=500) == DUPLICATE


def test_a_job_given_up_on_runs_again_when_github_redelivers_it(store: Store) -> None:
    enqueue(store)
    job = store.claim_job("w", now=100, lease=LEASE)
    assert job is not None
    assert store.fail_job(job.id, "w", now=101, error="github-unavailable", retry_at=None)
    assert store.claim_job("w", now=10_000, lease=LEASE) is None, "given up"
    assert store.queue_stats(now=102).dead == 1
    # A redelivery from GitHub's UI carries the same delivery id (and body): it is queued again.
    assert enqueue(store, now=200) == QUEUED
    again = store.claim_job("w", now=200, lease=LEASE)
    assert again is not None and again.attempts == 1


def test_a_failed_job_is_retried_when_due(store: Store) -> None:
    enqueue(store)
    job = store.claim_job("w", now=100, lease=LEASE)
    assert job is not None and store.fail_job(job.id, "w", now=101, error="503", retry_at=160)
    assert store.claim_job("w", now=159, lease=LEASE) is None, "not due yet"
    retried = store.claim_job("w", now=160, lease=LEASE)
    assert retried is not None and retried.attempts == 2


def test_a_worker_that_died_releases_its_job_when_the_lease_ends(store: Store) -> None:
    enqueue(store)
    assert store.claim_job("dead-worker", now=100, lease=LEASE) is not None
    assert store.claim_job("w2", now=100 + LEASE - 1, lease=LEASE) is None
    taken = store.claim_job("w2", now=100 + LEASE, lease=LEASE)
    assert taken is not None and taken.attempts == 2
    # The worker that lost its lease can neither finish nor fail the job any more.
    assert store.complete_job("d-1", "dead-worker", now=200) is False
    assert store.fail_job("d-1", "dead-worker", now=200, error="x", retry_at=300) is False
    assert store.complete_job("d-1", "w2", now=200) is True


def test_oldest_due_first(store: Store) -> None:
    enqueue(store, "d-late", b"late", now=105)
    enqueue(store, "d-early", b"early", now=100)
    job = store.claim_job("w", now=110, lease=LEASE)
    assert job is not None and job.id == "d-early"


def test_queue_stats_say_depth_and_age(store: Store) -> None:
    enqueue(store, "a", b"a", now=100)
    enqueue(store, "b", b"b", now=150)
    stats = store.queue_stats(now=200)
    assert (stats.depth, stats.oldest_age, stats.dead) == (2, 100, 0)


def test_concurrent_workers_never_run_one_job_twice(store_url: str) -> None:
    # Several workers, each with its own store (as gunicorn workers and replicas have), race for
    # 60 jobs: every job is taken exactly once.
    stores = [open_any(store_url) for _ in range(4)]
    for i in range(60):
        enqueue(stores[0], f"d-{i}", f"body-{i}".encode())
    taken: list[str] = []
    lock = threading.Lock()

    def work(store: Store, name: str) -> None:
        while (job := store.claim_job(name, now=1_000, lease=LEASE)) is not None:
            assert store.complete_job(job.id, name, now=1_000)
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=work, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(taken) == sorted(f"d-{i}" for i in range(60))


def test_held_deployments_are_kept_per_run_and_environment(store: Store) -> None:
    base = {"repository_id": 7, "run_id": 9, "environment": "production", "state": "pending", "comments": 1}
    store.save_deployment_gate(base)
    store.save_deployment_gate({**base, "environment": "staging"})
    store.save_deployment_gate({**base, "comments": 2})  # replaces the production one
    pending = store.find_deployment_gates(7)
    assert [(g["environment"], g["comments"]) for g in pending] == [("production", 2), ("staging", 1)]
    store.save_deployment_gate({**base, "state": "approved"})
    assert [g["environment"] for g in store.find_deployment_gates(7, run_id=9)] == ["staging"]
    assert store.find_deployment_gates(8) == []
    assert len(store.find_deployment_gates(7, state=None)) == 2


def _claim_and_die(url: str) -> None:
    store = open_any(url)
    assert store.claim_job("doomed-worker", now=1_000, lease=LEASE) is not None
    os.kill(os.getpid(), signal.SIGKILL)  # mid-job: no complete, no fail, no close


@pytest.mark.slow
def test_a_worker_killed_mid_job_releases_it_when_the_lease_ends(store_url: str) -> None:
    first = open_any(store_url)
    enqueue(first, "d-1", b"body", now=1_000)
    first.close()
    child = multiprocessing.Process(target=_claim_and_die, args=(store_url,))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    survivor = open_any(store_url)
    try:
        assert survivor.claim_job("w2", now=1_000 + LEASE - 1, lease=LEASE) is None, "still leased"
        job = survivor.claim_job("w2", now=1_000 + LEASE, lease=LEASE)
        assert job is not None and (job.id, job.attempts) == ("d-1", 2)
        assert survivor.complete_job("d-1", "w2", now=1_000 + LEASE)
    finally:
        survivor.close()


def give_up(store: Store, job_id: str, *, now: int, error: str = "github-unavailable") -> None:
    job = store.claim_job("w", now=now, lease=LEASE)
    assert job is not None and job.id == job_id
    assert store.fail_job(job_id, "w", now=now + 1, error=error, retry_at=None)


def test_jobs_are_listed_for_operators_most_recent_first(store: Store) -> None:
    enqueue(store, "d-1", b"1", now=100)
    enqueue(store, "d-2", b"2", now=110)
    give_up(store, "d-1", now=120, error="github-unavailable")
    listed = store.list_jobs()
    assert [(j.id, j.state, j.attempts, j.last_error) for j in listed] == [
        ("d-1", "dead", 1, "github-unavailable"),
        ("d-2", "queued", 0, None),
    ]
    dead = store.list_jobs(state="dead")
    assert [(j.id, j.kind, j.topic, j.created_at, j.updated_at) for j in dead] == [
        ("d-1", "webhook", "pull_request", 100, 121)
    ]
    assert store.list_jobs(state="done") == []
    assert [j.id for j in store.list_jobs(limit=1)] == ["d-1"]


def test_a_job_given_up_on_is_retried_by_an_operator(store: Store) -> None:
    enqueue(store, "d-1", now=100)
    give_up(store, "d-1", now=100)
    assert store.retry_job("d-1", now=500) == "dead"
    assert store.queue_stats(now=500).dead == 0
    again = store.claim_job("w", now=500, lease=LEASE)
    assert again is not None and (again.id, again.attempts) == ("d-1", 1), "its attempts counted afresh"
    assert store.list_jobs()[0].last_error == "github-unavailable", "kept until it runs"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param("queued", "queued", id="a-queued-job-waits-for-its-time"),
        pytest.param("running", "running", id="a-running-job-keeps-its-lease"),
        pytest.param("done", "done", id="a-done-job-never-runs-twice"),
    ],
)
def test_only_a_job_given_up_on_is_retried(store: Store, state: str, expected: str) -> None:
    enqueue(store, "d-1", now=100)
    if state in ("running", "done"):
        assert store.claim_job("w", now=100, lease=LEASE) is not None
    if state == "done":
        assert store.complete_job("d-1", "w", now=101)
    before = store.list_jobs()
    assert store.retry_job("d-1", now=200) == expected
    assert store.list_jobs() == before, "nothing changed"


def test_retrying_a_job_that_does_not_exist_says_so(store: Store) -> None:
    assert store.retry_job("nowhere", now=100) is None
