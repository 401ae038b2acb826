"""Side effects of decisions and evidence changes, run so that none can change or break a decision.

A failing side effect (a hook, an evidence listener, recording a break-glass use) is logged and
audited as ``side-effect-failed``; the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from app.store.base import Store

log = logging.getLogger("agent_gate")


class SideEffects:
    def __init__(self, store: Store) -> None:
        self._store = store

    def run(self, func: Callable[[Any], None], arg: Any, what: str) -> None:
        """``func(arg)``; a failure is logged and audited, never raised."""
        name = getattr(func, "__qualname__", func.__class__.__name__)
        try:
            func(arg)
        except Exception as exc:  # noqa: BLE001  # side effects must never change or break the decision
            log.warning("%s failed for %s: %s", name, what, exc.__class__.__name__)
            try:
                self._store.append_audit(
                    "side-effect-failed", {"what": what, "hook": name, "error": exc.__class__.__name__}
                )
            except Exception:  # noqa: BLE001  # the store logs its own failure; nothing more to do here
                log.error("could not audit the failure of %s for %s", name, what)
