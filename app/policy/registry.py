"""The loaded policy, reloaded when its files change; a broken new version never replaces a good one.

``current()`` is called on every decision: at most every ``check_interval`` seconds it stats the
policy files (name, mtime, size) and reloads when they changed. A version that fails validation is
logged with its file:line messages and kept in ``last_error`` (shown by /readyz) while the last good
version keeps deciding. SIGHUP forces a reload where the process can install the handler.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.errors import PolicyError, Unavailable
from app.policy.loader import PolicySet, load_policies, policy_files

log = logging.getLogger("agent_gate.policy")

_Fingerprint = tuple[tuple[str, int, int], ...]


class PolicyRegistry:
    def __init__(
        self, path: Path, *, check_interval: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self._interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._current: PolicySet | None = None
        self._fingerprint: _Fingerprint | None = None
        self._checked_at = float("-inf")
        self.last_error: str | None = None

    def _stat(self) -> _Fingerprint:
        try:
            files = policy_files(self.path) if self.path.exists() else []
            return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
        except OSError:
            return ()

    def load(self) -> PolicySet:
        """The initial load: raises :class:`PolicyError` so the gate refuses to start on a bad policy."""
        with self._lock:
            fingerprint = self._stat()
            policies = load_policies(self.path)
            self._adopt(policies, fingerprint)
            return policies

    def _adopt(self, policies: PolicySet, fingerprint: _Fingerprint) -> None:
        if self._current is None or policies.digest != self._current.digest:
            log.info(
                "policy %s loaded from %s (%d owner(s))", policies.digest, self.path, len(policies.by_owner)
            )
        self._current = policies
        self._fingerprint = fingerprint
        self._checked_at = self._clock()
        self.last_error = None

    def current(self) -> PolicySet:
        """The policy in force; reloads changed files at most every ``check_interval`` seconds."""
        now = self._clock()
        if self._current is not None and now - self._checked_at < self._interval:
            return self._current
        with self._lock:
            if self._current is None or now - self._checked_at >= self._interval:
                self._checked_at = now
                fingerprint = self._stat()
                if fingerprint != self._fingerprint:
                    self._try_reload(fingerprint)
            if self._current is None:
                raise Unavailable(
                    f"no valid policy is loaded: {self.last_error or 'none was loaded'}",
                    code="policy-unavailable",
                )
            return self._current

    def reload(self) -> bool:
        """Reload now; True when a new valid version was adopted."""
        with self._lock:
            before = self._current.digest if self._current else None
            self._try_reload(self._stat())
            return self._current is not None and self._current.digest != before

    def _try_reload(self, fingerprint: _Fingerprint) -> None:
        try:
            policies = load_policies(self.path)
        except PolicyError as exc:
            self._fingerprint = fingerprint  # don't re-parse the same broken files on every check
            self.last_error = "; ".join(p.render() for p in exc.problems) or exc.message
            log.error(
                "policy reload failed, keeping %s: %s",
                self._current.digest if self._current else "nothing",
                self.last_error,
            )
            return
        self._adopt(policies, fingerprint)

    def install_sighup(self) -> None:
        """Reload on SIGHUP (only possible from the main thread)."""
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.reload())
