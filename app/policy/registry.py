"""The loaded policy, reloaded when its files change; a broken new version never replaces a good one.

``current()`` is called on every decision. At most every ``check_interval`` seconds it stats the
policy files (name, inode, mtime, size) and reloads when they changed; only one thread does that,
the others keep deciding with the version in force. A version that fails validation is logged
with its ``file:line`` messages and kept in ``last_error`` (shown by /readyz) while the last good
version keeps deciding. SIGHUP forces a reload where the process can install the handler.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from app.errors import PolicyError, Unavailable
from app.policy.loader import PolicySet, load_policies, policy_digest, policy_files

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
        last_good: Path | None = None,
        settle: float = 0.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        # Where the last version adopted is kept, so a worker that starts while the files are broken
        # decides with it instead of failing to boot (docs/policy.md). None: not kept.
        self._last_good = last_good
        # A changed file is adopted only once it has been left alone this long and did not change
        # while it was read: a file caught half-written is never adopted (replace files atomically).
        self._settle = settle
        self._wall_clock = wall_clock
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

    def start(self) -> PolicySet | None:
        """A worker's initial load, which never fails: the files if they are valid, else the last good
        version kept by :meth:`_adopt` (logged, and shown by /readyz), else nothing (decisions answer
        503 ``policy-unavailable``). Either way :meth:`current` adopts the files once they are fixed."""
        with self._lock:
            fingerprint = self._stat()
            self._try_reload(fingerprint, initial=True)
            if self._current is not None or self._last_good is None:
                return self._current
            kept = _read_last_good(self._last_good)
            if kept is None:
                return None
            try:
                policies = load_policies(kept)
            except PolicyError as exc:
                self._log.error("the last good policy kept in %s does not load: %s", kept, exc.message)
                return None
            self._current = policies
            self._log.warning(
                "starting on the last good policy %s (kept in %s): the files at %s are invalid",
                policies.digest,
                kept,
                self.path,
            )
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
        changed = self._current is None or policies.digest != self._current.digest
        self._current = policies
        self._fingerprint = fingerprint
        self._checked_at = self._clock()
        self.last_error = None
        if changed and self._last_good is not None:
            _keep_last_good(self.path, policies.digest, self._last_good, self._log)

    def _settled(self, fingerprint: _Fingerprint) -> bool:
        """Whether the files are done changing: none modified within ``settle`` seconds."""
        if self._settle <= 0 or not fingerprint:
            return True
        newest = max(mtime_ns for _, _, mtime_ns, _ in fingerprint) / 1e9
        return self._wall_clock() - newest >= self._settle

    def _try_reload(self, fingerprint: _Fingerprint, *, initial: bool = False) -> None:
        if not initial and not self._settled(fingerprint):
            self._log.info(
                "policy files at %s changed moments ago; adopting them once they settle", self.path
            )
            return  # the fingerprint is not recorded: the next check looks again
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
        if not initial and self._stat() != fingerprint:
            # Written to while it was read: what was read may be half a file. Look again next time.
            self._log.warning("policy files at %s changed while being read; not adopted yet", self.path)
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


def _read_last_good(root: Path) -> Path | None:
    """The directory of the last good version kept under ``root``, if any."""
    try:
        name = (root / "current").read_text("utf-8").strip()
    except OSError:
        return None
    kept = root / name
    return kept if name and kept.is_dir() else None


def _keep_last_good(path: Path, digest: str, root: Path, logger: logging.Logger) -> None:
    """Copy the policy files just adopted to ``root/<digest>`` and point ``root/current`` at it.

    The bytes copied are checked against the adopted digest, so a file changed since it was read is
    never kept. Each step is atomic (a new directory renamed into place, the pointer replaced), so a
    crash leaves the previous version kept. Best effort: a failure is logged, the gate goes on.
    """
    name = digest.replace(":", "-")
    try:
        files = policy_files(path)
        contents = [(file.name, file.read_bytes()) for file in files]
        if policy_digest(contents) != digest:
            return  # changed since it was read: the next adoption keeps it
        root.mkdir(parents=True, exist_ok=True)
        target = root / name
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
            for file_name, raw in contents:
                (staging / file_name).write_bytes(raw)
            try:
                staging.rename(target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another worker kept the same version
        pointer = root / f".current-{os.getpid()}"
        pointer.write_text(name + "\n", "utf-8")
        os.replace(pointer, root / "current")
        for old in root.iterdir():
            if old.is_dir() and old.name != name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        logger.warning("could not keep the last good policy in %s: %s", root, exc)
