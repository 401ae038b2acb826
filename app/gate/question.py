"""What an origin asks the decision pipeline, and what it gets back.

Every way of asking the gate (``POST /v1/decisions``, a pull request's merge check, a held
deployment, ``agent-gate explain``) translates its input into a :class:`Question`; the pipeline
(app/gate/pipeline.py) answers with a :class:`Draft` (decided, not yet recorded) and then an
:class:`Outcome` (recorded in one transaction). The origin translates the outcome into its answer:
an HTTP body, a check run, a protection-rule callback, a printed simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.credentials.grants import IssuedGrant
from app.decide.decision import Decision, DecisionRequest
from app.decide.merge_group import Finding
from app.evidence.model import Evidence
from app.policy.loader import PolicySet
from app.store.base import AuditRecord, Replay
from app.tokens.identity import WorkloadIdentity


@dataclass(frozen=True)
class Keeps:
    """What an origin records with its decision, known only once it is decided: more fields of the
    audit record (a held deployment's verdict) and the held deployment itself."""

    audit: Mapping[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] | None = None


# Called with the decision (after the overlays) and the evidence it was made on.
KeepsFor = Callable[[Decision, Evidence], Keeps]


@dataclass(frozen=True)
class Question:
    """Who asks (the identity, with its origin), what for (the request), and how the origin wants
    its decision recorded and answered."""

    identity: WorkloadIdentity
    request: DecisionRequest
    audit_kind: str  # the kind of the decision's audit record: "decision", "merge-check"...
    audit_extra: Mapping[str, Any] = field(default_factory=dict)  # the delivery, the token's hash...
    spends: Replay | None = None  # the token this decision spends, refused if already spent
    keeps: KeepsFor | None = None
    queue_check_run: bool = False  # queue ``agent-gate / <action>`` on the commit, with the decision
    mint: bool = False  # the origin can hand credentials over (only the API can)
    grant: bool = False  # ... and the caller asked for a grant
    merge_group: MergeGroupJudgment | None = None  # a pull request judged for its merge group's commit


@dataclass(frozen=True)
class MergeGroupJudgment:
    """What a merge group adds to the judgment of one of its pull requests: the group's commit and
    what in it is not exactly the approved changes (app/decide/merge_group.py; empty: nothing)."""

    group_sha: str
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Draft:
    """A decision made and overlaid, not recorded yet: nothing of it has been written."""

    question: Question
    decision: Decision
    evidence: Evidence
    policies: PolicySet


@dataclass(frozen=True)
class Outcome:
    """A decision as recorded: its JSON record (the page, the audit record and the API's body share
    it), the audit record written (None in a simulation), the credentials minted with it and what the
    origin kept with it."""

    decision: Decision
    record: dict[str, Any]
    audit: AuditRecord | None
    grant: IssuedGrant | None = None
    keeps: Keeps = field(default_factory=Keeps)  # what the origin recorded with it
