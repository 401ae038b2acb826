"""Rule matching: the first rule that matches decides, and the engine checks no rule after it.

Which rules the engine checks is a property of its cost (a large policy must not cost a check of
every rule per decision), so it is specified here with a spy on ``check_rule``, not with timings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.decide import engine
from app.decide.rules import RuleCheck, check_rule
from tests.builders import failed, identity, policy_set, run

HEADER = "version: 1\nowner: {login: octo-org, id: 1000}\nrules:\n"


def rules(*lines: str) -> str:
    return HEADER + "".join(f"  - {line}\n" for line in lines)


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the rules the engine checks, in order."""
    names: list[str] = []

    def spy(rule, *args, **kwargs) -> RuleCheck:  # type: ignore[no-untyped-def]  # same as check_rule
        names.append(rule.name)
        return check_rule(rule, *args, **kwargs)

    monkeypatch.setattr(engine, "check_rule", spy)
    yield names


def test_no_rule_after_the_first_match_is_checked(checked: list[str]) -> None:
    policies = policy_set(
        rules(
            "{name: from-dev, actions: [read], repositories: '*', refs: [refs/heads/dev]}",
            "{name: from-main, actions: [read], repositories: '*', refs: [refs/heads/main]}",
            "{name: also-main, actions: [read], repositories: '*'}",
            "{name: anything, actions: [read], repositories: '*'}",
        )
    )
    decision = run(policies, identity(), "read")
    assert decision.allowed and decision.rule == "from-main"
    assert checked == ["from-dev", "from-main"]


def test_rules_pinning_other_repositories_are_not_checked(checked: list[str]) -> None:
    policies = policy_set(
        rules(
            "{name: other-1, actions: [read], repositories: [{id: 3001, name: octo-org/other-1}]}",
            "{name: pattern, actions: [read], repositories: [{name_pattern: 'octo-org/nothing-.*'}]}",
            "{name: other-2, actions: [read], repositories: [{id: 3002, name: octo-org/other-2}]}",
            "{name: mine, actions: [read], repositories: [{id: 3003, name: octo-org/x}, "
            "{id: 2000, name: octo-org/octo-repo}]}",
            "{name: later, actions: [read], repositories: '*'}",
        )
    )
    decision = run(policies, identity(), "read")
    assert decision.allowed and decision.rule == "mine"
    assert checked == ["pattern", "mine"], "rules pinning only other ids can never match octo-repo (id 2000)"


def test_a_renamed_repository_is_still_checked_by_id(checked: list[str]) -> None:
    policies = policy_set(
        rules("{name: old-name, actions: [read], repositories: [{id: 2000, name: octo-org/old}]}")
    )
    decision = run(policies, identity(), "read")
    assert not decision.allowed
    assert checked == ["old-name"], "checked once: that check names it the closest too"
    assert "repository id 2000 is pinned as octo-org/old" in " ".join(failed(decision))


def test_when_a_candidate_is_as_close_as_a_repository_mismatch_no_other_rule_is_checked(
    checked: list[str],
) -> None:
    policies = policy_set(
        rules(
            "{name: elsewhere, actions: [read], repositories: [{id: 3001, name: octo-org/other}]}",
            "{name: from-dev, actions: [read], repositories: '*', refs: [refs/heads/dev]}",
            "{name: write, actions: [comment], repositories: '*'}",
        )
    )
    decision = run(policies, identity(), "read")
    assert not decision.allowed and decision.rule == "from-dev"
    assert checked == ["from-dev"], "a rule for another repository is never closer than a wrong ref"
    assert failed(decision) == [
        "rule: no rule allows read; closest is 'from-dev'",
        "ref: ref: got refs/heads/main, expected refs/heads/dev",
    ]


def test_at_the_same_distance_a_rule_for_this_repository_is_named_before_an_earlier_one(
    checked: list[str],
) -> None:
    policies = policy_set(
        rules(
            "{name: elsewhere, actions: [deploy], repositories: [{id: 3001, name: octo-org/other}]}",
            "{name: staging, actions: [deploy], repositories: '*', environments: [staging]}",
        )
    )
    decision = run(policies, identity(environment="production"), "deploy")
    assert decision.rule == "staging", (
        "both are 3 away (a repository, an environment): this repository's wins"
    )
    assert checked == ["staging"]


def test_when_every_candidate_is_further_than_a_repository_mismatch_every_rule_is_checked(
    checked: list[str],
) -> None:
    policies = policy_set(
        rules(
            "{name: far, actions: [read], repositories: '*', refs: [refs/heads/dev], environments: [staging]}",
            "{name: elsewhere-1, actions: [read], repositories: [{id: 3001, name: octo-org/other}], "
            "events: [schedule]}",
            "{name: elsewhere-2, actions: [read], repositories: [{id: 3002, name: octo-org/more}]}",
        )
    )
    decision = run(policies, identity(environment="production"), "read")
    assert decision.rule == "elsewhere-2", "3 away (its repository) beats 4 (environment 3 + ref 1)"
    assert checked == ["far", "elsewhere-1", "elsewhere-2"]


def test_without_a_candidate_every_rule_of_the_action_is_checked_and_the_first_nearest_named(
    checked: list[str],
) -> None:
    policies = policy_set(
        rules(
            "{name: other-1, actions: [read], repositories: [{id: 3001, name: octo-org/a}], refs: [refs/heads/x]}",
            "{name: other-2, actions: [read], repositories: [{id: 3002, name: octo-org/b}]}",
            "{name: other-3, actions: [read], repositories: [{id: 3003, name: octo-org/c}]}",
        )
    )
    decision = run(policies, identity(), "read")
    assert decision.rule == "other-2"
    assert checked == ["other-1", "other-2", "other-3"]
