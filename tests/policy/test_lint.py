"""Lint: warnings about valid policies that are dangerous, or that don't do what they seem to."""

from __future__ import annotations

import pytest

from app.policy.lint import lint
from tests.policy.builders import load, rule

# An execute rule with every safeguard: it gets no warning. Cases below change one thing.
CAREFUL = """
actions: [deploy]
repositories: [{id: 2, name: acme/api}]
refs: [refs/heads/main]
events: [push, workflow_dispatch]
workflows: [{ref: acme/api/.github/workflows/deploy.yml@refs/heads/main}]
runner_environments: [github-hosted]
approvals: {count: 1}
"""


def careful(**changes: str | None) -> str:
    """The careful rule, with fields replaced (a YAML value) or removed (None)."""
    fields = dict(line.split(": ", 1) for line in CAREFUL.strip().splitlines())
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return "\n".join(f"{name}: {value}" for name, value in fields.items())


def warnings(body: str) -> list[str]:
    found = lint(load(body))
    assert all(w.severity == "warning" for w in found)
    return [w.render() for w in found]


def test_a_careful_execute_rule_has_no_warnings() -> None:
    assert warnings(rule(careful())) == []


# Each case: the rule's fields, and the one warning it must get (file:line: field: message start).
DANGEROUS = [
    pytest.param(
        careful(runner_environments=None),
        "p.yml:4: rules[0].runner_environments: rule 'r' allows deploy on self-hosted runners; write "
        "runner_environments: [github-hosted] unless your self-hosted runners are as trusted as the target",
        id="execute-on-any-runner",
    ),
    pytest.param(
        careful(runner_environments="[github-hosted, self-hosted]"),
        "p.yml:10: rules[0].runner_environments: rule 'r' allows deploy on self-hosted runners",
        id="execute-on-self-hosted-runners",
    ),
    pytest.param(
        careful(events=None),
        "p.yml:4: rules[0].events: rule 'r' omits events for deploy; the engine refuses execute from "
        "pull_request and pull_request_target events anyway (they run the pull request's code), so list "
        "the events you mean, e.g. [push, workflow_dispatch]",
        id="execute-from-any-event",
    ),
    pytest.param(
        careful(events="[push, pull_request_target]"),
        "p.yml:8: rules[0].events: rule 'r' lists pull_request_target for deploy; the engine refuses execute",
        id="execute-from-pull-request-events",
    ),
    pytest.param(
        careful(repositories="'*'"),
        "p.yml:6: rules[0].repositories: rule 'r' allows deploy for repositories matched by a wildcard; for "
        "execute, pin each repository as {id, name}",
        id="execute-for-every-repository",
    ),
    pytest.param(
        careful(repositories="[{name_pattern: 'acme/.*'}]"),
        "p.yml:6: rules[0].repositories: rule 'r' allows deploy for repositories matched by a wildcard",
        id="execute-for-a-repository-pattern",
    ),
    pytest.param(
        careful(refs=None),
        "p.yml:4: rules[0].refs: rule 'r' allows deploy from any ref, including branches anyone with write "
        "access can push; pin refs, e.g. [refs/heads/main]",
        id="execute-from-any-ref",
    ),
    pytest.param(
        careful(workflows=None),
        "p.yml:4: rules[0].workflows: rule 'r' allows deploy from any workflow; pin workflows by "
        "job_workflow_ref (and sha)",
        id="execute-from-any-workflow",
    ),
    pytest.param(
        careful(approvals=None),
        "p.yml:4: rules[0].approvals: rule 'r' lets an agent-driven workload match deploy with zero "
        "approvals; the engine refuses that anyway (agents always need at least one independent human "
        "approval of the exact commit), so write approvals: {count: 1} to say so, or allow_agents: false",
        id="agents-with-no-approvals-field",
    ),
    pytest.param(
        careful(approvals="{count: 0}"),
        "p.yml:11: rules[0].approvals: rule 'r' lets an agent-driven workload match deploy with zero approvals",
        id="agents-with-zero-approvals",
    ),
    pytest.param(
        careful(actions="[approve]", approvals="{count: 0}") + "\nallow_agents: true",
        "p.yml:12: rules[0].allow_agents: rule 'r' allows approve, an approval action, which agents are never "
        "allowed (the engine refuses them whatever this rule says); write allow_agents: false to say so",
        id="approval-action-open-to-agents",
    ),
    pytest.param(
        careful(github_permissions="{contents: write, administration: write}"),
        "p.yml:12: rules[0].github_permissions: rule 'r' asks for administration; an agent-driven workload "
        "never gets them",
        id="permissions-agents-never-get",
    ),
]


