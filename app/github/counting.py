"""Counting a decision's GitHub requests, across the threads that make them.

A decision's evidence is gathered by the thread that serves it and by a small pool it hands calls
to (app/evidence/gather.py). The counts live in a context variable, not a thread-local: a pool
task runs in a copy of the asking thread's context (``contextvars.copy_context``), which shares
the asking thread's tally, so its requests count toward the decision that asked. A thread's own
context is its own, so two decisions on two threads never mix their counts.
"""

from __future__ import annotations

import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class _Tally:
    calls: int = 0
    not_modified: int = 0


# Per context, per counter (one counter per HTTP client).
_TALLIES: ContextVar[weakref.WeakKeyDictionary[CallCounter, _Tally] | None] = ContextVar(
    "agent_gate_github_tallies", default=None
)


class CallCounter:
    """Requests (``calls``, retries included) and ETag hits (``not_modified``) of the current
    context. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return self._tally().calls

    @property
    def not_modified(self) -> int:
        return self._tally().not_modified

    def add(self, calls: int = 0, *, not_modified: int = 0) -> None:
        tally = self._tally()
        with self._lock:
            tally.calls += calls
            tally.not_modified += not_modified

    def _tally(self) -> _Tally:
        """This counter's tally in the current context, created on first use (read ``calls``
        before handing work to a pool, so the copies share it)."""
        tallies = _TALLIES.get()
        if tallies is None:
            tallies = weakref.WeakKeyDictionary()
            _TALLIES.set(tallies)
        with self._lock:
            tally = tallies.get(self)
            if tally is None:
                tally = tallies[self] = _Tally()
            return tally
