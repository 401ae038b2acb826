"""The durable job queue and the held deployments, in the PostgreSQL store.

A job is claimed with ``FOR UPDATE SKIP LOCKED``: concurrent workers on every replica each take a
different due row without waiting on one another, and the claim sets a lease (``lease_until``). A
worker that dies (SIGKILL, a lost replica) holds nothing once its lease ends: the job is due again and
the next claim takes it. Completing or failing names the lease holder, so a worker that outlived its
lease cannot finish a job another worker now runs. Enqueues are serialised by an advisory lock, so
two replicas receiving one delivery (or one body under two ids) at once keep one job, as the SQLite
store's ``BEGIN IMMEDIATE`` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from app.errors import Unavailable
from app.store.base import COALESCED, DUPLICATE, FULL, QUEUED, SAME_BODY, Job, JobSummary, QueueStats
from app.store.postgres_pool import Pool
from app.store.rows import DeploymentRow, JobRow, coalesced_row, deployment_row, job_summary

QUEUE_LOCK = int.from_bytes(b"ag-queue", "big") & (2**63 - 1)
_UPSERT_DEPLOYMENT = (
    "INSERT INTO deployment_gates (repository_id, run_id, environment, state, updated_at, record) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (repository_id, run_id, environment) "
    "DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, record = excluded.record"
)
# A job queued with its decision has a fresh id (the decision's): no earlier job to dedupe against,
# so no queue lock either.
_INSERT_JOB = (
    "INSERT INTO jobs (id, kind, topic, body, body_sha256, state, attempts, due_at, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, 'queued', 0, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)
# What operators see of a job (``queue list``), and a job given up on queued again (``queue retry``):
# due at once, its attempts counted afresh, its last error kept until it runs.
_SELECT_SUMMARY = (
    "SELECT id, kind, topic, state, attempts, due_at, created_at, updated_at, last_error FROM jobs"
)
_RETRY = (
    "UPDATE jobs SET state = 'queued', attempts = 0, due_at = %s, lease_owner = NULL, lease_until = NULL, "
    "updated_at = %s WHERE id = %s AND state = 'dead'"
)
# A delivery covered by a waiting job about the same subject (see app.store.sqlite_queue).
_INSERT_COALESCED = (
    "INSERT INTO jobs (id, kind, topic, body, body_sha256, state, attempts, due_at, created_at, "
    "updated_at, subject, last_error) VALUES (%s, %s, %s, %s, %s, 'coalesced', 0, %s, %s, %s, %s, %s)"
)
_ERROR_CHARS = 500  # the last error kept per job, for operators


class PostgresQueue:
    """The queue half of :class:`app.store.postgres.PostgresStore` (mixed in; shares its pool)."""

    _db: Pool
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
            self._db.transaction() as cur,
        ):
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (QUEUE_LOCK,))
            cur.execute("SELECT state FROM jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
            if row is not None and row[0] != "dead":
                return DUPLICATE
            if row is None:
                cur.execute(
                    "SELECT 1 FROM jobs WHERE body_sha256 = %s AND kind = %s AND state != 'dead' LIMIT 1",
                    (digest, kind),
                )
                if cur.fetchone() is not None:
                    return SAME_BODY
                if subject is not None:
                    cur.execute(
                        "SELECT id FROM jobs WHERE subject = %s AND state = 'queued' LIMIT 1", (subject,)
                    )
                    waiting = cur.fetchone()
                    if waiting is not None:
                        cur.execute(
                            _INSERT_COALESCED,
                            coalesced_row(job_id, kind, topic, digest, subject, str(waiting[0]), now),
                        )
                        return COALESCED
            if max_pending is not None:
                cur.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
                pending = cur.fetchone()
                if pending is not None and int(pending[0]) >= max_pending:
                    return FULL
            if row is not None:  # given up on, and GitHub redelivered it: queued again
                cur.execute(
                    "UPDATE jobs SET state = 'queued', attempts = 0, due_at = %s, lease_owner = NULL, "
                    "lease_until = NULL, updated_at = %s WHERE id = %s",
                    (now, now, job_id),
                )
                return QUEUED
            cur.execute(
                "INSERT INTO jobs (id, kind, topic, body, body_sha256, state, attempts, due_at, "
                "created_at, updated_at, subject) VALUES (%s, %s, %s, %s, %s, 'queued', 0, %s, %s, %s, %s)",
                (job_id, kind, topic, body, digest, now, now, now, subject),
            )
        return QUEUED

    def claim_job(self, worker: str, *, now: int, lease: int) -> Job | None:
        with (
            self._db.failing_as("store-unavailable", "no job can be claimed"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = %s, "
                "lease_until = %s, updated_at = %s WHERE id = ("
                " SELECT id FROM jobs"
                " WHERE (state = 'queued' AND due_at <= %s) OR (state = 'running' AND lease_until <= %s)"
                " ORDER BY due_at, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
                ") RETURNING id, kind, topic, body, attempts, created_at",
                (worker, now + lease, now, now, now),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return Job(
            id=str(row[0]),
            kind=str(row[1]),
            topic=str(row[2]),
            body=bytes(row[3]),
            attempts=int(row[4]),
            created_at=int(row[5]),
        )

    def complete_job(self, job_id: str, worker: str, *, now: int) -> bool:
        with (
            self._db.failing_as("store-unavailable", "the job cannot be marked done"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute(
                "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, updated_at = %s "
                "WHERE id = %s AND state = 'running' AND lease_owner = %s",
                (now, job_id, worker),
            )
            return cur.rowcount == 1

    def fail_job(self, job_id: str, worker: str, *, now: int, error: str, retry_at: int | None) -> bool:
        state, due = ("queued", retry_at) if retry_at is not None else ("dead", now)
        with (
            self._db.failing_as("store-unavailable", "the job's failure cannot be recorded"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute(
                "UPDATE jobs SET state = %s, due_at = %s, lease_owner = NULL, lease_until = NULL, "
                "last_error = %s, updated_at = %s WHERE id = %s AND state = 'running' AND lease_owner = %s",
                (state, due, error[:_ERROR_CHARS], now, job_id, worker),
            )
            return cur.rowcount == 1

    def queue_stats(self, *, now: int) -> QueueStats:
        with (
            self._db.failing_as("store-unavailable", "the queue cannot be read"),
            self._db.transaction() as cur,
        ):
            cur.execute(
                "SELECT COUNT(*) FILTER (WHERE state IN ('queued', 'running')), "
                "MIN(created_at) FILTER (WHERE state IN ('queued', 'running')), "
                "COUNT(*) FILTER (WHERE state = 'dead') FROM jobs"
            )
            row = cur.fetchone()
        depth, oldest, dead = row if row is not None else (0, None, 0)
        return QueueStats(
            depth=int(depth), oldest_age=None if oldest is None else max(0, now - int(oldest)), dead=int(dead)
        )

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobSummary]:
        sql = _SELECT_SUMMARY
        args: list[Any] = []
        if state is not None:
            sql += " WHERE state = %s"
            args.append(state)
        with (
            self._db.failing_as("store-unavailable", "the queue cannot be read"),
            self._db.transaction() as cur,
        ):
            cur.execute(sql + " ORDER BY updated_at DESC, id LIMIT %s", [*args, limit])
            rows = cur.fetchall()
        return [job_summary(row) for row in rows]

    def retry_job(self, job_id: str, *, now: int) -> str | None:
        with (
            self._db.failing_as("store-unavailable", "the job cannot be queued again"),
            self._db.transaction() as cur,
        ):
            cur.execute("SELECT state FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
            row = cur.fetchone()
            if row is not None and row[0] == "dead":
                cur.execute(_RETRY, (now, now, job_id))
        return None if row is None else str(row[0])

    # -- held deployments ------------------------------------------------------------------------------
    def save_deployment_gate(self, record: dict[str, Any]) -> None:
        row = deployment_row(record, int(self._clock()))
        with (
            self._db.failing_as("store-unavailable", "the held deployment cannot be recorded"),
            self._db.transaction(durable=False) as cur,
        ):
            cur.execute(_UPSERT_DEPLOYMENT, row)

    @staticmethod
    def _write_kept(cur: psycopg.Cursor[Any], jobs: list[JobRow], deployments: list[DeploymentRow]) -> None:
        """What decisions' origins keep with them, in the decisions' transaction (``cur``'s)."""
        if jobs:
            cur.executemany(_INSERT_JOB, jobs)
        if deployments:
            cur.executemany(_UPSERT_DEPLOYMENT, deployments)

    def find_deployment_gates(
        self, repository_id: int | None, *, run_id: int | None = None, state: str | None = "pending"
    ) -> list[dict[str, Any]]:
        with (
            self._db.failing_as("store-unavailable", "the held deployments cannot be read"),
            self._db.transaction(tuple_row) as cur,
        ):
            cur.execute(
                "SELECT record FROM deployment_gates WHERE (%s::bigint IS NULL OR repository_id = %s) "
                "AND (%s::bigint IS NULL OR run_id = %s) AND (%s::text IS NULL OR state = %s) "
                "ORDER BY run_id, environment",
                (repository_id, repository_id, run_id, run_id, state, state),
            )
            rows = cur.fetchall()
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
