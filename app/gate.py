"""The gate's collaborators, built once per process and handed to the Flask app.

Outside services (token verification, policies, the store, GitHub evidence) sit behind small
interfaces so tests pass fakes that record what they were asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from app.decision import Decision
from app.evidence.gather import EvidenceSource
from app.oidc import TokenVerifier
from app.policy.registry import PolicyRegistry
from app.settings import Settings
from app.store.base import Store

log = logging.getLogger("agent_gate")

DecisionHook = Callable[[Decision], None]


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

    def details_url(self, decision_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/decisions/{decision_id}"

    def after_decision(self, decision: Decision) -> None:
        for hook in self.hooks:
            try:
                hook(decision)
            except Exception as exc:  # a side effect must never change or break the decision
                log.warning(
                    "post-decision hook %s failed for %s: %s",
                    getattr(hook, "__name__", hook),
                    decision.decision_id,
                    exc.__class__.__name__,
                )
                try:
                    self.store.append_audit(
                        "hook-failed",
                        {
                            "decision_id": decision.decision_id,
                            "hook": getattr(hook, "__name__", str(hook)),
                            "error": exc.__class__.__name__,
                        },
                    )
                except Exception:  # the audit failure is already logged by the store
                    log.error("could not audit the failure of hook for %s", decision.decision_id)
