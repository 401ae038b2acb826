"""policy check's governance lines: rules nobody owns are warned about; rules in audit mode are named."""

from __future__ import annotations

import pytest

from app.policy.ownership import audit_mode_notes, ownership_warnings, rule_owners
from tests.policy.builders import load, rule

OWNED = [
    pytest.param("owners: ['@acme/api-team']\n" + rule("actions: [read]\nrepositories: '*'"), ["@acme/api-team"],
                 id="policy-default-owners"),
    pytest.param(rule("actions: [read]\nrepositories: '*'\nowners: ['@octocat']"), ["@octocat"],
                 id="rule-owners"),
    pytest.param(
        rule("actions: [read]\nrepositories: [{id: 2, name: acme/a, owners: ['@x']}, {id: 3, name: acme/b, owners: ['@y']}]"),
        ["@x", "@y"],
        id="every-pinned-repository-owned",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "owners"), OWNED)
def test_a_rule_is_owned_by_its_own_owners_its_repositories_or_the_policy(
    body: str, owners: list[str]
) -> None:
    loaded = load(body)
    assert rule_owners(loaded.policy, loaded.policy.rules[0]) == owners
    assert ownership_warnings(loaded) == []


UNOWNED = [
    pytest.param(rule("actions: [read]\nrepositories: '*'"), id="nothing-named"),
    pytest.param(
        rule("actions: [read]\nrepositories: [{id: 2, name: acme/a, owners: ['@x']}, {id: 3, name: acme/b}]"),
        id="one-repository-unowned",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: [{name_pattern: 'acme/.*'}]"), id="pattern-has-no-owner"
    ),
]


@pytest.mark.parametrize("body", UNOWNED)
def test_an_unowned_rule_is_warned_about_at_its_line(body: str) -> None:
    [warning] = ownership_warnings(load(body))
    assert warning.severity == "warning"
    assert warning.render().startswith("p.yml:4: rules[0]: rule 'r' has no owner: write owners:")


def test_rules_in_audit_mode_are_named_with_where_the_mode_comes_from() -> None:
    body = "mode: audit\nrules:\n" + "".join(
        f"  - {{name: {name}, actions: [read], repositories: '*'{extra}}}\n"
        for name, extra in (("inherits", ""), ("enforced", ", mode: enforce"), ("own", ", mode: audit"))
    )
    notes = audit_mode_notes(load(body))
    assert notes == [
        "audit: p.yml:5: rule 'inherits' is in audit mode (the policy's mode): its denies are answered as "
        "allows marked would_deny; see `agent-gate audit report`, then write mode: enforce",
        "audit: p.yml:7: rule 'own' is in audit mode (its own mode): its denies are answered as "
        "allows marked would_deny; see `agent-gate audit report`, then write mode: enforce",
    ]


def test_an_enforcing_policy_has_no_audit_lines() -> None:
    assert audit_mode_notes(load(rule("actions: [read]\nrepositories: '*'"))) == []
