"""Clock skew, watched: how far this replica's clock is from the database's.

Shared state is compared with the database's clock (app.store.clock), so skew no longer lets a token
through twice; but a replica whose clock is off still stamps its audit records, mints grants and
checks token expiry by it. Each replica measures the difference at ``/readyz`` and at housekeeping;
past the threshold (``GATE_CLOCK_SKEW_MAX``) ``/readyz`` says ``degraded`` with the figure and a
warning is logged (at most every ``warn_every`` seconds).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.errors import Unavailable
from app.observe.metrics import metrics
from app.store.base import Store
from app.store.clock import measure_skew

log = logging.getLogger("agent_gate")


@dataclass
class ClockWatch:
    store: Store
    clock: Callable[[], float]
    threshold: float
    warn_every: float = 300.0
    _warned_at: float = field(default=float("-inf"), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self) -> dict[str, Any]:
        """The ``clock`` check of ``/readyz``: ``ok`` is False past the threshold (the gate still
        answers: ``degraded``, not ``not-ready``). Raises ``Unavailable`` when the store cannot be read."""
        skew = measure_skew(self.store, self.clock)
        if skew is None:
            return {"ok": True, "source": "local", "threshold_seconds": self.threshold}
        metrics().clock_skew_seconds.set(skew)
        ok = abs(skew) <= self.threshold
        if not ok:
            self._warn(skew)
        return {
            "ok": ok,
            "source": "database",
            "skew_seconds": round(skew, 3),
            "threshold_seconds": self.threshold,
        }

    def check_quietly(self) -> None:
        """Measure (and warn) from housekeeping; a store that cannot be read is reported elsewhere."""
        with contextlib.suppress(Unavailable):
            self.check()

    def _warn(self, skew: float) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned_at < self.warn_every:
                return
            self._warned_at = now
        log.warning(
            "this replica's clock is %.1f s %s the database's (more than GATE_CLOCK_SKEW_MAX=%g s): "
            "fix its time synchronisation (NTP); its audit times, grants and token expiry checks use it",
            abs(skew),
            "ahead of" if skew > 0 else "behind",
            self.threshold,
        )