@pytest.mark.parametrize(("body", "expected"), DANGEROUS)
def test_dangerous_patterns_are_warned_about(body: str, expected: str) -> None:
    found = warnings(rule(body))
    relevant = [w for w in found if w.startswith(expected.split(": rule", 1)[0])]
    assert len(relevant) == 1 and relevant[0].startswith(expected), found


NEVER_MATCHING = [
    pytest.param(
        careful(refs="[main]"),
        "p.yml:7: rules[0].refs[0]: rule 'r': ref 'main' never matches: a token's ref is a full ref such as "
        "refs/heads/main or refs/tags/main",
        id="short-ref",
    ),
    pytest.param(
        careful(events="[push, workflow_dispach]"),
        "p.yml:8: rules[0].events[1]: rule 'r': 'workflow_dispach' is not a GitHub Actions event (did you "
        "mean 'workflow_dispatch'?); this entry never matches",
        id="unknown-event",
    ),
    pytest.param(
        careful(workflows="[{ref: deploy.yml}]"),
        "p.yml:9: rules[0].workflows[0].ref: rule 'r': workflow 'deploy.yml' never matches: a "
        "job_workflow_ref looks like owner/repo/.github/workflows/deploy.yml@refs/heads/main",
        id="workflow-that-is-not-a-job-workflow-ref",
    ),
    pytest.param(
        careful(repositories="[{id: 2, name: other/api}]"),
        "p.yml:6: rules[0].repositories[0].name: rule 'r': repository other/api is not acme's, and this policy "
        "governs only acme (owner id 1); this entry never matches, unless owner.login is wrong",
        id="repository-of-another-owner",
    ),
    pytest.param(
        careful(events="[pull_request, pull_request_target]"),
        "p.yml:8: rules[0].events: rule 'r' can never allow anything: it allows only execute actions, and only "
        "for pull_request/pull_request_target events, which the engine always refuses execute",
        id="execute-only-from-pull-request-events",
    ),
    pytest.param(
        "actions: [read]\nrepositories: '*'\napprovals: {count: 2}",
        "p.yml:7: rules[0].approvals: rule 'r''s approvals are never checked: read is a read or propose "
        "action, which the rule allows without any approval; remove approvals, or declare the action as "
        "execute under 'actions:'",
        id="approvals-on-a-read-rule",
    ),
    pytest.param(
        careful(approvals="{count: 0, teams: [release]}", allow_agents="false"),
        "p.yml:11: rules[0].approvals.teams: rule 'r' names teams but requires no approval (count: 0)",
        id="teams-without-approvals",
    ),
    pytest.param(
        careful(github_permissions="{content: write}"),
        "p.yml:12: rules[0].github_permissions.content: rule 'r': 'content' is not a GitHub App repository "
        "permission (did you mean 'contents'?); GitHub would refuse the token",
        id="unknown-github-permission",
    ),
]


@pytest.mark.parametrize(("body", "expected"), NEVER_MATCHING)
def test_entries_and_rules_that_never_match_are_warned_about(body: str, expected: str) -> None:
    found = warnings(rule(body))
    assert [w for w in found if w.startswith(expected)] != [], found


