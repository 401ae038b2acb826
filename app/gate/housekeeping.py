"""Housekeeping: purging expired replay records and grants, and pages and jobs past retention.

Started after recorded decisions, at most every ``interval`` seconds per process, on a thread of its
own (the answer never waits for it). Purging only drops rows that can no longer matter (tokens past
exp plus leeway, grants past expiry, pages past retention), so it can never turn a deny into an allow.
Every expiry is judged by the database's clock (app.store.clock), never this replica's: a replica
whose clock runs ahead purges nothing the others still need. It also measures this replica's clock
skew (app.gate.clock_watch), which warns when it is past the threshold.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.credentials.grants import GrantService
from app.gate.clock_watch import ClockWatch
from app.store.base import Store
from app.store.clock import shared_time
from app.store.refusals import RefusalAudit

log = logging.getLogger("agent_gate")


@dataclass
class Housekeeping:
    store: Store
    refusals: RefusalAudit
    grants: GrantService
    clock: Callable[[], float]
    retention_days: int
    interval: float = 300.0
    clock_watch: ClockWatch | None = None
    thread: threading.Thread | None = field(default=None, repr=False)  # the last run, for tests
    _ran_at: float = field(default=float("-inf"), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def due(self) -> None:
        """Start a purge if one is due and none is running; cheap when not due."""
        now = self.clock()
        if now - self._ran_at < self.interval or not self._lock.acquire(blocking=False):
            return
        self._ran_at = now
        try:
            self.thread = threading.Thread(target=self._purge, name="agent-gate-housekeeping", daemon=True)
            self.thread.start()
        except RuntimeError:  # no thread can be started (interpreter shutting down): skip this round
            self._lock.release()

    def join(self, timeout: float) -> None:
        """Wait for a running purge to finish (at shutdown, before the store closes)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _purge(self) -> None:
        try:
            self.refusals.flush()
            if self.clock_watch is not None:
                self.clock_watch.check_quietly()
            replays = self.store.purge_expired()
            shared_now = shared_time(self.store, self.clock)
            retained = self.store.purge_retained(int(shared_now) - self.retention_days * 86_400)
            grants = self.grants.purge_expired()
            if grants:
                self.store.append_audit("grants-expired", {"purged": grants, "reason": "expired"})
            log.info(
                "housekeeping: purged %d replay record(s), %d expired grant(s), %d decision page(s) and "
                "finished job(s) past retention",
                replays,
                grants,
                retained,
            )
        except Exception as exc:  # noqa: BLE001  # housekeeping must never break a request
            log.warning("housekeeping failed: %s", exc.__class__.__name__)
        finally:
            self._lock.release()
