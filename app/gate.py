"""The gate's collaborators, built once per process and handed to the Flask app.

Outside services (token verification, policies, the store, GitHub evidence) sit behind small
interfaces so tests pass fakes that record what they were asked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.credentials.grants import GrantService
from app.decide.decision import Decision
from app.errors import GateError
from app.evidence.gather import EvidenceSource
from app.evidence.model import EvidenceChange
from app.github.protocol import GitHubAPI
from app.governance.breakglass import BreakGlass
from app.policy.registry import PolicyRegistry
from app.publish.checks import CheckRunPublisher
from app.settings import Settings
from app.store.base import QUEUED, Store
from app.store.refusals import RefusalAudit
from app.tokens.verify import TokenVerifier

log = logging.getLogger("agent_gate")

DecisionHook = Callable[[Decision], None]
CHECK_RUN_JOB = "check-run"  # the job kind that posts a decision's check run


EvidenceListener = Callable[[EvidenceChange], None]


@dataclass
class Gate:
    settings: Settings
    verifier: TokenVerifier
    policies: PolicyRegistry
    store: Store
    evidence: EvidenceSource
    clock: Callable[[], float]
    # Called after a decision is recorded (check runs, grants). A failing hook never changes the
    # decision: it is logged and audited.
    hooks: list[DecisionHook] = field(default_factory=list)
    # Issues, verifies and revokes just-in-time grants.
    grants: GrantService | None = None
    # Publishes check runs (webhook merge checks); None without a GitHub App.
    checks: CheckRunPublisher | None = None
    # Told when the webhook reports that evidence behind earlier decisions changed.
    evidence_listeners: list[EvidenceListener] = field(default_factory=list)
    # The GitHub App (None without one): re-fetches facts for webhook events and answers the
    # deployment protection rule.
    github: GitHubAPI | None = None
    # Audits refused tokens with a per-source bound (app/store/refusals.py); None: one record each.
    refusals: RefusalAudit | None = None
    # Emergency overrides (app/governance/breakglass.py); applied to denied API decisions.
    break_glass: BreakGlass | None = None
    # Set when a job is queued, so this process's queue threads run it at once.
    jobs_waiting: threading.Event = field(default_factory=threading.Event, repr=False)

    # Housekeeping (purging expired replay records and grants) runs at most this often per process.
    housekeeping_interval: float = 300.0
    _housekept_at: float = field(default=float("-inf"), repr=False)
    _housekeeping_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    housekeeper: threading.Thread | None = field(default=None, repr=False)  # the last run, for tests

    def housekeep(self) -> None:
        """Start purging expired and retained rows, at most every ``housekeeping_interval`` seconds.

        Called after decisions; cheap when not due. The purge runs on a thread of its own, off the
        request path: the answer never waits for it. Purging only drops rows that can no longer matter
        (tokens past exp plus leeway, grants past expiry, pages past retention), so it can never turn
        a deny into an allow.
        """
        now = self.clock()
        if now - self._housekept_at < self.housekeeping_interval or not self._housekeeping_lock.acquire(
            blocking=False
        ):
            return
        self._housekept_at = now
        try:
            self.housekeeper = threading.Thread(
                target=self._housekeep, args=(now,), name="agent-gate-housekeeping", daemon=True
            )
            self.housekeeper.start()
        except RuntimeError:  # no thread can be started (interpreter shutting down): skip this round
            self._housekeeping_lock.release()

    def _housekeep(self, now: float) -> None:
        try:
            if self.refusals is not None:
                self.refusals.flush()
            replays = self.store.purge_expired(int(now))
            retained = self.store.purge_retained(int(now) - self.settings.retention_days * 86_400)
            grants = self.grants.purge_expired() if self.grants is not None else 0
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
            self._housekeeping_lock.release()

    def close(self, timeout: float = 10.0) -> None:
        """Shut down in order: let a running housekeeping purge finish, write the refusals still being
        counted, then close the store."""
        if self.housekeeper is not None:
            self.housekeeper.join(timeout)
        if self.refusals is not None:
            with contextlib.suppress(GateError):
                self.refusals.flush(everything=True)
        self.store.close()

    def details_url(self, decision_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/decisions/{decision_id}"

    def evidence_changed(self, change: EvidenceChange) -> None:
        """Tell every listener; a failing listener is logged and audited, and the others still run."""
        for listener in self.evidence_listeners:
            self._guarded(listener, change, f"evidence change on repository {change.repository_id}")

    def queue_check_run(self, decision: Decision) -> None:
        """The post-decision hook for check runs: queue ``agent-gate / <action>`` for the decision's
        commit (the queue's workers post it, with retries), so the answer never waits on GitHub."""
        if self.checks is None or not self.checks.wants(decision):
            return
        body = decision.model_dump_json().encode()
        status = self.store.enqueue_job(
            f"check:{decision.decision_id}", CHECK_RUN_JOB, decision.decision_id, body, now=int(self.clock())
        )
        if status == QUEUED:
            self.jobs_waiting.set()

    def after_decision(self, decision: Decision) -> None:
        """Run the post-decision hooks (check runs...); a failing hook never changes the decision."""
        for hook in self.hooks:
            self._guarded(hook, decision, f"decision {decision.decision_id}")

    def _guarded(self, func: Callable[[Any], None], arg: Any, what: str) -> None:
        name = getattr(func, "__qualname__", func.__class__.__name__)
        try:
            func(arg)
        except Exception as exc:  # noqa: BLE001  # side effects must never change or break the decision
            log.warning("%s failed for %s: %s", name, what, exc.__class__.__name__)
            try:
                self.store.append_audit(
                    "side-effect-failed", {"what": what, "hook": name, "error": exc.__class__.__name__}
                )
            except Exception:  # noqa: BLE001  # the store logs its own failure; nothing more to do here
                log.error("could not audit the failure of %s for %s", name, what)
