"""The PostgreSQL store's own promises: secrets stay out of messages, forks and replicas get their own
connections, and a database that goes away is a 503 until it is back, then service resumes by itself."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from app.errors import ConfigError, Unavailable
from app.store.base import Replay
from app.store.opener import open_store
from app.store.postgres import AUDIT_LOCK, AUDIT_WAIT_SECONDS, PostgresStore
from app.store.postgres_pool import describe, redact_url
from tests.tcp_proxy import TcpProxy

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://gate:{SECRET}@db.internal:5432/gate", "postgresql://gate:***@db.internal:5432/gate"),
        ("postgresql://gate@db.internal/gate", "postgresql://gate@db.internal/gate"),
        (
            f"postgres://gate:{SECRET}@[::1]:5433/gate?sslmode=require",
            "postgres://gate:***@[::1]:5433/gate?sslmode=require",
        ),
    ],
    ids=["password", "no-password", "ipv6-and-options"],
)
def test_the_log_shows_the_url_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_an_unreachable_server_is_a_503_that_names_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://gate:{SECRET}@127.0.0.1:1/gate"  # nothing listens on port 1
    with pytest.raises(Unavailable, match="cannot be opened") as info:
        PostgresStore(url, pool_timeout=0.5)
    assert info.value.code == "store-unavailable"
    assert SECRET not in info.value.message
    assert "gate:***@127.0.0.1:1/gate" in info.value.message, "the operator sees which server"
    assert SECRET not in caplog.text
    assert isinstance(info.value.__cause__, psycopg.Error)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql:/gate:{SECRET}@db/gate",
        f"postgres:gate:{SECRET}@db/gate",
        f"PostgreSQL//gate:{SECRET}@db",
    ],
    ids=["one-slash", "no-slashes", "no-colon"],
)
def test_a_mistyped_postgresql_url_is_refused_not_taken_for_a_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="looks like a PostgreSQL URL but is not one") as info:
        open_store(url)
    assert SECRET not in info.value.message
    assert list(tmp_path.iterdir()) == [], "no file created"


def test_open_store_picks_postgresql_by_its_scheme(pg_url: str) -> None:
    store = open_store(pg_url.replace("postgresql://", "postgres://"))
    assert isinstance(store, PostgresStore)
    store.close()


def test_the_pool_is_bounded() -> None:
    with pytest.raises(ConfigError, match="GATE_DATABASE_POOL_SIZE"):
        PostgresStore("postgresql://127.0.0.1:1/x", pool_size=0)


DESCRIBED = [
    (psycopg.errors.DiskFull(), "the database server's disk is full"),
    (psycopg.errors.AdminShutdown(), "the database server is shutting down"),
    (psycopg.errors.ReadOnlySqlTransaction(), "the database is read-only (a standby?)"),
    (psycopg.errors.UniqueViolation(), "a constraint of the database refused the write"),
    (psycopg.OperationalError("consuming input failed"), "the connection to the database server failed"),
]


@pytest.mark.parametrize(
    ("exc", "words"), DESCRIBED, ids=["disk-full", "shutdown", "read-only", "constraint", "connection"]
)
def test_driver_errors_are_said_in_plain_words(exc: Exception, words: str) -> None:
    assert describe(exc) == words


def _via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}"))


def test_a_database_that_goes_away_is_a_503_and_service_resumes_when_it_is_back(pg_url: str) -> None:
    target = urlsplit(pg_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 5432))
    store = PostgresStore(_via(proxy, pg_url), pool_timeout=1.0)
    try:
        store.append_audit("decision", {"i": 1})
        proxy.cut()
        for _ in range(3):  # every pooled connection is dead: each use fails closed, none hangs
            with pytest.raises(Unavailable) as info:
                store.append_audit("decision", {"i": 2})
            assert (info.value.code, info.value.status) == ("audit-unavailable", 503)
        with pytest.raises(Unavailable):
            store.check_writable()
        proxy.restore()
        _eventually(lambda: store.append_audit("decision", {"i": 3}))  # the pool reconnects by itself
        assert [r.payload["i"] for r in store.iter_audit()] == [1, 3], "nothing half-written"
        assert store.verify_audit().ok
    finally:
        store.close()
        proxy.close()


def _eventually(call: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            call()
            return
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- processes: gunicorn workers and replicas -------------------------------------------------------

APPENDS = 40


def _append_many(url: str, worker: int, start: Barrier) -> None:
    store = PostgresStore(url)
    start.wait(timeout=30)
    for i in range(APPENDS):
        store.append_audit("decision", {"worker": worker, "i": i})
    store.close()


def _claim(url: str, start: Barrier, results: Any) -> None:
    store = PostgresStore(url)
    start.wait(timeout=30)
    results.put(store.claim_jti("https://token.actions.githubusercontent.com", "the-same-jti", 10**10))
    store.close()


def _run(processes: list[Any]) -> None:
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.slow
def test_processes_appending_at_once_leave_one_gap_free_chain(pg_url: str) -> None:
    start = multiprocessing.Barrier(3)
    _run([multiprocessing.Process(target=_append_many, args=(pg_url, w, start)) for w in range(3)])
    store = PostgresStore(pg_url)
    report = store.verify_audit()
    store.close()
    assert (report.ok, report.records) == (True, 3 * APPENDS)


@pytest.mark.slow
def test_processes_racing_for_one_jti_let_exactly_one_win(pg_url: str) -> None:
    start = multiprocessing.Barrier(4)
    results: Any = multiprocessing.Queue()
    _run([multiprocessing.Process(target=_claim, args=(pg_url, start, results)) for _ in range(4)])
    assert sorted(results.get(timeout=5) for _ in range(4)) == [False, False, False, True]


def test_a_forked_worker_opens_its_own_connections_and_leaves_the_parents_alone(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.append_audit("boot", {"who": "parent"})
    pid = os.fork()
    if pid == 0:  # the child: uses the store it inherited
        code = 1
        try:
            store.append_audit("boot", {"who": "child"})
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.append_audit("boot", {"who": "parent again"})
    assert [r.payload["who"] for r in store.iter_audit()] == ["parent", "child", "parent again"]
    store.close()


def test_replicas_batching_the_same_tokens_in_opposite_orders_never_deadlock(pg_url: str) -> None:
    """Two replicas' batches holding the same tokens wait for each other's replay rows; in the order
    each batch was formed that could be a circle, which PostgreSQL breaks by failing one (a 503 for
    every decision of it). Rows are claimed in sorted order, so no batch ever fails, and each token
    is spent exactly once."""
    import threading

    from app.store.base import Replay
    from app.store.group import prepare
    from tests.store.conftest import T0

    replicas = [PostgresStore(pg_url), PostgresStore(pg_url)]
    failures: list[BaseException] = []
    kept: list[int] = []
    lock = threading.Lock()

    def run(replica: PostgresStore, reverse: bool) -> None:
        for round_ in range(25):
            keys = [f"{round_}-{k}" for k in range(12)]
            batch = [
                prepare("decision", {"k": key}, T0, replay=Replay("https://iss", key, 10**10))
                for key in (reversed(keys) if reverse else keys)
            ]
            try:
                outcomes = replica._write_batch(batch)
            except BaseException as exc:  # noqa: BLE001  # the assertion below names it
                with lock:
                    failures.append(exc)
                continue
            with lock:
                kept.append(sum(not isinstance(o, Exception) for o in outcomes))

    threads = [threading.Thread(target=run, args=(r, i == 1)) for i, r in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert failures == []
        assert sum(kept) == 25 * 12, "each token spent by exactly one of the two batches"
        assert replicas[0].verify_audit().records == 25 * 12
    finally:
        for r in replicas:
            r.close()


def test_a_held_audit_lock_bounds_an_append_s_whole_wait_queue_included(pg_url: str) -> None:
    """Another connection holds the audit lock: the append waiting on it and those queued behind it
    (a second batch) all fail within one budget of when they were queued, not one budget each
    (before, the second batch waited a budget of its own: 9.5 s)."""
    store = PostgresStore(pg_url)
    holder = psycopg.connect(pg_url)
    try:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
        waited: dict[int, float] = {}
        failed: dict[int, str] = {}

        def append(n: int) -> None:
            started = time.monotonic()
            try:
                store.append_audit(
                    "decision", {"n": n}, replay=Replay("iss", f"jti-{n}", int(time.time()) + 300)
                )
            except Unavailable as exc:
                failed[n] = exc.code
            waited[n] = time.monotonic() - started

        first = threading.Thread(target=append, args=(0,))
        first.start()
        time.sleep(0.5)  # the first batch waits on the lock; these queue behind it
        queued = [threading.Thread(target=append, args=(n,)) for n in range(1, 4)]
        for thread in queued:
            thread.start()
        for thread in [first, *queued]:
            thread.join(30)
    finally:
        holder.rollback()
        holder.close()
        store.close()
    assert failed == {n: "audit-unavailable" for n in range(4)}
    assert max(waited.values()) < AUDIT_WAIT_SECONDS + 1.0, waited
