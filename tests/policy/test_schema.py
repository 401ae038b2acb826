"""The policy models: matching semantics, the catalog, strictness, and the checks spanning fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.policy.schema import (
    BUILTIN_ACTIONS,
    COLLECT_PROBLEMS,
    ActionSpec,
    CrossProblem,
    PermissionClass,
    Policy,
    Repository,
    RepositoryPattern,
    Rule,
    cross_problems,
    describe_matchers,
    matcher_matches,
)
from app.policy.schema import Pattern as P

OWNER = {"login": "acme", "id": 1}


def make_policy(**fields: object) -> Policy:
    return Policy.model_validate({"version": 1, "owner": OWNER, **fields})


def make_rule(**fields: object) -> Rule:
    return Rule.model_validate({"name": "r", "actions": ["deploy"], "repositories": "*", **fields})


def test_permission_classes_are_ordered() -> None:
    ranks = [c.rank for c in (PermissionClass.READ, PermissionClass.PROPOSE, PermissionClass.EXECUTE)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 3


@pytest.mark.parametrize(
    ("matcher", "value", "matches"),
    [
        # exact values match only themselves
        ("refs/heads/main", "refs/heads/main", True),
        ("refs/heads/main", "refs/heads/main-old", False),
        ("refs/heads/main", "refs/heads/mai", False),
        ("refs/heads/main", "REFS/HEADS/MAIN", False),
        # patterns match the whole value: never a substring, never a prefix
        (P(pattern=r"refs/tags/v[0-9]+"), "refs/tags/v12", True),
        (P(pattern=r"refs/tags/v[0-9]+"), "refs/tags/v1-evil", False),
        (P(pattern=r"refs/tags/v[0-9]+"), "x/refs/tags/v1", False),
        (P(pattern=r"main|dev"), "main", True),
        (P(pattern=r"main|dev"), "mainline", False),
        (P(pattern=r"main|dev"), "xdev", False),
        (P(pattern=r"^refs/heads/main$"), "refs/heads/main", True),
        # an absent claim matches nothing, not even a catch-all pattern
        ("refs/heads/main", None, False),
        (P(pattern=".*"), None, False),
    ],
    ids=[
        "exact", "exact-not-prefix", "exact-not-substring", "exact-is-case-sensitive",
        "pattern", "pattern-not-prefix", "pattern-not-suffix", "alternation-first", "alternation-not-prefix",
        "alternation-not-suffix", "anchors-allowed", "absent-claim-exact", "absent-claim-pattern",
    ],
)  # fmt: skip
def test_matching_is_exact_or_fully_anchored(matcher: str | P, value: str | None, matches: bool) -> None:
    assert matcher_matches(matcher, value) is matches


def test_matchers_are_described_for_denial_reasons() -> None:
    assert describe_matchers(["refs/heads/main"]) == "refs/heads/main"
    assert describe_matchers(["a", P(pattern="b+")]) == "one of a, /b+/"


def test_repository_patterns_match_the_whole_name() -> None:
    pattern = RepositoryPattern(name_pattern=r"acme/api-.*")
    assert pattern.matches("acme/api-gateway")
    assert not pattern.matches("evil/acme/api-gateway") and not pattern.matches("acme/api")


def test_a_rule_list_distinguishes_pinned_repositories_from_patterns() -> None:
    rule = make_rule(repositories=[{"id": 2, "name": "acme/api"}, {"name_pattern": "acme/svc-.*"}])
    assert isinstance(rule.repositories, list)
    assert [type(r) for r in rule.repositories] == [Repository, RepositoryPattern]
    assert make_rule().repositories == "*"


def test_omitted_conditions_are_none_and_approvals_default_to_none() -> None:
    rule = make_rule()
    assert (rule.refs, rule.environments, rule.events, rule.workflows, rule.runner_environments) == (
        None,
    ) * 5
    assert rule.required_approvals() == 0 and rule.allow_agents and rule.allow_bots
    assert make_rule(approvals={}).required_approvals() == 1, "approvals: {} means one approval"
    assert make_rule(approvals={"count": 3}).required_approvals() == 3
    assert make_rule(approvals={}).approvals.sources == ["review", "environment"]  # type: ignore[union-attr]


def test_the_builtin_catalog() -> None:
    classes = {name: spec.permission.value for name, spec in BUILTIN_ACTIONS.items()}
    assert classes == {
        "read": "read", "read-contents": "read",
        "comment": "propose", "open-pull-request": "propose", "push-branch": "propose", "preview-deploy": "propose",
        "deploy": "execute", "merge": "execute", "release": "execute", "publish": "execute",
        "read-secrets": "execute", "approve": "execute",
    }  # fmt: skip
    assert [n for n, spec in BUILTIN_ACTIONS.items() if spec.approval] == ["approve"]


def test_a_policy_adds_actions_and_raises_classes_on_top_of_the_builtin_catalog() -> None:
    policy = make_policy(actions={"rotate": {"permission": "execute"}, "comment": {"permission": "execute"}})
    catalog = policy.catalog()
    assert catalog["rotate"].permission is PermissionClass.EXECUTE
    assert catalog["comment"].permission is PermissionClass.EXECUTE
    assert catalog["deploy"] == BUILTIN_ACTIONS["deploy"]


def test_an_approval_action_is_an_execute_action() -> None:
    with pytest.raises(ValidationError, match="expected permission 'execute' for an approval action"):
        ActionSpec.model_validate({"permission": "propose", "approval": True})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"actions": {"deploy": {"permission": "propose"}}},
            "actions.deploy.permission: got propose, expected execute or higher",
        ),
        (
            {"actions": {"approve": {"permission": "execute"}}},
            "actions.approve.approval: got approval: false",
        ),
        (
            {"rules": [{"name": "r", "actions": ["nope"], "repositories": "*"}]},
            "rules[0].actions[0]: unknown action 'nope'",
        ),
        (
            {"rules": [{"name": "r", "actions": ["read", "read"], "repositories": "*"}]},
            "rules[0].actions[1]: action 'read' is listed twice",
        ),
        (
            {"rules": [{"name": "r", "actions": ["read"], "repositories": "*"}] * 2},
            "rules[1].name: got 'r', expected a unique rule name: rules[0] already has it",
        ),
    ],
    ids=["lowering-a-class", "unmarking-approval", "unknown-action", "action-twice", "duplicate-rule-name"],
)
def test_checks_spanning_fields_hold_without_the_loader_too(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(
        ValidationError, match=problem.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        make_policy(**fields)


def test_the_loader_collects_cross_field_problems_with_their_places() -> None:
    found: list[CrossProblem] = []
    rules = [
        {"name": "r", "actions": ["read"], "repositories": "*"},
        {"name": "r", "actions": ["read", "nope"], "repositories": "*"},
    ]
    policy = Policy.model_validate(
        {"version": 1, "owner": OWNER, "rules": rules}, context={COLLECT_PROBLEMS: found}
    )
    assert [(p.loc, p.refers_to) for p in found] == [
        (("rules", 1, "name"), ("rules", 0, "name")),
        (("rules", 1, "actions", 1), None),
    ]
    assert cross_problems(policy) == found
    assert cross_problems(make_policy(rules=rules[:1])) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"owner": {"login": True, "id": 1}},
        {"owner": {"login": "acme", "id": "1"}},
        {"owner": {"login": "acme", "id": True}},
        {"rules": [{"name": 1, "actions": ["read"], "repositories": "*"}]},
        {"rules": [{"name": "r", "actions": ["read"], "repositories": "*", "events": [True]}]},
        {"rules": [{"name": "r", "actions": ["read"], "repositories": "*", "allow_agents": "yes"}]},
        {"rules": [{"name": "r", "actions": ["read"], "repositories": "*", "approvals": {"count": 1.0}}]},
        {"version": True},
    ],
    ids=[
        "bool-login",
        "text-id",
        "bool-id",
        "number-name",
        "bool-event",
        "text-bool",
        "float-count",
        "bool-version",
    ],
)
def test_nothing_is_coerced(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make_policy(**fields)


def test_patterns_are_compiled_once_and_refused_when_invalid() -> None:
    with pytest.raises(ValidationError, match="expected a valid regular expression"):
        P(pattern="(")
    with pytest.raises(ValidationError, match="expected a valid regular expression"):
        RepositoryPattern(name_pattern="[")


def test_every_name_pattern_has_its_own_words_for_errors() -> None:
    from app.policy import schema

    patterns = [
        schema.SLUG, schema.ACTION_NAME, schema.LOGIN, schema.ACCOUNT_LOGIN, schema.REPOSITORY_NAME,
        schema.TEAM_SLUG, schema.EVENT_NAME, schema.GIT_SHA, schema.EMAIL, schema.BRANCH_PREFIX,
        schema.GITHUB_PERMISSION_NAME, schema.AUDIENCE, schema.OWNER_REF, schema.PROPERTY_NAME,
    ]  # fmt: skip
    assert len(set(patterns)) == len(patterns), "two names share a regex: their errors would be worded alike"
    assert set(patterns) == set(schema.PATTERN_MEANINGS)
