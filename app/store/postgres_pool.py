"""PostgreSQL connections for a store shared by threads, gunicorn workers and replicas.

A bounded :class:`psycopg_pool.ConnectionPool` per process: a pool never crosses a fork (a child
opens its own and leaves the parent's sockets alone). Every psycopg error becomes
:class:`app.errors.Unavailable` with a short message that names neither the server nor the user;
the log names the server by its URL with the password replaced by ``***``, and any text that would
carry the password is scrubbed before it is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg.rows import RowFactory, tuple_row

from app.errors import ConfigError, Unavailable
from app.observe.metrics import metrics

log = logging.getLogger("agent_gate.store")

# Bounds on waiting: a decision fails closed (503) rather than hang while the server is away.
STATEMENT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 3
RECONNECT_TIMEOUT_S = 30

# SQLSTATE classes (and a few codes) in words an operator can act on; server- and user-free.
_PLAIN = {
    "08": "the database server cannot be reached",
    "53100": "the database server's disk is full",
    "53": "the database server is out of resources",
    "57P01": "the database server is shutting down",
    "57P02": "the database server is shutting down",
    "57P03": "the database server is starting up",
    "57014": "a database statement took too long and was cancelled",
    "25006": "the database is read-only (a standby?)",
    "28": "the database refused the gate's credentials",
    "3D": "the database does not exist",
    "42": "the database schema is not what the gate expects (run `agent-gate db upgrade`)",
    "23": "a constraint of the database refused the write",
    "40": "the database aborted the transaction (a conflict); retry",
}


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{quote(unquote(user))}:***@{host}{port}"))


def describe(exc: BaseException) -> str:
    """A short phrase for a psycopg error that names no server, user or secret."""
    if isinstance(exc, psycopg_pool.PoolClosed):
        return "the store is closed"
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "no database connection could be had in time (the server is unreachable or overloaded)"
    state = getattr(exc, "sqlstate", None) or ""
    for key in (state, state[:2]):
        if key and key in _PLAIN:
            return _PLAIN[key]
    if isinstance(exc, psycopg.OperationalError):
        return "the connection to the database server failed"
    return f"a database error ({state or exc.__class__.__name__})"


class Pool:
    """This process's connections to one PostgreSQL database, at most ``size`` of them."""

    def __init__(self, url: str, *, size: int, timeout: float) -> None:
        if size < 1:
            raise ConfigError(f"GATE_DATABASE_POOL_SIZE: got {size}, expected at least 1")
        self._url = url
        self.where = redact_url(url)
        self._secret = unquote(urlsplit(url).password or "")
        self._size = size
        self._timeout = timeout
        self._lock = threading.Lock()
        self._inherited: list[psycopg_pool.ConnectionPool] = []
        self._pid = os.getpid()
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> psycopg_pool.ConnectionPool:
        return psycopg_pool.ConnectionPool(
            self._url,
            min_size=1,
            max_size=self._size,
            timeout=self._timeout,
            # A connection that cannot be re-made is retried with doubling delays (1, 2, 4, 8, 16 s)
            # and then given up; the next request grows the pool again. So after an outage of any
            # length, service resumes within ~16 s of the server's return, without a restart.
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "agent-gate"},
            configure=_configure,
            open=False,
            name="agent-gate",
        )

    def open(self) -> None:
        """Open the pool and wait for its first connection. Raises psycopg.Error."""
        self._pool.open(wait=True, timeout=self._timeout)

    def _current(self) -> psycopg_pool.ConnectionPool:
        if self._closed:
            raise psycopg_pool.PoolClosed("the store is closed")
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # The parent's pool is kept, never closed here: closing would end the parent's sessions.
                    self._inherited.append(self._pool)
                    self._pool = self._new_pool()
                    self._pool.open(wait=False)
                    self._pid = os.getpid()
        return self._pool

    @contextlib.contextmanager
    def transaction(
        self, row_factory: RowFactory[Any] = tuple_row, *, durable: bool = True
    ) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction: committed when the block ends, rolled back on any error.

        ``durable=False`` commits without waiting for the WAL flush (``synchronous_commit = off``
        for this transaction only): as the SQLite store's ``synchronous=NORMAL``, for rows whose
        loss in a server crash is harmless, or is covered by the durable commit that always follows
        before an answer (a token's replay row precedes its audit record in the same WAL, and a
        flush persists everything before it). Raises psycopg.Error (PoolTimeout when no
        connection frees up in time).
        """
        # (psycopg's pipeline mode was measured here: slower than plain round trips on loopback.)
        with (
            self._current().connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=row_factory) as cur,
        ):
            if not durable:
                cur.execute("SET LOCAL synchronous_commit = off")
            yield cur

    @contextlib.contextmanager
    def read(self, row_factory: RowFactory[Any] = tuple_row) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor outside any transaction, for one read statement: one round trip, no BEGIN or
        COMMIT (each statement is its own snapshot). Raises psycopg.Error."""
        with self._current().connection() as conn, conn.cursor(row_factory=row_factory) as cur:
            yield cur

    @contextlib.contextmanager
    def failing_as(self, code: str, what: str, advice: str = "retry later") -> Iterator[None]:
        """Turn a psycopg error into ``Unavailable(code)``: "<what>: <plain cause>; <advice>"."""
        try:
            yield
        except psycopg.Error as exc:
            log.error("%s: store %s: %s", what, self.where, self.scrub(str(exc)))
            metrics().store_errors.labels(code).inc()
            raise Unavailable(f"{what}: {describe(exc)}; {advice}", code=code) from exc

    def scrub(self, text: str) -> str:
        """``text`` with the password (if any) replaced by ``***``."""
        return text.replace(self._secret, "***") if self._secret else text

    def close(self) -> None:
        """Close this process's connections; every later use answers "the store is closed"."""
        self._closed = True
        if self._pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                self._pool.close()


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Fail closed quickly rather than hold a worker while the server or a lock is away.
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    # Durable unless a transaction says otherwise (the server's default, made explicit).
    conn.execute("SET synchronous_commit = on")
    conn.commit()
    # Transactions are explicit (Pool.transaction); a lone read needs none (Pool.read).
    conn.autocommit = True
