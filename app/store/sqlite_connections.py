"""SQLite connections for a store shared by threads and gunicorn worker processes.

One connection per thread (``threading.local``) and per process: a connection never crosses a fork
(SQLite's rule), and connections of finished threads are closed. Transactions are explicit
(``BEGIN IMMEDIATE``) and can be made durable (``synchronous=FULL``) one at a time. sqlite3 errors
become :class:`app.errors.Unavailable` with a path-free message; the log gets the details.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from app.errors import Unavailable
from app.observe.metrics import metrics

log = logging.getLogger("agent_gate.store")

# What sqlite's primary result codes mean to an operator; path-free, so safe in HTTP answers.
_PLAIN = {
    "SQLITE_BUSY": "the database is locked by another writer",
    "SQLITE_LOCKED": "the database is locked by another writer",
    "SQLITE_READONLY": "the database is read-only",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_IOERR": "a disk I/O error",
    "SQLITE_CANTOPEN": "the database file cannot be opened",
    "SQLITE_PERM": "permission denied",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_NOTADB": "the file is not a SQLite database",
    "SQLITE_CONSTRAINT": "a constraint of the database refused the write",
}

# Guards the hand-over of connections in a forked child; recreated there, since a lock another
# thread held at fork time would stay held forever in the child.
_fork_lock = threading.Lock()


def _reset_fork_lock() -> None:
    global _fork_lock
    _fork_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_fork_lock)


def _locked() -> sqlite3.OperationalError:
    """What SQLite raises when its busy timeout passes (the same plain message follows: describe())."""
    exc = sqlite3.OperationalError(
        "database is locked (the writer lock was not free within the busy timeout)"
    )
    exc.sqlite_errorname = "SQLITE_BUSY"
    return exc


def describe(exc: sqlite3.Error) -> str:
    """A short, path-free phrase for a sqlite3 error."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])
    if primary in _PLAIN:
        return _PLAIN[primary]
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc).lower():
        return "the store is closed"
    return f"a database error ({name or exc.__class__.__name__})"


class Connections:
    """The connections to one SQLite file: :meth:`get` returns this thread's, opening it if needed."""

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self.path = path
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        # Write transactions queue here, in the kernel, rather than on SQLite's busy handler, which
        # polls with sleeps of 1, 2, 5, 10... ms: under load a waiting process would sleep past the
        # moment the lock is free. A thread lock for this process's threads (flock is held per open
        # file, shared by every thread), then flock on a file beside the database for the processes.
        self._writer = threading.Lock()
        self._writer_fd: int | None = None

    def create_file(self) -> None:
        """Create the directory (0700) and the file (0600) if missing. Raises OSError."""
        # The file holds grant-signing keys: readable by the gate's user only. SQLite gives its -wal
        # and -shm files the database file's permissions.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        if self.path.stat().st_mode & 0o077:
            log.warning(
                "the store %s is readable by other users; `chmod 600` it (it holds signing keys)", self.path
            )

    def get(self) -> sqlite3.Connection:
        """This thread's connection. Raises sqlite3.Error (also once the store is closed)."""
        if self._closed:
            raise sqlite3.ProgrammingError("the store is closed")
        if self._pid != os.getpid():
            self._after_fork()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._lock:
                self._close_dead_threads_connections()
                self._open.append((threading.current_thread(), conn))
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so the transaction kinds are explicit.
        # check_same_thread=False only so that close() can close every thread's connection; each
        # connection is otherwise used by the thread that opened it (threading.local).
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            # NORMAL in WAL mode never corrupts, but a commit is durable only at the next fsync of the
            # WAL. Audit appends, revocations and keys switch to FULL for their transaction (see
            # transaction()): the gate acknowledges those only once they survive a power loss, and
            # that fsync also persists every earlier write (a token's replay row comes before its
            # audit record). Every other write skips the fsync (~0.6 ms on these machines).
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _close_dead_threads_connections(self) -> None:
        # Threads come and go (the Flask dev server starts one per request); their connections must not pile up.
        alive = []
        for thread, conn in self._open:
            if thread.is_alive():
                alive.append((thread, conn))
            else:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._open = alive

    def _after_fork(self) -> None:
        with _fork_lock:
            if self._pid == os.getpid():
                return
            # The parent's connections are neither used nor closed here (closing one could checkpoint
            # or release what the parent relies on); keeping references stops the GC closing them.
            self._inherited.extend(conn for _, conn in self._open)
            inherited = getattr(self._local, "conn", None)
            if inherited is not None:
                self._inherited.append(inherited)
            self._open = []
            self._local = threading.local()
            self._lock = threading.Lock()
            self._writer = threading.Lock()
            # The parent's lock file descriptor shares its flock with the parent: never unlocked or
            # used here (that would release the parent's lock); the child opens its own.
            if self._writer_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._writer_fd)
            self._writer_fd = None
            self._pid = os.getpid()

    @contextlib.contextmanager
    def transaction(self, *, durable: bool) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` on this thread's connection, rolled back on any error.

        IMMEDIATE takes the write lock before the first read, so what is read inside cannot change
        before the commit, in any process. ``durable`` fsyncs the commit. Raises sqlite3.Error.
        """
        conn = self.get()
        if durable:
            conn.execute("PRAGMA synchronous = FULL")  # cannot be changed inside a transaction
        try:
            with self._writing():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
        finally:
            if durable:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous = NORMAL")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this store's writer lock: one write transaction at a time across threads and processes.

        Waiting is bounded by the busy timeout, as SQLite's own wait is; past it, the same "database
        is locked" error. Raises sqlite3.OperationalError (also when the lock file cannot be opened).
        """
        timeout = self._busy_timeout_ms / 1000
        if not self._writer.acquire(timeout=timeout):
            raise _locked()
        try:
            fd = self._writer_file()
            deadline = time.monotonic() + timeout
            pause = 50e-6
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _locked() from None
                # flock has no timeout of its own: polled, but finely (at most 1 ms between tries,
                # where SQLite's busy handler sleeps up to 100 ms), so the lock is taken soon after
                # it is let go.
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._writer.release()

    def _writer_file(self) -> int:
        if self._writer_fd is None:
            try:
                self._writer_fd = os.open(
                    self.path.with_name(self.path.name + "-writer.lock"), os.O_CREAT | os.O_RDWR, 0o600
                )
            except OSError as exc:
                raise sqlite3.OperationalError(f"the writer lock file cannot be opened: {exc}") from exc
        return self._writer_fd

    @contextlib.contextmanager
    def failing_as(self, code: str, what: str, advice: str = "retry later") -> Iterator[None]:
        """Turn a sqlite3 error into ``Unavailable(code)``: "<what>: <plain cause>; <advice>"."""
        try:
            yield
        except sqlite3.Error as exc:
            log.error("%s: store %s: %s", what, self.path, exc)
            metrics().store_errors.labels(code).inc()
            raise Unavailable(f"{what}: {describe(exc)}; {advice}", code=code) from exc

    def close(self) -> None:
        """Close this thread's connection and those of finished threads; :meth:`get` refuses from now on.

        A connection another live thread may be using right now (a housekeeping purge in the middle of
        a transaction) is never closed under it: closing a sqlite3 connection while another thread runs
        a statement on it can crash the process. Such a connection finishes what it is doing and is
        closed when its thread lets go of it (its thread-local reference goes with the old local).
        """
        me = threading.current_thread()
        with self._lock:
            self._closed = True
            for thread, conn in self._open:
                if thread is me or not thread.is_alive():
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
            self._open.clear()
        self._local = threading.local()
