"""Refused tokens are audited, but a flood of them cannot fill the disk.

Every refusal used to be an fsync'd audit record (89/s from six clients is ~8 GB a day). Now, per
source (the peer address), the first ``burst`` refusals of each ``window`` are recorded one by one
as ``token-refused``; the rest of that window are counted, by code, and written as one
``token-refusals-aggregated`` record when the window has ended (at the next refusal, at
housekeeping, or when the process exits). Nothing is lost: the aggregate carries the count. Each
worker process keeps its own windows, so the bound is per worker.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.store.base import Store

REFUSALS_PER_WINDOW = 10
WINDOW_SECONDS = 60.0
MAX_SOURCES = 10_000  # windows kept at once; past it every window is written out and forgotten


@dataclass
class _Window:
    started: float
    seen: int = 0
    codes: Counter[str] = field(default_factory=Counter)


class RefusalAudit:
    """Audits refused tokens with a per-source bound (see the module docstring). Thread-safe."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        burst: int = REFUSALS_PER_WINDOW,
        window: float = WINDOW_SECONDS,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self._store = store
        self._clock = clock
        self._burst = burst
        self._window = window
        self._max_sources = max_sources
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def record(self, source: str, payload: dict[str, Any]) -> None:
        """Audit one refusal from ``source``. Raises ``Unavailable`` when the audit log cannot be written."""
        with self._lock:
            now = self._clock()
            self._flush(now, everything=len(self._windows) >= self._max_sources)
            window = self._windows.get(source)
            if window is None:
                window = self._windows[source] = _Window(started=now)
            window.seen += 1
            if window.seen <= self._burst:
                self._store.append_audit("token-refused", payload)
            else:
                window.codes[str(payload.get("code"))] += 1

    def flush(self, *, everything: bool = False) -> None:
        """Write the aggregates of the windows that have ended (all of them with ``everything``)."""
        with self._lock:
            self._flush(self._clock(), everything=everything)

    def _flush(self, now: float, *, everything: bool) -> None:
        for source, window in list(self._windows.items()):
            if not everything and now - window.started < self._window:
                continue
            suppressed = sum(window.codes.values())
            if suppressed:
                self._store.append_audit(
                    "token-refusals-aggregated",
                    {
                        "source": source,
                        "count": suppressed,
                        "codes": dict(sorted(window.codes.items())),
                        "window_start": datetime.fromtimestamp(window.started, UTC),
                        "window_end": datetime.fromtimestamp(now, UTC),
                        "recorded_individually": min(window.seen, self._burst),
                        "request_id": None,  # written while answering another request: not its id
                    },
                )
            del self._windows[source]
