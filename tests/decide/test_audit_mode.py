"""Audit mode: a deny under a rule or policy in ``mode: audit`` is answered as an allow marked
would_deny, with its reasons and remedy; the built-in invariants are never in audit mode."""

from __future__ import annotations

from typing import Any

import pytest

from app.decide.audit_mode import AUDIT_REASON
from app.decide.decision import Decision
from app.evidence.model import Evidence
from app.publish.checks import conclusion
from tests.builders import (
    BOB,
    OCTOCAT,
    agent_identity,
    commit,
    evidence,
    failed,
    identity,
    policy_set,
    pull_request,
    review,
    run,
)

AUDITED = policy_set(
    """
version: 1
owner: {login: octo-org, id: 1000}
mode: audit
rules:
  - name: deploy-production
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
    environments: [production]
    approvals: {count: 1}
  - name: release-enforced
    mode: enforce
    actions: [release]
    repositories: "*"
    refs: [refs/heads/main]
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
  - name: approve
    actions: [approve]
    repositories: "*"
    refs: [refs/heads/main]
"""
)

# An enforcing policy with one rule in audit mode, for repository 2000 only.
ONE_RULE_AUDITED = policy_set(
    """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: deploy-staging
    mode: audit
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
"""
)

OTHER_REPO: dict[str, Any] = {"repository": "octo-org/other", "repository_id": "3000"}
SELF_AUTHORED = pull_request(author=OCTOCAT, head_ref="fix", commits=[commit(author=OCTOCAT)])


def production(**claims: Any) -> dict[str, Any]:
    return {"environment": "production", **claims}


# Refusal cases first: denies that stay denies whatever the mode says.
STILL_DENIED = [
    pytest.param(AUDITED, agent_identity(**production()), "deploy", evidence(), {"environment": "production"},
                 id="agent-executes-without-approval"),
    pytest.param(AUDITED, agent_identity(ref="refs/heads/dev"), "approve", None, {}, id="agent-approves"),
    pytest.param(AUDITED, identity(ref="refs/heads/dev"), "approve", None, {}, id="approval-action"),
    pytest.param(AUDITED, identity(event_name="pull_request", **production()), "deploy", evidence(),
                 {"environment": "production"}, id="pull-request-event-executes"),
    pytest.param(AUDITED, identity(), "deploy", evidence(), {"environment": "production"},
                 id="environment-not-in-the-token"),
    pytest.param(AUDITED, identity(), "launch-missiles", None, {}, id="unknown-action"),
    pytest.param(AUDITED, identity(repository_owner="other", repository_owner_id="9"), "deploy", None, {},
                 id="no-governing-policy"),
    pytest.param(AUDITED, identity(ref="refs/heads/dev"), "release", None, {}, id="rule-says-enforce"),
    pytest.param(AUDITED, identity(), "merge", evidence(pr=SELF_AUTHORED, reviews=[review(OCTOCAT)]),
                 {"pull_request": 12}, id="self-approval"),
    pytest.param(ONE_RULE_AUDITED, identity(**OTHER_REPO), "deploy", None, {},
                 id="audited-rule-of-another-repository"),
]  # fmt: skip


@pytest.mark.parametrize(("policies", "who", "action", "ev", "request_kw"), STILL_DENIED)
def test_invariants_and_enforced_rules_are_never_in_audit_mode(
    policies: Any, who: Any, action: str, ev: Evidence | None, request_kw: dict[str, Any]
) -> None:
    decision = run(policies, who, action, ev, **request_kw)
    assert (decision.allowed, decision.would_deny) == (False, False), failed(decision)
    assert all(r.code != AUDIT_REASON for r in decision.reasons)


ANSWERED_AS_ALLOW = [
    pytest.param(AUDITED, identity(ref="refs/heads/dev", **production()), "deploy", evidence(),
                 {"environment": "production"}, "ref: ref: got refs/heads/dev", id="wrong-ref"),
    pytest.param(AUDITED, identity(**production()), "deploy", evidence(), {"environment": "production"},
                 "approvals: needs 1 independent human approval", id="missing-approval"),
    pytest.param(AUDITED, identity(), "publish", None, {}, "rule: no rule of the policy allows publish",
                 id="no-rule-at-all"),
    pytest.param(ONE_RULE_AUDITED, identity(ref="refs/heads/dev"), "deploy", None, {},
                 "ref: ref: got refs/heads/dev", id="audited-rule-of-this-repository"),
]  # fmt: skip


@pytest.mark.parametrize(("policies", "who", "action", "ev", "request_kw", "why"), ANSWERED_AS_ALLOW)
def test_a_deny_under_audit_mode_is_an_allow_marked_would_deny(
    policies: Any, who: Any, action: str, ev: Evidence | None, request_kw: dict[str, Any], why: str
) -> None:
    decision = run(policies, who, action, ev, **request_kw)
    assert (decision.allowed, decision.would_deny) == (True, True)
    assert any(f.startswith(why) for f in failed(decision)), failed(decision)
    assert decision.remedy, "the remedy says what enforcing would need"
    assert decision.reasons[-1].code == AUDIT_REASON and decision.reasons[-1].ok
    assert "audit mode" in decision.reasons[-1].message
    assert decision.summary.startswith("Would deny (audit mode): ")
    assert conclusion(decision) == "neutral"


def test_an_allow_under_audit_mode_is_a_plain_allow() -> None:
    decision = run(
        AUDITED,
        identity(**production()),
        "deploy",
        evidence(reviews=[review(BOB)]),
        environment="production",
    )
    assert (decision.allowed, decision.would_deny) == (True, False), failed(decision)
    assert all(r.code != AUDIT_REASON for r in decision.reasons)


def test_would_deny_is_part_of_the_api_shape() -> None:
    assert Decision.model_json_schema()["properties"]["would_deny"]["default"] is False
