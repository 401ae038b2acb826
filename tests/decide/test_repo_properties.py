"""Rules on repository custom properties: the token's ``repo_property_<name>`` claims, set by the
org (GitHub: "prefixed with repo_property_"). A property the token does not carry matches nothing,
and a workload without a token (a pull request's merge check, a held deployment) never matches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.decide.rules import check_rule
from app.errors import TokenError
from app.gate.workloads import Repo, pull_request_check_identity
from app.policy.schema import Rule
from tests.builders import failed, identity, policy_set, run, whole
from tests.policy.builders import problems

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: deploy-production-repositories
    actions: [read]
    repositories: "*"
    repo_properties: {tier: production, team: {pattern: "payments|ledger"}}
"""
POLICIES = policy_set(POLICY)


@pytest.mark.parametrize(
    ("claims", "allowed", "why"),
    [
        pytest.param(
            {"repo_property_tier": "production", "repo_property_team": "ledger"}, True, None, id="both-match"
        ),
        pytest.param(
            {"repo_property_tier": "staging", "repo_property_team": "ledger"},
            False,
            "repository property tier: got staging, expected production",
            id="another-value",
        ),
        pytest.param(
            {"repo_property_team": "ledger"},
            False,
            "repository property tier: got none (the token has no claim repo_property_tier), expected production",
            id="the-claim-is-missing",
        ),
        pytest.param(
            {"repo_property_tier": "production", "repo_property_team": "payments-eu"},
            False,
            "repository property team: got payments-eu, expected",
            id="a-pattern-matches-the-whole-value",
        ),
        pytest.param(
            {"repo_property_tier": ["production"], "repo_property_team": "ledger"},
            False,
            "repository property tier: got none",
            id="a-value-that-is-not-text-matches-nothing",
        ),
        pytest.param(
            {"repo_properties": {"tier": "production", "team": "ledger"}},
            False,
            "repository property tier: got none",
            id="a-claim-named-repo_properties-is-not-a-property",
        ),
        pytest.param(
            {"repo_property_Tier": "production", "repo_property_team": "ledger"},
            False,
            "repository property tier: got none",
            id="names-are-exact",
        ),
    ],
)
def test_a_rule_on_repository_properties_matches_the_tokens_claims(claims, allowed, why):
    decision = run(POLICIES, identity(**claims), "read")
    assert decision.allowed is allowed, failed(decision)
    if why:
        assert any(why in f for f in failed(decision)), failed(decision)


def test_a_workload_without_a_token_never_matches_a_rule_on_properties():
    rule = POLICIES.by_owner[1000].policy.rules[0]
    pr_check = pull_request_check_identity(
        Repo("octo-org/octo-repo", 2000, "octo-org", 1000), author="alice", author_id=1001,
        number=12, head_sha="a" * 40, head_ref="feature", base_ref="main", delivery="d", now=0,
    )  # fmt: skip
    assert pr_check.repo_properties is None
    from app.decide.provenance import Provenance

    checked = check_rule(rule, pr_check, None, Provenance())
    [reason] = [r for r in checked.reasons if r.code == "repo_properties"]
    assert not reason.ok
    assert "known only from a job's token" in reason.message and "pull-request-check" in reason.message


def test_the_tokens_properties_and_check_run_are_read_from_its_claims():
    who = identity(repo_property_tier="production", repo_property_cost_center="42", check_run_id="90000001")
    assert who.repo_properties == {"tier": "production", "cost_center": "42"}
    assert who.check_run_id == 90000001
    assert identity(check_run_id=None).check_run_id is None, "absent outside GitHub.com and GHE.com"
    assert identity().repo_properties == {}


@pytest.mark.parametrize("value", ["12a", "-1", True, 1.5], ids=["text", "negative", "boolean", "float"])
def test_a_check_run_id_that_is_not_a_decimal_number_is_refused(value):
    with pytest.raises(TokenError, match="claim 'check_run_id' must be a decimal number"):
        identity(check_run_id=value)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        pytest.param("{}", "expected at least 1 entry", id="empty"),
        pytest.param("{'tier two': production}", "expected a custom property name", id="a-name-with-a-space"),
        pytest.param("{tier: 1}", "expected a string, or {pattern: REGEX}", id="a-number"),
        pytest.param("{tier: ''}", "expected at least 1 character", id="an-empty-value"),
        pytest.param("{tier: {pattern: '('}}", "expected a valid regular expression", id="a-bad-pattern"),
    ],
)
def test_a_rule_on_properties_is_validated(properties, message):
    text = POLICY.replace(
        'repo_properties: {tier: production, team: {pattern: "payments|ledger"}}',
        f"repo_properties: {properties}",
    )
    [problem] = problems(whole(text))
    assert problem.startswith("p.yml:8: rules[0].repo_properties"), problem
    assert message in problem, problem


def test_a_property_name_as_github_allows_it():
    Rule(name="r", actions=["read"], repositories="*", repo_properties={"cost-center$#_1": "x"})
    with pytest.raises(ValidationError):
        Rule(name="r", actions=["read"], repositories="*", repo_properties={"x" * 76: "x"})
