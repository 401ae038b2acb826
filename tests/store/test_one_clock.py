"""One clock for shared state (docs/security-model.md, "One clock"): the database's.

A replica whose clock runs ahead used to purge replay records the on-time replicas still needed, and
a spent token was then accepted a second time. These run two gates on the real PostgreSQL, one of
them with its clock 200 s ahead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from flask import Flask

from app import create_app
from app.credentials.grants import GrantService, GrantSubject
from app.credentials.keys import GRANT_LEEWAY
from app.errors import TokenError, Unavailable
from app.events.worker import QueueWorker
from app.settings import Settings
from app.store.clock import measure_skew, shared_time
from app.store.postgres import PostgresStore
from app.store.sqlite import SQLiteStore
from tests.conftest import RecordingEvidence, close_gate

AHEAD = 200.0  # seconds: the drill's measured skew


@pytest.fixture
def replicas(settings: Settings, pg_url: str) -> Iterator[tuple[Flask, Flask]]:
    """An on-time gate and one whose clock runs AHEAD seconds ahead, on one PostgreSQL database."""
    shared = settings.model_copy(update={"database": pg_url})
    on_time = create_app(shared, evidence=RecordingEvidence())
    ahead = create_app(shared, evidence=RecordingEvidence(), clock=lambda: time.time() + AHEAD)
    yield on_time, ahead
    close_gate(ahead)
    close_gate(on_time)


def _decide(app: Flask, token: str) -> Any:
    return app.test_client().post(
        "/v1/decisions", json={"action": "read"}, headers={"Authorization": f"Bearer {token}"}
    )


def _purge(app: Flask) -> None:
    housekeeping = app.extensions["agent_gate"].housekeeping
    housekeeping.due()
    housekeeping.join(10)


def test_a_token_spent_on_an_on_time_replica_stays_refused_after_a_replica_ahead_purges(
    replicas: tuple[Flask, Flask], mint: Callable[..., str]
) -> None:
    on_time, ahead = replicas
    # Expires in 10 s: its replay record is kept until exp + leeway (70 s from now), which the replica
    # ahead, by its own clock, saw pass 130 s ago: past the 120 s margin.
    token = mint(ttl=10)
    assert _decide(on_time, token).status_code == 200
    _purge(ahead)
    again = _decide(on_time, token)
    assert again.status_code == 401, "a spent token is never accepted twice"
    assert again.json["errors"][0]["code"] == "replayed"


def test_the_replica_ahead_still_purges_what_the_database_clock_says_expired(
    replicas: tuple[Flask, Flask],
) -> None:
    _, ahead = replicas
    store = ahead.extensions["agent_gate"].store
    now = int(shared_time(store, time.time))
    store.claim_jti("https://old.example", "long-gone", now - 3600)
    store.claim_jti("https://old.example", "still-needed", now - 30)
    _purge(ahead)
    assert store.jti_used("https://old.example", "long-gone") is False
    assert store.jti_used("https://old.example", "still-needed") is True


def test_readyz_says_degraded_with_the_skew_and_a_warning_is_logged(
    replicas: tuple[Flask, Flask], caplog: pytest.LogCaptureFixture
) -> None:
    on_time, ahead = replicas
    with caplog.at_level(logging.WARNING, logger="agent_gate"):
        skewed = ahead.test_client().get("/readyz")
        steady = on_time.test_client().get("/readyz")
    assert (skewed.status_code, skewed.json["status"]) == (200, "degraded"), "it still answers"
    clock = skewed.json["checks"]["clock"]
    assert clock["ok"] is False
    assert clock["source"] == "database"
    assert AHEAD - 5 < clock["skew_seconds"] < AHEAD + 5
    assert clock["threshold_seconds"] == 5.0
    assert (steady.status_code, steady.json["status"]) == (200, "ready")
    assert abs(steady.json["checks"]["clock"]["skew_seconds"]) < 5
    warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "ahead of the database's" in warnings[0] and "GATE_CLOCK_SKEW_MAX" in warnings[0]
    metrics = ahead.test_client().get("/metrics").get_data(as_text=True)
    assert "agent_gate_clock_skew_seconds" in metrics


def test_the_skew_warning_is_not_repeated_at_every_probe(
    replicas: tuple[Flask, Flask], caplog: pytest.LogCaptureFixture
) -> None:
    _, ahead = replicas
    with caplog.at_level(logging.WARNING, logger="agent_gate"):
        for _ in range(5):
            ahead.test_client().get("/readyz")
    assert len([r for r in caplog.records if "GATE_CLOCK_SKEW_MAX" in r.getMessage()]) == 1


def test_a_store_on_this_machine_has_one_clock(tmp_path: Any) -> None:
    store = SQLiteStore(tmp_path / "gate.db", clock=lambda: 1_000.0)
    try:
        assert store.database_time() is None
        assert measure_skew(store, lambda: 5_000.0) is None, "the local clock is the database's"
        assert shared_time(store, lambda: 5_000.0) == 5_000.0
    finally:
        store.close()


# --- grants minted by a replica whose clock is off ---------------------------------------------------

SUBJECT = GrantSubject(
    action="deploy",
    permission="execute",
    decision_id="dec_1",
    repository="octo-org/octo-repo",
    repository_id=2000,
    run_id=9000,
    run_attempt=1,
    sha="a" * 40,
    environment="staging",
    pull_request=None,
    agent=False,
)


def _grants(store: Any, offset: float) -> GrantService:
    return GrantService(store, issuer="http://gate.test", clock=lambda: time.time() + offset)


def test_a_grant_minted_by_a_replica_ahead_is_never_valid_only_in_the_future(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        issued = _grants(store, 30).issue(
            SUBJECT, audience="deploy:staging", ttl=300, github_permissions=None
        )
        claims = jwt.decode(issued.token.get_secret_value(), options={"verify_signature": False})
        database_now = store.database_time()
        assert claims["nbf"] <= database_now and claims["iat"] <= database_now, "never minted in the future"
        assert _grants(store, 0).verify(issued.token.get_secret_value())["jti"] == issued.jti
    finally:
        store.close()


@pytest.mark.parametrize(
    ("minter_ahead", "accepted"),
    [
        (30, True),  # minted on a machine 30 s ahead (SQLite: no database clock to hold it back)
        (55, True),
        (90, False),  # past the documented leeway (GRANT_LEEWAY, 60 s): not yet valid
    ],
    ids=["30s-ahead", "55s-ahead", "90s-ahead"],
)
def test_grants_are_checked_with_the_documented_leeway(
    tmp_path: Any, minter_ahead: float, accepted: bool
) -> None:
    store = SQLiteStore(tmp_path / "gate.db")
    try:
        issued = _grants(store, minter_ahead).issue(
            SUBJECT, audience="deploy:staging", ttl=300, github_permissions=None
        )
        token = issued.token.get_secret_value()
        if accepted:
            assert _grants(store, 0).verify(token)["jti"] == issued.jti
        else:
            with pytest.raises(TokenError, match=r"the grant does not verify \(ImmatureSignatureError\)"):
                _grants(store, 0).verify(token)
    finally:
        store.close()


# --- the queue's leases ----------------------------------------------------------------------------------


def test_a_worker_on_a_replica_ahead_cannot_take_a_job_another_replica_still_holds(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    ran: list[str] = []
    try:
        on_time = QueueWorker(store=store, handler=lambda job: ran.append(job.id), clock=time.time, lease=300)
        ahead = QueueWorker(
            store=store, handler=lambda job: ran.append(job.id), clock=lambda: time.time() + 400, lease=300
        )
        store.enqueue_job("d-1", "webhook", "pull_request", b"{}", now=on_time.now())
        job = store.claim_job(on_time.name, now=on_time.now(), lease=on_time.lease)  # running, 300 s lease
        assert job is not None
        # By its own clock the lease ran out 100 s ago; by the database's it has 300 s to go.
        assert ahead.run_once() is False
        assert ran == []
    finally:
        store.close()


@pytest.mark.parametrize(
    ("after_expiry", "published"),
    [(30, True), (GRANT_LEEWAY, True), (GRANT_LEEWAY + 1, False)],
    ids=["within-the-leeway", "at-the-leeway", "past-it"],
)
def test_a_retired_key_stays_published_while_its_grants_are_within_the_leeway(
    tmp_path: Any, after_expiry: int, published: bool
) -> None:
    store = SQLiteStore(tmp_path / "gate.db")
    try:
        now = [time.time()]
        grants = GrantService(store, issuer="http://gate.test", clock=lambda: now[0])
        issued = grants.issue(SUBJECT, audience="deploy:staging", ttl=300, github_permissions=None)
        old_kid = jwt.get_unverified_header(issued.token.get_secret_value())["kid"]
        grants.keys.rotate()
        now[0] = issued.expires_at + after_expiry
        assert (old_kid in grants.keys.published()) is published
    finally:
        store.close()


def test_a_database_whose_clock_cannot_be_read_is_unavailable_and_readyz_says_so(
    replicas: tuple[Flask, Flask],
) -> None:
    on_time, _ = replicas
    store = on_time.extensions["agent_gate"].store
    store.close()
    with pytest.raises(Unavailable, match="the database's clock cannot be read") as info:
        store.database_time()
    assert info.value.code == "store-unavailable"
    answer = on_time.test_client().get("/readyz")
    assert (answer.status_code, answer.json["status"]) == (503, "not-ready")
    assert answer.json["checks"]["clock"]["ok"] is False
