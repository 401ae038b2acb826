"""The durable job queue and the held deployments, in the SQLite store.

A job is claimed inside ``BEGIN IMMEDIATE`` (one writer at a time across processes): the oldest due
row is leased to one worker until ``lease_until``. A worker that dies mid-job holds nothing once the
lease ends; a worker that outlives its lease cannot complete the job (every update names the lease
holder), so a job is never finished twice. The tables are in :mod:`app.store.sqlite_schema`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from app.errors import Unavailable
from app.store.base import COALESCED, DUPLICATE, FULL, QUEUED, SAME_BODY, Job, JobSummary, QueueStats
from app.store.rows import DeploymentRow, JobRow, coalesced_row, deployment_row, job_summary
from app.store.sqlite_connections import Connections

_UPSERT_DEPLOYMENT = (
    "INSERT OR REPLACE INTO deployment_gates "
    "(repository_id, run_id, environment, state, updated_at, record) VALUES (?, ?, ?, ?, ?, ?)"
)
# A job queued with its decision has a fresh id (the decision's): no earlier job to dedupe against.
_INSERT_JOB = (
    "INSERT INTO jobs (id, kind, topic, body, body_sha256, state, attempts, due_at, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)

# What operators see of a job (``queue list``), and a job given up on queued again (``queue retry``):
# due at once, its attempts counted afresh, its last error kept until it runs.
_SELECT_SUMMARY = (
    "SELECT id, kind, topic, state, attempts, due_at, created_at, updated_at, last_error FROM jobs"
)
_RETRY = (
    "UPDATE jobs SET state = 'queued', attempts = 0, due_at = ?, lease_owner = NULL, lease_until = NULL, "
    "updated_at = ? WHERE id = ? AND state = 'dead'"
)

# A delivery covered by a waiting job about the same subject: kept (without its body) so that a
# redelivery of it is a duplicate and the redelivery sweep knows the gate has it.
_INSERT_COALESCED = (
    "INSERT INTO jobs (id, kind, topic, body, body_sha256, state, attempts, due_at, created_at, "
    "updated_at, subject, last_error) VALUES (?, ?, ?, ?, ?, 'coalesced', 0, ?, ?, ?, ?, ?)"
)

_ERROR_CHARS = 500  # the last error kept per job, for operators


class SQLiteQueue:
    """The queue half of :class:`app.store.sqlite.SQLiteStore` (mixed in; shares its connections)."""

    _db: Connections
    _clock: Callable[[], float]

    # -- jobs ----------------------------------------------------------------------------------------
    def enqueue_job(
        self,
        job_id: str,
        kind: str,
        topic: str,
        body: bytes,
        *,
        now: int,
        subject: str | None = None,
        max_pending: int | None = None,
    ) -> str:
        digest = hashlib.sha256(body).hexdigest()
        with (
            self._db.failing_as("store-unavailable", "the job cannot be queued"),
            self._db.transaction(durable=True) as conn,
        ):
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None and row[0] != "dead":
                return DUPLICATE
            if row is None:
                seen = conn.execute(
                    "SELECT 1 FROM jobs WHERE body_sha256 = ? AND kind = ? AND state != 'dead' LIMIT 1",
                    (digest, kind),
                ).fetchone()
                if seen is not None:
                    return SAME_BODY
                if subject is not None:
                    waiting = conn.execute(
                        "SELECT id FROM jobs WHERE subject = ? AND state = 'queued' LIMIT 1", (subject,)
                    ).fetchone()
                    if waiting is not None:
                        conn.execute(
                            _INSERT_COALESCED,
                            coalesced_row(job_id, kind, topic, digest, subject, waiting[0], now),
                        )
                        return COALESCED
            if max_pending is not None:
                (pending,) = conn.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
                ).fetchone()
                if int(pending) >= max_pending:
                    return FULL
            if row is not None:  # given up on, and GitHub redelivered it: queued again
                conn.execute(
                    "UPDATE jobs SET state = 'queued', attempts = 0, due_at = ?, lease_owner = NULL, "
                    "lease_until = NULL, updated_at = ? WHERE id = ?",
                    (now, now, job_id),
                )
                return QUEUED
            conn.execute(
                "INSERT INTO jobs (id, kind, topic, body, body_sha256, state, attempts, due_at, "
                "created_at, updated_at, subject) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)",
                (job_id, kind, topic, body, digest, now, now, now, subject),
            )
        return QUEUED

    def claim_job(self, worker: str, *, now: int, lease: int) -> Job | None:
        with (
            self._db.failing_as("store-unavailable", "no job can be claimed"),
            self._db.transaction(durable=False) as conn,
        ):
            row = conn.execute(
                "SELECT id, kind, topic, body, attempts, created_at FROM jobs "
                "WHERE (state = 'queued' AND due_at <= ?) OR (state = 'running' AND lease_until <= ?) "
                "ORDER BY due_at, created_at, id LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            attempts = int(row[4]) + 1
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = ?, lease_owner = ?, lease_until = ?, "
                "updated_at = ? WHERE id = ?",
                (attempts, worker, now + lease, now, row[0]),
            )
        return Job(
            id=str(row[0]),
            kind=str(row[1]),
            topic=str(row[2]),
            body=bytes(row[3]),
            attempts=attempts,
            created_at=int(row[5]),
        )

    def complete_job(self, job_id: str, worker: str, *, now: int) -> bool:
        with self._db.failing_as("store-unavailable", "the job cannot be marked done"):
            cur = self._db.get().execute(
                "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, updated_at = ? "
                "WHERE id = ? AND state = 'running' AND lease_owner = ?",
                (now, job_id, worker),
            )
        return cur.rowcount == 1

    def fail_job(self, job_id: str, worker: str, *, now: int, error: str, retry_at: int | None) -> bool:
        state, due = ("queued", retry_at) if retry_at is not None else ("dead", now)
        with self._db.failing_as("store-unavailable", "the job's failure cannot be recorded"):
            cur = self._db.get().execute(
                "UPDATE jobs SET state = ?, due_at = ?, lease_owner = NULL, lease_until = NULL, "
                "last_error = ?, updated_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?",
                (state, due, error[:_ERROR_CHARS], now, job_id, worker),
            )
        return cur.rowcount == 1

    def queue_stats(self, *, now: int) -> QueueStats:
        with self._db.failing_as("store-unavailable", "the queue cannot be read"):
            conn = self._db.get()
            depth, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state IN ('queued', 'running')"
            ).fetchone()
            dead = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'dead'").fetchone()[0]
        return QueueStats(
            depth=int(depth), oldest_age=None if oldest is None else max(0, now - int(oldest)), dead=int(dead)
        )

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobSummary]:
        sql = _SELECT_SUMMARY
        args: list[Any] = []
        if state is not None:
            sql += " WHERE state = ?"
            args.append(state)
        with self._db.failing_as("store-unavailable", "the queue cannot be read"):
            rows = (
                self._db.get()
                .execute(sql + " ORDER BY updated_at DESC, id LIMIT ?", [*args, limit])
                .fetchall()
            )
        return [job_summary(row) for row in rows]

    def retry_job(self, job_id: str, *, now: int) -> str | None:
        with (
            self._db.failing_as("store-unavailable", "the job cannot be queued again"),
            self._db.transaction(durable=True) as conn,
        ):
            row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None and row[0] == "dead":
                conn.execute(_RETRY, (now, now, job_id))
        return None if row is None else str(row[0])

    # -- held deployments ------------------------------------------------------------------------------
    def save_deployment_gate(self, record: dict[str, Any]) -> None:
        row = deployment_row(record, int(self._clock()))
        with self._db.failing_as("store-unavailable", "the held deployment cannot be recorded"):
            self._db.get().execute(_UPSERT_DEPLOYMENT, row)

    @staticmethod
    def _write_kept(conn: sqlite3.Connection, jobs: list[JobRow], deployments: list[DeploymentRow]) -> None:
        """What decisions' origins keep with them, in the decisions' transaction (``conn``'s)."""
        if jobs:
            conn.executemany(_INSERT_JOB, jobs)
        if deployments:
            conn.executemany(_UPSERT_DEPLOYMENT, deployments)

    def find_deployment_gates(
        self, repository_id: int | None, *, run_id: int | None = None, state: str | None = "pending"
    ) -> list[dict[str, Any]]:
        sql, args = "SELECT record FROM deployment_gates WHERE 1 = 1", list[Any]()
        if repository_id is not None:
            sql += " AND repository_id = ?"
            args.append(int(repository_id))
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(int(run_id))
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        with self._db.failing_as("store-unavailable", "the held deployments cannot be read"):
            rows = self._db.get().execute(sql + " ORDER BY run_id, environment", args).fetchall()
        out = []
        for (text,) in rows:
            try:
                record = json.loads(text)
            except ValueError as exc:
                raise Unavailable(
                    "a held deployment record cannot be read (it is not JSON)", code="store-unavailable"
                ) from exc
            if isinstance(record, dict):
                out.append(record)
        return out
