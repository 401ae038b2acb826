"""The loaded policy, reloaded when its files change; a broken new version never replaces a good one.

``current()`` is called on every decision. At most every ``check_interval`` seconds it stats the
policy files (name, inode, mtime, size) and reloads when they changed; only one thread does that,
the others keep deciding with the version in force. A version that fails validation is logged
with its ``file:line`` messages and kept in ``last_error`` (shown by /readyz) while the last good
version keeps deciding. SIGHUP forces a reload where the process can install the handler.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from app.errors import PolicyError, Unavailable
from app.policy.loader import PolicySet, load_policies, policy_files

log = logging.getLogger("agent_gate.policy")

_Fingerprint = tuple[tuple[str, int, int, int], ...]

# /readyz shows last_error; a policy with hundreds of problems is summarised, the log has them all.
_MAX_PROBLEMS_SHOWN = 20


class PolicyRegistry:
    """The policy set in force, with change detection and last-good-version semantics."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.path = Path(path)
        self._interval = check_interval
        self._clock = clock
        self._log = logger
        self._lock = threading.Lock()
        self._current: PolicySet | None = None
        self._fingerprint: _Fingerprint | None = None
        self._checked_at = float("-inf")
        self.last_error: str | None = None

    def _stat(self) -> _Fingerprint:
        """What identifies the files' versions; an unreadable path is a fingerprint of its own."""
        try:
            files = policy_files(self.path) if self.path.exists() else []
            out = []
            for file in files:
                st = file.stat()
                out.append((str(file), st.st_ino, st.st_mtime_ns, st.st_size))
            return tuple(out)
        except OSError:
            return ()

    def load(self) -> PolicySet:
        """The initial load. Raises :class:`PolicyError` so the gate refuses to start on a bad policy."""
        with self._lock:
            fingerprint = self._stat()  # before reading: a change while loading is seen next time
            policies = load_policies(self.path)
            self._adopt(policies, fingerprint)
            return policies

    def current(self) -> PolicySet:
        """The policy in force; reloads changed files at most every ``check_interval`` seconds.

        Raises :class:`Unavailable` only when no valid policy was ever loaded.
        """
        policies = self._current
        if policies is not None and self._clock() - self._checked_at < self._interval:
            return policies
        if policies is None:
            self._lock.acquire()
        elif not self._lock.acquire(blocking=False):
            return policies  # another thread is checking: go on deciding with the version in force
        try:
            now = self._clock()
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
        finally:
            self._lock.release()

    def reload(self) -> bool:
        """Reload now, changed or not; True when a new valid version was adopted."""
        with self._lock:
            before = self._current.digest if self._current else None
            self._checked_at = self._clock()
            self._try_reload(self._stat())
            return self._current is not None and self._current.digest != before

    def _adopt(self, policies: PolicySet, fingerprint: _Fingerprint) -> None:
        if self._current is None or policies.digest != self._current.digest:
            owners = ", ".join(str(o) for o in sorted(policies.by_owner))
            self._log.info("policy %s loaded from %s (owner ids: %s)", policies.digest, self.path, owners)
        self._current = policies
        self._fingerprint = fingerprint
        self._checked_at = self._clock()
        self.last_error = None

    def _try_reload(self, fingerprint: _Fingerprint) -> None:
        try:
            policies = load_policies(self.path)
        except PolicyError as exc:
            self._fingerprint = fingerprint  # don't re-parse the same broken files on every check
            kept = self._current.digest if self._current else "nothing"
            rendered = [p.render() for p in exc.problems] or [exc.message]
            shown = rendered[:_MAX_PROBLEMS_SHOWN]
            if len(rendered) > len(shown):
                shown.append(f"... and {len(rendered) - len(shown)} more problem(s), see the log")
            self.last_error = f"{exc.message}; keeping {kept}: " + "; ".join(shown)
            self._log.error("policy reload failed, keeping %s: %s", kept, exc.message)
            for line in rendered:
                self._log.error("  %s", line)
            return
        self._adopt(policies, fingerprint)

    def install_sighup(self) -> None:
        """Reload on SIGHUP. Only the main thread can install a handler; elsewhere this does nothing.

        The handler hands the reload to a thread: a signal handler runs in the main thread between
        two bytecodes, possibly while that thread holds the lock, and must not wait for it.
        """
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self._reload_logged, name="policy-reload", daemon=True).start()

        signal.signal(signal.SIGHUP, handler)

    def _reload_logged(self) -> None:
        adopted = self.reload()
        self._log.info("SIGHUP: policy %s", "reloaded" if adopted else "unchanged or invalid (see above)")
