"""Several gunicorn workers (processes) and threads share one store: no lost, forked or doubled records."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from app.errors import Unavailable
from app.store.sqlite import SQLiteStore

WORKERS = 4
APPENDS = 50


def _append_many(path: str, worker: int, start: Barrier) -> None:
    store = SQLiteStore(Path(path))
    start.wait(timeout=30)  # every worker appends at the same moment
    for i in range(APPENDS):
        store.append_audit("decision", {"worker": worker, "i": i})
    store.close()


def _claim(path: str, start: Barrier, results: Any) -> None:
    store = SQLiteStore(Path(path))
    start.wait(timeout=30)
    results.put(store.claim_jti("https://token.actions.githubusercontent.com", "the-same-jti", 10**10))
    store.close()


def _open_fresh(path: str, start: Barrier) -> None:
    start.wait(timeout=30)  # every worker opens the brand-new file at the same moment
    store = SQLiteStore(Path(path))
    store.append_audit("boot", {"pid": os.getpid()})
    store.close()


def _run(processes: list[Any]) -> None:
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.slow
def test_processes_appending_at_once_leave_one_valid_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStore(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")  # like gunicorn workers: nothing shared but the file
    start = ctx.Barrier(WORKERS)
    _run([ctx.Process(target=_append_many, args=(path, w, start)) for w in range(WORKERS)])

    store = SQLiteStore(Path(path))
    records = list(store.iter_audit())
    assert [r.seq for r in records] == list(range(1, WORKERS * APPENDS + 1))
    assert sorted((r.payload["worker"], r.payload["i"]) for r in records) == [
        (w, i) for w in range(WORKERS) for i in range(APPENDS)
    ], "no record lost or doubled"
    for w in range(WORKERS):
        assert [r.payload["i"] for r in records if r.payload["worker"] == w] == list(range(APPENDS))
    assert store.verify_audit().ok
    store.close()


@pytest.mark.slow
def test_workers_opening_a_fresh_database_at_once_all_start(tmp_path: Path) -> None:
    # gunicorn forks its workers together on first start: none may fail with "database is locked".
    for attempt in range(3):
        path = str(tmp_path / f"fresh-{attempt}.db")
        ctx = multiprocessing.get_context("spawn")
        start = ctx.Barrier(WORKERS)
        _run([ctx.Process(target=_open_fresh, args=(path, start)) for _ in range(WORKERS)])
        store = SQLiteStore(Path(path))
        assert [r.kind for r in store.iter_audit()] == ["boot"] * WORKERS
        store.close()


@pytest.mark.slow
def test_processes_racing_for_one_jti_let_exactly_one_win(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStore(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    _run([ctx.Process(target=_claim, args=(path, start, results)) for _ in range(WORKERS)])
    assert sorted(results.get(timeout=5) for _ in range(WORKERS)) == [False] * (WORKERS - 1) + [True]


def test_threads_appending_at_once_leave_one_valid_chain(store: SQLiteStore) -> None:
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait(timeout=10)
        for i in range(25):
            store.append_audit("decision", {"thread": t, "i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.seq for r in store.iter_audit()] == list(range(1, 201))
    assert store.verify_audit().ok


def test_threads_racing_for_one_jti_let_exactly_one_win(store: SQLiteStore) -> None:
    start = threading.Barrier(8)
    results: list[bool] = []

    def claim() -> None:
        start.wait(timeout=10)
        results.append(store.claim_jti("https://iss", "the-same-jti", 10**10))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 7 + [True]


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_short_lived_threads_do_not_leave_connections_behind(store: SQLiteStore) -> None:
    # The Flask dev server starts a thread per request; each thread gets its own connection.
    store.check_writable()
    before = _open_files()
    for _ in range(30):
        t = threading.Thread(target=store.check_writable)
        t.start()
        t.join()
    assert _open_files() - before <= 6, "connections of finished threads are closed, not kept"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # Python 3.12+ warns about fork with threads running
def test_a_forked_worker_opens_its_own_connection_and_leaves_the_parents_alone(store: SQLiteStore) -> None:
    # gunicorn --preload builds the app, and so the store, before forking its workers.
    store.append_audit("decision", {"by": "parent"})
    parents = store._db.get()  # SQLite's rule: a connection never crosses a fork; only the identity shows it
    pid = os.fork()
    if pid == 0:  # pragma: no cover  # the child reports through its exit code
        code = 1
        try:
            store.append_audit("decision", {"by": "child"})
            assert store._db.get() is not parents
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.append_audit("decision", {"by": "parent"})
    assert [r.payload["by"] for r in store.iter_audit()] == ["parent", "child", "parent"]
    assert store.verify_audit().ok


def test_set_up_is_retried_while_another_process_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    real = SQLiteStore._set_up
    answers = [sqlite3.OperationalError("database is locked"), sqlite3.OperationalError("database is locked")]

    def flaky(self: SQLiteStore) -> str:
        if answers:
            raise answers.pop(0)
        return real(self)

    monkeypatch.setattr(SQLiteStore, "_set_up", flaky)
    SQLiteStore(tmp_path / "gate.db").close()
    assert answers == [], "retried until the lock was released"


@pytest.mark.parametrize(
    ("error", "busy_timeout_ms"),
    [("disk I/O error", 5000), ("database is locked", 100)],
    ids=["not-a-lock-fails-at-once", "locked-past-the-busy-timeout"],
)
def test_set_up_gives_up_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, busy_timeout_ms: int
) -> None:
    import sqlite3

    from app.errors import Unavailable

    calls = []

    def failing(self: SQLiteStore) -> str:
        calls.append(1)
        raise sqlite3.OperationalError(error)

    monkeypatch.setattr(SQLiteStore, "_set_up", failing)
    with pytest.raises(Unavailable, match="cannot be opened"):
        SQLiteStore(tmp_path / "gate.db", busy_timeout_ms=busy_timeout_ms)
    assert (len(calls) == 1) is (error == "disk I/O error")


def test_closing_the_store_never_closes_a_connection_another_thread_is_using(tmp_path: Path) -> None:
    # A housekeeping purge runs on its own thread; the store may be closed (shutdown, a test's
    # teardown) in the middle of it. Closing a sqlite3 connection under a running statement can
    # crash the process: the purge finishes on its own connection, and new work is refused.
    store = SQLiteStore(tmp_path / "gate.db")
    began, closed, done = threading.Event(), threading.Event(), threading.Event()
    outcome: list[object] = []

    def purge() -> None:
        try:
            with store._db.transaction(durable=False) as conn:
                began.set()
                closed.wait(5)
                conn.execute("DELETE FROM replay WHERE expires_at < 0")
            outcome.append("committed")
        except Exception as exc:  # noqa: BLE001  # the assertion below says what happened
            outcome.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=purge)
    worker.start()
    assert began.wait(5)
    store.close()
    closed.set()
    assert done.wait(5)
    worker.join(5)
    assert outcome == ["committed"]
    with pytest.raises(Unavailable):
        store.claim_jti("https://issuer", "j", 1)


# --- the writer lock: write transactions queue in the kernel, not on SQLite's sleeping busy handler ---


def _hold_writer_lock(db: Path) -> int:
    """Take the store's writer lock as another process would (flock on its own open file)."""
    import fcntl

    fd = os.open(db.with_name(db.name + "-writer.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_write_waits_while_another_process_holds_the_writer_lock(tmp_path: Path) -> None:
    import fcntl

    store = SQLiteStore(tmp_path / "gate.db")
    fd = _hold_writer_lock(tmp_path / "gate.db")
    done = threading.Event()
    worker = threading.Thread(target=lambda: (store.append_audit("decision", {}), done.set()))
    worker.start()
    assert not done.wait(0.3), "the append waits for the lock"
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    assert done.wait(5), "and writes as soon as it is free"
    worker.join(5)
    assert store.verify_audit().records == 1
    store.close()


def test_a_writer_lock_held_past_the_busy_timeout_fails_closed_with_a_plain_message(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "gate.db", busy_timeout_ms=200)
    fd = _hold_writer_lock(tmp_path / "gate.db")
    try:
        with pytest.raises(Unavailable) as info:
            store.append_audit("decision", {})
    finally:
        os.close(fd)
    assert info.value.code == "audit-unavailable"
    assert "the database is locked by another writer" in info.value.message
    assert str(tmp_path) not in info.value.message
    store.append_audit("decision", {})  # the lock let go: writes again
    store.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with a thread running, on purpose
def test_a_forked_worker_takes_the_writer_lock_for_itself_not_through_its_parents(tmp_path: Path) -> None:
    # flock belongs to the open file: a child using the parent's descriptor would "hold" the lock
    # whenever the parent does, and two processes would write at once.
    store = SQLiteStore(tmp_path / "gate.db")
    store.append_audit("decision", {"by": "parent"})  # the parent's lock file is open
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._db._writing():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    pid = os.fork()
    if pid == 0:  # pragma: no cover  # the child reports through its exit code
        code = 1
        try:
            store._db._busy_timeout_ms = 300
            try:
                store.append_audit("decision", {"by": "child"})
            except Unavailable:
                code = 0  # the parent holds the lock: the child waited, then failed closed
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    release.set()
    holder.join(5)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [r.payload["by"] for r in store.iter_audit()] == ["parent"]
    store.close()
