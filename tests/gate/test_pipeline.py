"""The decision pipeline: one road for every way the gate is asked.

Each origin (a token's request, a pull request check, a held deployment, a simulation) hands it a
question; it decides with the pure engine, applies the overlays in their one order, and records the
decision with everything its origin keeps in one transaction, or records nothing at all.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from app.decide.decision import DecisionRequest
from app.decide.merge_group import Finding
from app.errors import AlreadyUsed, Unavailable
from app.events.simulate import simulation
from app.evidence.offline import FixedEvidence
from app.gate.core import Gate
from app.gate.overlays import OVERLAYS
from app.gate.question import Keeps, MergeGroupJudgment, Question
from app.gate.workloads import Repo, merge_group_identity, pull_request_check_identity
from app.governance.freeze import Frozen
from app.store.base import Replay
from tests.builders import HEAD, agent_identity, identity


def _gate(app: Flask) -> Gate:
    gate: Gate = app.extensions["agent_gate"]
    return gate


REPO = Repo("octo-org/octo-repo", 2000, "octo-org", 1000)


def _pr_check(author_id: int = 1001, login: str = "alice") -> Any:
    return pull_request_check_identity(
        REPO, author=login, author_id=author_id, number=12, head_sha=HEAD, head_ref="feature",
        base_ref="main", delivery="delivery-1", now=0,
    )  # fmt: skip


MERGE = DecisionRequest(action="merge", pull_request=12, sha=HEAD)
HELD = {"repository_id": 2000, "run_id": 9, "environment": "production", "owner_id": 1000}


def test_the_overlays_are_every_way_a_decision_changes_after_the_engine_in_order():
    assert [o.name for o in OVERLAYS] == [
        "audit-mode",
        "agent-free-pass",
        "merge-group",
        "break-glass",
        "frozen",
    ]


@pytest.mark.parametrize(
    ("who", "allowed", "codes"),
    [
        pytest.param(_pr_check(), True, ["no-agent"], id="a-pull-request-check-without-agent-signals-passes"),
        pytest.param(
            identity(event_name="workflow_dispatch"), False, None, id="a-token-is-never-waved-through"
        ),
    ],
)
def test_only_a_pull_request_check_gets_the_agent_free_pass(app, who, allowed, codes):
    outcome = _gate(app).pipeline.decide(Question(who, MERGE, audit_kind="merge-check"))
    assert outcome.decision.allowed is allowed
    if codes is not None:
        assert [r.code for r in outcome.decision.reasons] == codes


GROUP = "2" * 40
UNAPPROVED_FILE = Finding(
    "unapproved-file", "ci.yml is modified in the group's commit, but no pull request changes it"
)


OVERLAP = Finding("overlap", "README.md is changed by #12 and #13: their merged result was never reviewed")


@pytest.mark.parametrize(
    ("who", "finding", "allowed", "group_reasons"),
    [
        pytest.param(
            merge_group_identity(_pr_check(), number=12, group_sha=GROUP), OVERLAP, True,
            [(True, "the merge group's commit 2222222 introduces exactly the approved changes")],
            id="an-agent-free-pull-request-may-share-a-file-with-another",
        ),
        pytest.param(
            merge_group_identity(_pr_check(), number=12, group_sha=GROUP), UNAPPROVED_FILE, False,
            [(False, UNAPPROVED_FILE.message)], id="an-agent-free-pull-request-fails-a-change-nobody-brings",
        ),
        pytest.param(
            merge_group_identity(_pr_check(198982749, "Copilot"), number=12, group_sha=GROUP), OVERLAP, False,
            [(False, OVERLAP.message)], id="an-agents-pull-request-may-not-share-a-file",
        ),
        pytest.param(
            _pr_check(198982749, "Copilot"), UNAPPROVED_FILE, False, [],
            id="the-findings-apply-to-a-merge-group-origin-only",
        ),
    ],
)  # fmt: skip
def test_a_merge_groups_pull_request_carries_the_groups_comparison(app, who, finding, allowed, group_reasons):
    question = Question(
        who, MERGE, audit_kind="merge-group", merge_group=MergeGroupJudgment(GROUP, (finding,))
    )
    decision = _gate(app).pipeline.decide(question).decision
    assert decision.allowed is allowed
    assert [(r.ok, r.message) for r in decision.reasons if r.code == "merge-group"] == group_reasons


def test_an_agents_pull_request_check_is_decided_by_the_policy(app):
    agent = _pr_check(198982749, "Copilot")
    outcome = _gate(app).pipeline.decide(Question(agent, MERGE, audit_kind="merge-check"))
    assert outcome.decision.subject.agent and not outcome.decision.allowed


def test_a_decision_is_recorded_with_its_page_and_what_its_origin_keeps(app):
    gate = _gate(app)

    def keeps(decision, evidence):
        return Keeps(
            audit={"verdict": "wait"},
            deployment={**HELD, "decision_id": decision.decision_id, "state": "pending"},
        )

    question = Question(
        identity(environment="production"),
        DecisionRequest(action="deploy", environment="production"),
        audit_kind="deployment-protection",
        audit_extra={"delivery": "d-1"},
        keeps=keeps,
    )
    outcome = gate.pipeline.decide(question)
    decision_id = outcome.decision.decision_id
    assert outcome.audit is not None and outcome.audit.kind == "deployment-protection"
    assert outcome.audit.payload["verdict"] == "wait" and outcome.audit.payload["delivery"] == "d-1"
    assert gate.store.get_decision(decision_id) == outcome.record
    [held] = gate.store.find_deployment_gates(2000, run_id=9)
    assert held["decision_id"] == decision_id
    assert outcome.decision.details_url == f"{gate.settings.public_url.rstrip('/')}/decisions/{decision_id}"


def test_a_decision_that_cannot_be_recorded_leaves_nothing(app, monkeypatch):
    gate = _gate(app)

    def broken(*args, **kwargs):
        raise Unavailable("the audit log cannot be written", code="audit-unavailable")

    monkeypatch.setattr(gate.store, "record_decision", broken)
    question = Question(
        identity(environment="production"),
        DecisionRequest(action="deploy", environment="production"),
        audit_kind="deployment-protection",
        keeps=lambda d, e: Keeps(deployment={**HELD, "state": "pending"}),
        queue_check_run=True,
    )
    with pytest.raises(Unavailable):
        gate.pipeline.decide(question)
    assert gate.store.find_deployment_gates(2000, run_id=9) == []
    assert list(gate.store.iter_audit()) == []


def test_a_token_spent_before_its_decision_buys_no_evidence(app, evidence_source):
    gate = _gate(app)
    spent = Replay("https://token.actions.githubusercontent.com", "jti-1", 2**40)
    assert gate.store.claim_jti(spent.issuer, spent.jti, spent.expires_at)
    question = Question(
        identity(environment="production"),
        DecisionRequest(action="deploy", environment="production"),
        audit_kind="decision",
        spends=spent,
    )
    with pytest.raises(AlreadyUsed):
        gate.pipeline.deliberate(question)
    assert evidence_source.calls == []


def test_a_simulation_decides_as_the_gate_does_and_records_nothing(app, evidence_source):
    gate = _gate(app)
    question = Question(agent_identity(), DecisionRequest(action="read"), audit_kind="decision")
    simulated = simulation(gate.policies.current(), FixedEvidence(evidence_source.evidence), gate.clock)
    sim = simulated.decide(question)
    real = gate.pipeline.decide(question)
    assert (sim.decision.allowed, sim.decision.reasons) == (real.decision.allowed, real.decision.reasons)
    assert (sim.audit, sim.decision.decision_id, sim.decision.details_url) == (None, "simulated", None)
    assert sim.grant is None
    assert [r.kind for r in gate.store.iter_audit()] == ["decision"], "only the real one is on record"


def test_a_freeze_started_while_a_grant_is_minted_revokes_it_before_it_is_handed_over(app):
    # Deliberated before the freeze, minted after its sweep: the grant is looked for once it is saved.
    gate = _gate(app)
    question = Question(
        agent_identity(),
        DecisionRequest(action="read", grant=True),
        audit_kind="decision",
        mint=True,
        grant=True,
    )
    draft = gate.pipeline.deliberate(question)
    assert draft.decision.allowed
    gate.store.save_freeze(
        {"id": "fr_race", "scope": "organisation", "organisation": "octo-org", "owner_id": 1000,
         "state": "active", "created_at": 0, "invoker": "octocat", "justification": "INC-1: stop"}
    )  # fmt: skip
    with pytest.raises(Frozen, match="agents are frozen by freeze fr_race: no grant is issued to them"):
        gate.pipeline.record(draft)
    [grant] = [r.payload for r in gate.store.iter_audit() if r.kind == "grant-revoked"]
    assert grant["reason"] == "freeze fr_race"
    assert [r.payload["error"] for r in gate.store.iter_audit() if r.kind == "grant-failed"] == ["frozen"]
