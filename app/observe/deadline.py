"""The overall deadline of the request being answered, read by whatever waits on the outside world.

``POST /v1/decisions`` binds one (``GATE_DECISION_DEADLINE``, below gunicorn's 30 s worker timeout);
the GitHub client shortens each call to the time left and refuses to start one past it, so a slow
GitHub ends in the gate's own 503 in time, never in a worker killed mid-request.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_deadline: ContextVar[float | None] = ContextVar("agent_gate_deadline", default=None)


def bind(seconds: float) -> Token[float | None]:
    """Start a deadline ``seconds`` from now for this request; returns the token to :func:`reset` with."""
    return _deadline.set(time.monotonic() + seconds)


def reset(token: Token[float | None]) -> None:
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (negative once past), or None outside a deadline."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
