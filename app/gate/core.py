"""The gate's collaborators, built once per process by the app factory and handed to the Flask app.

Outside services (token verification, policies, the store, GitHub) sit behind small interfaces so
tests pass fakes that record what they were asked. Every decision goes through :attr:`Gate.pipeline`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.credentials.grants import GrantService
from app.errors import GateError
from app.evidence.model import EvidenceChange
from app.gate.clock_watch import ClockWatch
from app.gate.housekeeping import Housekeeping
from app.gate.pipeline import DecisionHook, Pipeline, Recording
from app.github.protocol import GitHubAPI
from app.governance.breakglass import BreakGlass
from app.governance.freeze import Freezes
from app.policy.registry import PolicyRegistry
from app.publish.checks import CheckRunPublisher
from app.settings import Settings
from app.store.base import Store
from app.store.refusals import RefusalAudit
from app.tokens.verify import TokenVerifier

EvidenceListener = Callable[[EvidenceChange], None]


@dataclass
class Gate:
    settings: Settings
    verifier: TokenVerifier
    policies: PolicyRegistry
    clock: Callable[[], float]
    pipeline: Pipeline  # the one road of every decision (app/gate/pipeline.py)
    recording: Recording  # the pipeline's store and what runs once a decision is recorded
    refusals: RefusalAudit  # audits refused tokens with a per-source bound (app/store/refusals.py)
    break_glass: BreakGlass  # emergency overrides: invoked and confirmed here, applied by the pipeline
    freezes: Freezes  # the kill-switch: started and lifted here, applied by the pipeline
    # The GitHub App: None only when the gate runs without one.
    github: GitHubAPI | None
    # Told when the webhook reports that evidence behind earlier decisions changed.
    evidence_listeners: list[EvidenceListener] = field(default_factory=list)
    # How far this replica's clock is from the database's (/readyz, housekeeping).
    clock_watch: ClockWatch | None = None

    @property
    def store(self) -> Store:
        return self.recording.store

    @property
    def grants(self) -> GrantService:
        """Issues, verifies and revokes just-in-time grants."""
        return self.recording.grants

    @property
    def checks(self) -> CheckRunPublisher | None:
        """Posts check runs; None without a GitHub App."""
        return self.recording.checks

    @property
    def hooks(self) -> list[DecisionHook]:
        """Run after each recorded decision (metrics...); a failing hook is audited."""
        return self.recording.hooks

    @property
    def housekeeping(self) -> Housekeeping:
        return self.recording.housekeeping

    @property
    def jobs_waiting(self) -> threading.Event:
        """Set when a job is queued, so this process's queue threads run it at once."""
        return self.recording.jobs_waiting

    def close(self, timeout: float = 10.0) -> None:
        """Shut down in order: let a running housekeeping purge finish, write the refusals still being
        counted, then close the store."""
        self.housekeeping.join(timeout)
        with contextlib.suppress(GateError):
            self.refusals.flush(everything=True)
        self.store.close()

    def evidence_changed(self, change: EvidenceChange) -> None:
        """Tell every listener; a failing listener is logged and audited, and the others still run."""
        for listener in self.evidence_listeners:
            self.recording.side_effects.run(
                listener, change, f"evidence change on repository {change.repository_id}"
            )
