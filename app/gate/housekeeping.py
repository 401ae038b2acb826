"""Housekeeping: purging expired replay records and grants, and pages and jobs past retention.

Started after recorded decisions, at most every ``interval`` seconds per process, on a thread of its
own (the answer never waits for it). Purging only drops rows that can no longer matter (tokens past
exp plus leeway, grants past expiry, pages past retention), so it can never turn a deny into an allow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.credentials.grants import GrantService
from app.store.base import Store
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
            self.thread = threading.Thread(
                target=self._purge, args=(now,), name="agent-gate-housekeeping", daemon=True
            )
            self.thread.start()
        except RuntimeError:  # no thread can be started (interpreter shutting down): skip this round
            self._lock.release()

    def join(self, timeout: float) -> None:
        """Wait for a running purge to finish (at shutdown, before the store closes)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _purge(self, now: float) -> None:
        try:
            self.refusals.flush()
            replays = self.store.purge_expired(int(now))
            retained = self.store.purge_retained(int(now) - self.retention_days * 86_400)
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
