"""The queue worker: runs the durable jobs the webhook stored, with leases, retries and backoff.

Each gunicorn worker of ``agent-gate serve`` runs ``GATE_QUEUE_THREADS`` of these threads
(``agent-gate worker`` runs them in a process of their own). Several threads, workers or replicas
share one queue safely: a job is leased to one of them at a time (``Store.claim_job``), and a
worker that dies releases its job when the lease ends.

A failure never decides anything: a transient one (GitHub 5xx, rate limit, timeout, the store
unavailable) is retried with exponential backoff; after ``max_attempts`` the job is given up and
kept for operators, and a redelivery from GitHub's UI queues it again. A job that can never
succeed (a payload without the fields the gate needs) is given up at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.errors import GateError, InvalidRequest
from app.store.base import Job, Store
from app.store.clock import shared_time

log = logging.getLogger("agent_gate.queue")

JobHandler = Callable[[Job], None]


@dataclass
class QueueWorker:
    """Claims and runs jobs from ``store`` with ``handler``; safe to run in several threads."""

    store: Store
    handler: JobHandler
    clock: Callable[[], float]
    lease: int = 300  # seconds; longer than any one job's GitHub calls with their retries
    max_attempts: int = 8  # with the backoff below, about 1.5 hours of retries
    base_delay: int = 15
    max_delay: int = 1800
    poll_interval: float = 2.0
    name: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(4)}")
    wakeup: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)

    def now(self) -> int:
        """Now by the database's clock (app.store.clock): leases and due times are shared with every
        replica, so a replica whose clock runs ahead never takes a lease another still holds. The
        local clock when the store cannot be asked (the next store call fails and says so)."""
        try:
            return int(shared_time(self.store, self.clock))
        except GateError:
            return int(self.clock())

    def run_once(self) -> bool:
        """Claim one due job and run it; False when none was due (or the store is unavailable)."""
        try:
            job = self.store.claim_job(self.name, now=self.now(), lease=self.lease)
        except GateError as exc:
            log.warning("queue: no job could be claimed: %s", exc.message)
            return False
        if job is None:
            return False
        self._run(job)
        return True

    def drain(self, limit: int = 1000) -> int:
        """Run due jobs until none is left (or ``limit``); returns how many ran. For tests and CLI."""
        ran = 0
        while ran < limit and self.run_once():
            ran += 1
        return ran

    def retry_delay(self, attempts: int) -> int:
        """Seconds before attempt ``attempts + 1``: exponential from ``base_delay``, capped."""
        return int(min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1)))

    def _run(self, job: Job) -> None:
        try:
            self.handler(job)
        except InvalidRequest as exc:
            # The payload lacks what the gate needs: retrying cannot help.
            log.warning("queue: %s %s given up (%s): %s", job.topic, job.id, exc.code, exc.message)
            self._release(job, self.now(), exc.code, retry_at=None)
            return
        except Exception as exc:  # every failure is retried; none may kill the worker
            code = exc.code if isinstance(exc, GateError) else exc.__class__.__name__
            wait = self.retry_delay(job.attempts)
            if isinstance(exc, GateError) and exc.headers and "Retry-After" in exc.headers:
                wait = max(wait, int(exc.headers["Retry-After"]))
            give_up = job.attempts >= self.max_attempts
            log.warning(
                "queue: %s %s failed (attempt %d of %d, %s)%s",
                job.topic,
                job.id,
                job.attempts,
                self.max_attempts,
                code,
                "; given up" if give_up else f"; retried in {wait} s",
                # A failure the gate did not raise on purpose is a bug: its traceback goes to the log
                # (never to GitHub or a client), and the job is retried like any other failure.
                exc_info=None if isinstance(exc, GateError) else exc,
            )
            now = self.now()
            self._release(job, now, code, retry_at=None if give_up else now + wait)
            return
        try:
            if not self.store.complete_job(job.id, self.name, now=self.now()):
                log.warning("queue: %s %s finished after its lease ended", job.topic, job.id)
        except GateError as exc:
            log.warning("queue: %s %s ran but could not be marked done: %s", job.topic, job.id, exc.message)

    def _release(self, job: Job, now: int, error: str, *, retry_at: int | None) -> None:
        try:
            self.store.fail_job(job.id, self.name, now=now, error=error, retry_at=retry_at)
        except GateError as exc:
            # The lease runs out by itself and the job is claimed again.
            log.warning("queue: the failure of %s could not be recorded: %s", job.id, exc.message)

    # -- background threads -----------------------------------------------------------------------------
    def start(self, threads: int = 1) -> None:
        """Run the worker in ``threads`` daemon threads until :meth:`stop`."""
        self._stop.clear()
        for i in range(threads):
            thread = threading.Thread(target=self._loop, name=f"agent-gate-queue-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wakeup.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001  # the loop outlives any bug in one job
                log.error("queue: unexpected error in the worker loop")
                busy = False
            if not busy:
                self.wakeup.wait(self.poll_interval)
                self.wakeup.clear()