def test_a_rule_shadowed_by_an_earlier_one_never_decides() -> None:
    found = warnings(
        """
        rules:
          - name: any-deploy
            actions: [deploy, merge]
            repositories: '*'
            allow_agents: false
            events: [push]
            runner_environments: [github-hosted]
          - name: strict-deploy
            actions: [deploy]
            repositories: [{id: 2, name: acme/api}]
            events: [push]
            allow_agents: false
            runner_environments: [github-hosted]
            approvals: {count: 2}
          - name: agents-deploy
            actions: [deploy]
            repositories: [{id: 2, name: acme/api}]
            events: [push]
            runner_environments: [github-hosted]
        """
    )
    shadowed = [w for w in found if "never decides" in w]
    assert shadowed == [
        "p.yml:11: rules[1].actions: rule 'strict-deploy' never decides deploy: the earlier rule 'any-deploy' "
        "(line 4) matches every workload this one matches, and rules are tried in file order; move this rule "
        "above it, or narrow the earlier one"
    ], "agents-deploy also allows agents, which any-deploy does not: it is not shadowed"


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        ("[{id: 2, name: acme/api}, {id: 3, name: acme/web}]", "[{id: 3, name: acme/web}]", True),
        ("[{id: 2, name: acme/api}]", "[{id: 3, name: acme/web}, {id: 2, name: acme/api}]", False),
        (
            "[{id: 2, name: acme/api}, {id: 3, name: acme/web}]",
            "[{id: 3, name: acme/web}, {id: 2, name: acme/api}]",
            True,
        ),
        ("[{name_pattern: 'acme/.*'}]", "[{name_pattern: 'acme/.*'}]", True),
        ("[{name_pattern: 'acme/.*'}]", "[{id: 2, name: acme/api}]", False),
        ("[{id: 2, name: acme/api}]", "'*'", False),
        ("'*'", "[{id: 2, name: acme/api}]", True),
    ],
    ids=[
        "later-pins-one-of-earlier's",
        "later-pins-one-more",
        "same-set-other-order",
        "same-pattern",
        "pattern-is-not-compared-with-ids",
        "star-is-wider-than-a-pin",
        "pin-under-a-star",
    ],
)
def test_shadowing_compares_repository_lists(earlier: str, later: str, shadowed: bool) -> None:
    found = warnings(
        f"""
        rules:
          - name: first
            actions: [read]
            repositories: {earlier}
          - name: second
            actions: [read]
            repositories: {later}
        """
    )
    assert any("rule 'second' never decides read" in w for w in found) is shadowed, found


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        ("{tier: production}", None, False),
        ("{tier: production}", "{tier: production, team: payments}", True),
        ("{tier: production}", "{tier: staging}", False),
        (None, "{tier: production}", True),
    ],
    ids=["narrower-earlier", "later-names-more", "another-value", "earlier-has-none"],
)
def test_shadowing_compares_repository_properties(
    earlier: str | None, later: str | None, shadowed: bool
) -> None:
    def props(value: str | None) -> str:
        return f"\n            repo_properties: {value}" if value else ""

    found = warnings(
        f"""
        rules:
          - name: first
            actions: [read]
            repositories: '*'{props(earlier)}
          - name: second
            actions: [read]
            repositories: '*'{props(later)}
        """
    )
    assert any("rule 'second' never decides read" in w for w in found) is shadowed, found


def test_one_repository_id_with_two_names_is_warned_about() -> None:
    found = warnings(
        """
        rules:
          - {name: a, actions: [read], repositories: [{id: 2, name: acme/api}]}
          - {name: b, actions: [comment], repositories: [{id: 2, name: acme/API}]}
          - {name: c, actions: [push-branch], repositories: [{id: 2, name: acme/api-v2}]}
        """
    )
    assert found == [
        "p.yml:6: rules[2].repositories[0].name: repository id 2 is acme/api-v2 here but acme/api in rule 'a'; "
        "the engine checks the name too, so one of them never matches"
    ], "names are compared case-insensitively, as GitHub does"


def test_a_policy_without_rules_denies_everything_and_says_so() -> None:
    assert warnings("") == [
        "p.yml:1: rules: the policy has no rules: every action in acme's repositories is denied"
    ]


def test_read_and_propose_rules_are_not_held_to_execute_standards() -> None:
    assert warnings(rule("actions: [read, comment, preview-deploy]\nrepositories: '*'")) == []


def test_a_raised_class_is_linted_as_what_it_became() -> None:
    body = "actions:\n  comment: {permission: execute}\n" + rule("actions: [comment]\nrepositories: '*'")
    fields = {w.split(": ")[1] for w in warnings(body)}
    assert {"rules[0].runner_environments", "rules[0].refs", "rules[0].repositories"} <= fields


def test_the_example_policy_has_exactly_its_one_instructive_warning() -> None:
    from app.policy.loader import load_policies
    from tests.policy.test_validate import REPO

    loaded = load_policies(REPO / "policies").by_owner[1000]
    found = lint(loaded)
    assert [(w.field, "zero approvals" in w.message) for w in found] == [("rules[2].approvals", True)]
    assert found[0].line == loaded.line_at("rules", 2, "approvals")
