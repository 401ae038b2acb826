"""THE road: every decision the gate makes, whoever asks, is made here.

question -> policies -> evidence needs -> (a spent token refused before any GitHub call) -> gather
-> the pure engine -> the overlays (app/gate/overlays.py) -> details URL -> one transaction (the
audit record, the decision page, the token's replay record, what the origin keeps: a held
deployment, a queued check run) -> side effects (break-glass use, hooks, housekeeping) -> the
credentials, when the origin can hand them over.

:meth:`Pipeline.deliberate` makes the decision and writes nothing; :meth:`Pipeline.record` writes it;
:meth:`Pipeline.decide` does both. A simulation (``agent-gate explain``) is a pipeline without a
:class:`Recording`: it decides exactly as the gate would, and records and mints nothing.

Errors are raised to the origin, which knows how to answer them (503 and ``decision-not-made``
for the API, a retried job for events); a decision that could not be recorded was not made.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.credentials.grants import GrantService, GrantSubject, IssuedGrant
from app.decide.decision import Decision, new_decision_id
from app.decide.engine import decide, evidence_needs
from app.errors import AlreadyUsed, GateError
from app.evidence.gather import EvidenceSource
from app.evidence.model import Evidence
from app.gate.housekeeping import Housekeeping
from app.gate.overlays import Context, overlay
from app.gate.question import Draft, Keeps, Outcome, Question
from app.gate.side_effects import SideEffects
from app.governance.breakglass import BreakGlass
from app.governance.freeze import Freezes, Frozen
from app.policy.loader import PolicySet
from app.publish.checks import CheckRunPublisher
from app.store.base import Kept, QueuedJob, Store

DecisionHook = Callable[[Decision], None]
CHECK_RUN_JOB = "check-run"  # the job kind that posts a decision's check run
DEFAULT_GRANT_TTL = 600

log = logging.getLogger("agent_gate.decisions")


@dataclass(frozen=True)
class Recording:
    """What a pipeline that records needs: the store, and what runs once a decision is recorded."""

    store: Store
    side_effects: SideEffects
    grants: GrantService
    housekeeping: Housekeeping
    hooks: list[DecisionHook]  # after every recorded decision; a failing hook is audited
    checks: CheckRunPublisher | None  # which decisions' check runs to queue (None: no GitHub App)
    jobs_waiting: threading.Event  # set when a job is queued, so the queue's threads run it at once


@dataclass(frozen=True)
class Pipeline:
    policies: Callable[[], PolicySet]
    evidence: EvidenceSource
    clock: Callable[[], float]
    recording: Recording | None  # None: a simulation, which records and mints nothing
    break_glass: BreakGlass | None = None  # None: no override applies (a simulation)
    freezes: Freezes | None = None  # None: no freeze applies (a simulation)
    public_url: str | None = None  # for the decision page's link
    simulated_id: str = "simulated"  # the decision id of a simulation (it is never recorded)

    def decide(self, question: Question) -> Outcome:
        """Decide ``question`` and record it (module docstring)."""
        return self.record(self.deliberate(question))

    def deliberate(self, question: Question) -> Draft:
        """The decision, overlaid and linked, with nothing written. Raises ``AlreadyUsed`` for a token
        already spent (before any GitHub call), ``GitHubError`` when GitHub cannot give the evidence."""
        identity, request = question.identity, question.request
        policies = self.policies()
        needs = evidence_needs(policies, identity, request)
        if needs is not None and self._already_spent(question):
            # A captured token must not buy calls on the App's rate limit; decisions that need no
            # evidence meet the refusal in their transaction, as a concurrent second use always does.
            raise AlreadyUsed()
        evidence = Evidence.none() if needs is None else self.evidence.gather(identity, request, needs)
        decision = decide(
            identity,
            request,
            policies,
            evidence,
            decision_id=new_decision_id() if self.recording is not None else self.simulated_id,
            now=datetime.fromtimestamp(self.clock(), UTC),
        )
        decision = overlay(decision, Context(question, policies, self.break_glass, self.freezes))
        if self.public_url is not None and self.recording is not None:
            url = f"{self.public_url.rstrip('/')}/decisions/{decision.decision_id}"
            decision = decision.model_copy(update={"details_url": url})
        return Draft(question, decision, evidence, policies)

    def _already_spent(self, question: Question) -> bool:
        spent = question.spends
        if spent is None or self.recording is None:
            return False
        return self.recording.store.jti_used(spent.issuer, spent.jti)

    def record(self, draft: Draft) -> Outcome:
        """Write the decision in one transaction, then run its side effects and mint its credentials.

        Raises ``AlreadyUsed`` (nothing written) when its token was spent meanwhile, ``Unavailable``
        when the store cannot write it (the decision was not made), and the grant service's error
        when credentials the decision needs could not be issued (the decision stands, audited)."""
        decision, question = draft.decision, draft.question
        record = decision.model_dump(mode="json")  # once: the page, the audit record and the answer
        if self.recording is None:
            return Outcome(decision, record, None)
        r = self.recording
        keeps = question.keeps(decision, draft.evidence) if question.keeps is not None else Keeps()
        jobs: tuple[QueuedJob, ...] = ()
        if question.queue_check_run and r.checks is not None and r.checks.wants(decision):
            body = json.dumps(record, separators=(",", ":")).encode()
            jobs = (QueuedJob(f"check:{decision.decision_id}", CHECK_RUN_JOB, decision.decision_id, body),)
        kept = Kept(jobs, keeps.deployment) if jobs or keeps.deployment is not None else None
        audit = r.store.record_decision(
            decision.decision_id,
            record,
            question.audit_kind,
            {**record, **question.audit_extra, **keeps.audit},
            replay=question.spends,
            keep=kept,
        )
        if jobs:
            r.jobs_waiting.set()
        _log_decision(decision, question)
        what = f"decision {decision.decision_id}"
        if decision.break_glass is not None and self.break_glass is not None:
            r.side_effects.run(self.break_glass.record_use, decision, what)
        for hook in r.hooks:
            r.side_effects.run(hook, decision, what)
        r.housekeeping.due()
        grant = self._mint(draft, r.grants) if question.mint else None
        return Outcome(decision, record, audit, grant, keeps)

    def _mint(self, draft: Draft, grants: GrantService) -> IssuedGrant | None:
        """The credentials of an allowed decision: a grant when asked or required by its rule, with the
        rule's GitHub token. Never for an allow in audit mode or by break-glass.

        They go in the answer only: the audit log and the decision page record the grant's id and a
        hash of the GitHub token, never the credentials."""
        decision, question = draft.decision, draft.question
        if not decision.allowed or decision.would_deny or decision.break_glass:
            return None
        identity = question.identity
        loaded = draft.policies.for_owner(identity.repository_owner_id)
        rule = next((r for r in loaded.policy.rules if r.name == decision.rule), None) if loaded else None
        if rule is None or not (question.grant or (rule.grant and rule.grant.required)):
            return None
        spec = rule.grant
        audience = (spec.audience if spec and spec.audience else None) or (
            f"{decision.action}:{decision.subject.environment or identity.repository}"
        )
        try:
            issued = grants.issue(
                GrantSubject.of(decision, identity),
                audience=audience,
                ttl=spec.ttl if spec else DEFAULT_GRANT_TTL,
                github_permissions=dict(rule.github_permissions) if rule.github_permissions else None,
                delegate_audiences=spec.delegate_audiences if spec else (),
            )
            # A freeze started after this decision was deliberated, and whose sweep ran before the grant
            # was saved, would miss it: looked for once more, after the grant is saved, it cannot.
            frozen = self.freezes.covering(decision.subject) if self.freezes is not None else None
            if frozen is not None:
                grants.revoke(issued.jti, f"freeze {frozen['id']}")
                raise Frozen(f"agents are frozen by freeze {frozen['id']}: no grant is issued to them")
            return issued
        except GateError as exc:
            # The decision stands in the audit log; the credentials were not issued, and the caller is
            # told so (503 or the error's own status) rather than handed an allow without them.
            assert self.recording is not None
            self.recording.store.append_audit(
                "grant-failed", {"decision_id": decision.decision_id, "error": exc.code}
            )
            raise


def _log_decision(decision: Decision, question: Question) -> None:
    """One log line per recorded decision, whatever asked, its facts as JSON keys (app/observe/logs.py)
    for a log pipeline to filter on: never a token, only ids."""
    verdict = ("would-deny" if decision.would_deny else "allowed") if decision.allowed else "denied"
    log.info(
        "decision %s %s: %s",
        decision.decision_id,
        verdict,
        decision.action,
        extra={
            "decision_id": decision.decision_id,
            "verdict": verdict,
            "action": decision.action,
            "origin": question.identity.origin.value,
            "audit_kind": question.audit_kind,
            "repository_id": decision.subject.repository_id,
            "actor_id": decision.subject.actor_id,
            "rule": decision.rule,
            "github_api_calls": decision.github_api_calls,
            "break_glass": decision.break_glass,
        },
    )
