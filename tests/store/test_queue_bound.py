"""The queue's bound and coalescing, and what the redelivery sweep keeps, on both stores.

Jobs about one subject coalesce into the one still waiting; total pending work is bounded (past it
nothing is kept and the webhook answers 503); the sweep's lease is held by one owner at a time by the
database's clock, and each failed delivery is asked again at most once.
"""

from __future__ import annotations

import pytest

from app.store.base import COALESCED, DUPLICATE, FULL, QUEUED, SAME_BODY, Store
from tests.store.conftest import raw_sql

LEASE = 60
PR = "pull_request:2000:12:" + "a" * 40 + ":main"


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


def enqueue(
    store: Store,
    job_id: str,
    *,
    body: bytes | None = None,
    subject: str | None = None,
    limit: int | None = None,
) -> str:
    return store.enqueue_job(
        job_id,
        "webhook",
        "pull_request",
        body if body is not None else job_id.encode(),
        now=100,
        subject=subject,
        max_pending=limit,
    )


# --- coalescing ---------------------------------------------------------------------------------------


def test_deliveries_about_one_subject_share_the_job_still_waiting(store: Store) -> None:
    assert enqueue(store, "d-1", subject=PR) == QUEUED
    assert enqueue(store, "d-2", subject=PR) == COALESCED
    assert enqueue(store, "d-3", subject=PR) == COALESCED
    assert store.queue_stats(now=100).depth == 1, "one pending job for the three"
    job = store.claim_job("w", now=100, lease=LEASE)
    assert job is not None and job.id == "d-1"
    assert store.claim_job("w", now=100, lease=LEASE) is None, "a coalesced delivery never runs"
    assert store.known_deliveries(["d-1", "d-2", "d-3", "d-4"]) == {"d-1", "d-2", "d-3"}


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(
            {"job_id": "d-2", "subject": PR.replace(":main", ":release")}, QUEUED, id="another-subject"
        ),
        pytest.param({"job_id": "d-2", "subject": None}, QUEUED, id="a-delivery-that-must-run-alone"),
        pytest.param({"job_id": "d-1", "subject": PR}, DUPLICATE, id="a-redelivery-of-the-waiting-one"),
        pytest.param(
            {"job_id": "d-2", "body": b"d-1", "subject": PR}, SAME_BODY, id="its-body-under-a-new-id"
        ),
    ],
)
def test_only_the_same_subject_coalesces(store: Store, second: dict[str, object], expected: str) -> None:
    enqueue(store, "d-1", subject=PR)
    assert enqueue(store, **second) == expected  # type: ignore[arg-type]  # the table's keyword arguments


def test_a_running_job_is_never_joined(store: Store) -> None:
    enqueue(store, "d-1", subject=PR)
    assert store.claim_job("w", now=100, lease=LEASE) is not None
    # It may have read its facts already: the new event needs a run of its own.
    assert enqueue(store, "d-2", subject=PR) == QUEUED
    assert store.queue_stats(now=100).depth == 2


def test_a_redelivery_of_a_coalesced_delivery_is_a_duplicate(store: Store) -> None:
    enqueue(store, "d-1", subject=PR)
    enqueue(store, "d-2", subject=PR)
    assert enqueue(store, "d-2", subject=PR) == DUPLICATE


def test_coalesced_deliveries_are_purged_with_finished_jobs(store: Store) -> None:
    enqueue(store, "d-1", subject=PR)
    enqueue(store, "d-2", subject=PR)
    assert store.purge_retained(101) == 1, "the coalesced record goes; the waiting job stays"
    assert store.queue_stats(now=100).depth == 1


# --- the bound -----------------------------------------------------------------------------------------


def test_past_the_bound_nothing_is_kept_until_the_queue_drains(store: Store) -> None:
    for i in range(3):
        assert enqueue(store, f"d-{i}", limit=3) == QUEUED
    assert enqueue(store, "d-3", limit=3) == FULL
    assert store.known_deliveries(["d-3"]) == set(), "a refused delivery is not kept: GitHub's copy is"
    assert enqueue(store, "d-4", subject=PR, limit=3) == FULL, "a subject with no waiting job adds work"
    job = store.claim_job("w", now=100, lease=LEASE)
    assert job is not None and store.complete_job(job.id, "w", now=101)
    assert enqueue(store, "d-3", limit=3) == QUEUED, "room again once a job is done"


def test_a_delivery_covered_by_a_waiting_job_is_kept_even_at_the_bound(store: Store) -> None:
    enqueue(store, "d-1", subject=PR, limit=1)
    assert enqueue(store, "d-2", subject=PR, limit=1) == COALESCED, "it adds no work"


def test_a_job_given_up_on_counts_against_the_bound_when_redelivered(store: Store) -> None:
    enqueue(store, "d-1", limit=1)
    job = store.claim_job("w", now=100, lease=LEASE)
    assert job is not None
    store.fail_job("d-1", "w", now=100, error="e", retry_at=None)
    enqueue(store, "d-2", limit=1)
    assert enqueue(store, "d-1", limit=1) == FULL
    assert enqueue(store, "d-1", limit=2) == QUEUED


# --- what the redelivery sweep keeps -------------------------------------------------------------------


def test_a_redelivery_is_recorded_once_per_delivery_id(store: Store) -> None:
    assert store.record_redelivery(501, "guid-a", now=100) is True
    assert store.record_redelivery(501, "guid-a", now=100) is False, "asked once, never again"
    assert store.record_redelivery(777, "guid-a", now=200) is True, "a redelivery of the redelivery"
    assert store.redeliveries_asked(["guid-a", "guid-b"]) == {"guid-a": {501, 777}}
    assert store.forget_redeliveries(150) == 1
    assert store.redeliveries_asked(["guid-a"]) == {"guid-a": {777}}


def test_the_sweep_lease_is_held_by_one_owner_at_a_time(store: Store) -> None:
    assert store.take_lease("redelivery", "replica-a", 60) is True
    assert store.take_lease("redelivery", "replica-b", 60) is False, "held by replica-a"
    assert store.take_lease("redelivery", "replica-a", 60) is True, "its owner renews it"


def test_an_expired_lease_is_taken_over(store: Store, store_url: str) -> None:
    assert store.take_lease("redelivery", "replica-a", 60) is True
    raw_sql(store_url, "UPDATE leases SET until = 0")  # its time ran out (by the store's clock)
    assert store.take_lease("redelivery", "replica-b", 60) is True
