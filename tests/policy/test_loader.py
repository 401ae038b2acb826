"""Policy files: validated, indexed, and every problem named by file, line, field, found and expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from app.errors import PolicyError
from app.policy import source
from app.policy.agents import Kind
from app.policy.loader import load_policies, load_policy_file, parse_policy_text, survey_policies
from tests.builders import whole
from tests.policy.builders import HEADER, load, policy_text, problems, rule

# Each case: a policy body (after the two-line header, so its first line is line 3) and the exact
# problems the loader reports, as `policy check` prints them.
BROKEN = [
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\naprovals: {count: 1}"),
        [
            "p.yml:7: rules[0].aprovals: unknown field 'aprovals' (did you mean 'approvals'?); expected one "
            "of name, description, owners, mode, actions, repositories, refs, environments, events, workflows, "
            "runner_environments, paths, repo_properties, approvals, allow_agents, allow_bots, grant, github_permissions"
        ],
        id="unknown-field-suggests-the-closest",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\n'on': [push]"),
        [
            "p.yml:7: rules[0].on: unknown field 'on' (did you mean 'events'?); expected one "
            "of name, description, owners, mode, actions, repositories, refs, environments, events, workflows, "
            "runner_environments, paths, repo_properties, approvals, allow_agents, allow_bots, grant, github_permissions"
        ],
        id="a-quoted-on-suggests-events",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\nbranches: [main]"),
        [
            "p.yml:7: rules[0].branches: unknown field 'branches' (did you mean 'refs'?); expected one "
            "of name, description, owners, mode, actions, repositories, refs, environments, events, workflows, "
            "runner_environments, paths, repo_properties, approvals, allow_agents, allow_bots, grant, github_permissions"
        ],
        id="branches-suggests-refs",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\napprovals: {count: sometimes}"),
        ["p.yml:7: rules[0].approvals.count: got 'sometimes', expected a whole number"],
        id="wrong-type",
    ),
    pytest.param(
        "actions:\n  launch: {permission: sometimes}\n",
        ["p.yml:4: actions.launch.permission: got 'sometimes', expected one of read, propose, execute"],
        id="not-one-of-the-permission-classes",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\nrunner_environments: [mars]"),
        ["p.yml:7: rules[0].runner_environments[0]: got 'mars', expected one of github-hosted, self-hosted"],
        id="not-one-of-the-runner-environments",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\nrefs: [{pattern: '('}]"),
        [
            "p.yml:7: rules[0].refs[0].pattern: got '(', expected a valid regular expression "
            "(missing ), unterminated subpattern at position 0)"
        ],
        id="bad-regex",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: [{name_pattern: '[a-'}]"),
        [
            "p.yml:6: rules[0].repositories[0].name_pattern: got '[a-', expected a valid regular "
            "expression (unterminated character set at position 0)"
        ],
        id="bad-repository-regex",
    ),
    pytest.param(
        rule("actions: [launch-missiles]\nrepositories: '*'"),
        [
            "p.yml:5: rules[0].actions[0]: unknown action 'launch-missiles'; expected one of approve, "
            "comment, deploy, merge, open-pull-request, preview-deploy, publish, push-branch, read, "
            "read-contents, read-secrets, release, or declare it under 'actions:'"
        ],
        id="unknown-action",
    ),
    pytest.param(
        rule("actions: [deplyo]\nrepositories: '*'"),
        [
            "p.yml:5: rules[0].actions[0]: unknown action 'deplyo' (did you mean 'deploy'?); expected one "
            "of approve, comment, deploy, merge, open-pull-request, preview-deploy, publish, push-branch, "
            "read, read-contents, read-secrets, release, or declare it under 'actions:'"
        ],
        id="misspelt-action-suggests-the-closest",
    ),
    pytest.param(
        "rules:\n  - {name: r, actions: [read], repositories: '*'}\n  - {name: r, actions: [read], repositories: '*'}\n",
        ["p.yml:5: rules[1].name: got 'r', expected a unique rule name: rules[0] already has it (line 4)"],
        id="duplicate-rule-name",
    ),
    pytest.param(
        rule("name: s\nactions: [read]\nrepositories: '*'"),
        ["p.yml:5: rules[0].name: duplicate key 'name' (first at line 4); each key may appear once"],
        id="duplicate-key",
    ),
    pytest.param(
        "actions:\n  deploy: {permission: read}\n",
        [
            "p.yml:4: actions.deploy.permission: got read, expected execute or higher: 'deploy' is built in "
            "as execute, and a policy may raise an action's class, never lower it"
        ],
        id="lowering-a-builtin-class",
    ),
    pytest.param(
        "actions:\n  approve: {permission: execute}\n",
        [
            "p.yml:4: actions.approve: got approval: false, expected approval: true: 'approve' is built in "
            "as an approval action, and a policy cannot unmark it"
        ],
        id="unmarking-a-builtin-approval-action",
    ),
    pytest.param(
        "actions:\n  sign-off: {permission: propose, approval: true}\n",
        [
            "p.yml:4: actions.sign-off: got {'permission': 'propose', 'approval': True}, expected permission "
            "'execute' for an approval action"
        ],
        id="approval-action-that-is-not-execute",
    ),
    pytest.param(
        "actions:\n  Launch: {permission: execute}\n",
        [
            "p.yml:4: actions.Launch: got 'Launch', expected an action name: lower-case letters, digits "
            "and '-', starting with a letter"
        ],
        id="bad-action-name",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\nrefs: []"),
        [
            "p.yml:7: rules[0].refs: got [], expected at least 1 entry (an empty list matches nothing; to "
            "match anything, remove the field)"
        ],
        id="empty-condition-list",
    ),
    pytest.param(
        rule("actions: []\nrepositories: '*'"),
        ["p.yml:5: rules[0].actions: got [], expected at least 1 entry"],
        id="empty-actions",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: []"),
        ["p.yml:6: rules[0].repositories: got [], expected at least 1 entry"],
        id="empty-repositories",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: all"),
        [
            "p.yml:6: rules[0].repositories: got 'all', expected '*' (every repository of the owner) or a "
            "list of {id, name} / {name_pattern: REGEX}"
        ],
        id="repositories-neither-star-nor-list",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: [{id: 2000}]"),
        [
            "p.yml:6: rules[0].repositories[0].name: required field is missing (owner/name, e.g. octo-org/octo-repo)"
        ],
        id="repository-without-name",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: [{id: 0, name: acme/api}]"),
        ["p.yml:6: rules[0].repositories[0].id: got 0, expected a number greater than 0"],
        id="repository-id-not-positive",
    ),
    pytest.param(
        rule("actions: [read]"),
        [
            "p.yml:4: rules[0].repositories: required field is missing ('*' for every repository of the "
            "owner, or a list of {id, name} / {name_pattern: REGEX})"
        ],
        id="missing-field-points-at-its-rule",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\napprovals: {count: 11, teams: [Release Managers]}"),
        [
            "p.yml:7: rules[0].approvals.count: got 11, expected a number of at most 10",
            "p.yml:7: rules[0].approvals.teams[0]: got 'Release Managers', expected a team slug: lower-case "
            "letters, digits, '-' and '_' (the team's URL name, without the org)",
        ],
        id="every-problem-of-a-file-at-once",
    ),
    pytest.param(
        rule(
            "actions: [deploy]\nrepositories: '*'\nworkflows: [{ref: a/b/.github/workflows/d.yml@main, sha: 1a2b}]"
        ),
        [
            "p.yml:7: rules[0].workflows[0].sha: got '1a2b', expected a full 40-character lower-case commit sha"
        ],
        id="short-workflow-sha",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\nenvironments: [{patern: prod}]"),
        [
            "p.yml:7: rules[0].environments[0].patern: unknown field 'patern' (did you mean 'pattern'?); "
            "expected one of pattern",
            "p.yml:7: rules[0].environments[0].pattern: required field is missing (Regular expression matched "
            "against the whole value (full match: no need for ^ and $))",
        ],
        id="misspelt-pattern",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\nenvironments: [42]"),
        [
            "p.yml:7: rules[0].environments[0]: got 42, expected a string, or {pattern: REGEX}: YAML reads an "
            "unquoted 42 as a number; write '42' in quotes"
        ],
        id="number-where-a-matcher-is-expected",
    ),
    pytest.param(
        "agents:\n  ai: [{name: Nameless}]\n",
        ["p.yml:4: agents.ai[0]: got {'name': 'Nameless'}, expected at least one of 'login' or 'id'"],
        id="agent-without-login-or-id",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\ngithub_permissions: {contents: admin}"),
        ["p.yml:7: rules[0].github_permissions.contents: got 'admin', expected one of read, write"],
        id="github-permission-level",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\napprovals: {count: -1}"),
        ["p.yml:7: rules[0].approvals.count: got -1, expected a number of at least 0"],
        id="negative-count",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\ngithub_permissions: {}"),
        ["p.yml:7: rules[0].github_permissions: got {}, expected at least 1 entry"],
        id="empty-github-permissions",
    ),
    pytest.param(
        "agents:\n  labels: ['" + "x" * 101 + "']\n",
        [f"p.yml:4: agents.labels[0]: got '{'x' * 56}..., expected at most 100 characters"],
        id="label-too-long",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\nevents: [workflow-dispatch]"),
        [
            "p.yml:7: rules[0].events[0]: got 'workflow-dispatch', expected a GitHub Actions event name such "
            "as push or workflow_dispatch"
        ],
        id="event-name-shape",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\ngrant: {ttl: 86400}"),
        ["p.yml:7: rules[0].grant.ttl: got 86400, expected a number of at most 3600"],
        id="grant-longer-than-an-hour",
    ),
]


@pytest.mark.parametrize(("body", "expected"), BROKEN)
def test_errors_name_file_line_field_found_and_expected(body: str, expected: list[str]) -> None:
    assert problems(policy_text(body)) == expected


# YAML itself: syntax, and what PyYAML would silently accept.
BROKEN_YAML = [
    pytest.param(
        "rules: [\n",
        "p.yml:4:1: YAML syntax error at column 1: while parsing a flow node did not find expected node content",
        id="syntax",
    ),
    pytest.param(
        "rules:\n  - name: r\n   actions: [read]\n",
        "p.yml:5:4: bad indentation: the line is indented 3 spaces, expected 4 spaces (like line 4) or 2 spaces",
        id="bad-indentation",
    ),
    pytest.param(
        "description: a\ndescription: b\n",
        "p.yml:4: description: duplicate key 'description' (first at line 3)",
        id="duplicate-top-level-key",
    ),
    pytest.param(
        "actions:\n  on: {permission: execute}\n",
        "p.yml:4: actions.on: a key must be text: YAML reads an unquoted on as a boolean; write 'on' in quotes",
        id="boolean-key",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\nrefs:"),
        "p.yml:7: rules[0].refs: empty value; write a value, or remove the key",
        id="empty-value-is-not-anything",
    ),
    pytest.param(
        rule("actions: [deploy]\nrepositories: '*'\napprovals:"),
        "p.yml:7: rules[0].approvals: empty value",
        id="empty-approvals-is-not-none",
    ),
    pytest.param(
        rule("actions:\n  -\n  - read\nrepositories: '*'"),
        "p.yml:6: rules[0].actions[0]: empty list entry",
        id="empty-list-entry",
    ),
    pytest.param(
        "description: !!python/object:os.system x\n",
        "p.yml:3: description: the YAML tag !!python/object:os.system is not allowed in a policy",
        id="python-tag",
    ),
    pytest.param(
        "description: a\n---\ndescription: b\n",
        "p.yml:4: expected one YAML document, found a second one",
        id="two-documents",
    ),
    pytest.param(
        "rules: *nothing\n",
        "p.yml:3: the alias *nothing names no anchor &nothing written before it",
        id="unknown-alias",
    ),
    pytest.param(
        "rules: &r [*r]\n", "p.yml:3: the alias *r refers to a value that contains it", id="recursive-alias"
    ),
    pytest.param(
        "agents: !!set {a, b}\n",
        "p.yml:3: agents: the YAML tag !!set is not allowed in a policy",
        id="set-tag",
    ),
    pytest.param(
        "rules:\n  - <<: 1\n",
        "p.yml:4: expected a mapping (or a list of mappings) after '<<'",
        id="merge-of-a-scalar",
    ),
    pytest.param(
        rule("actions: [read]\nrepositories: '*'\nenvironments: [2024-13-45]"),
        "p.yml:7: rules[0].environments[0]: YAML reads an unquoted 2024-13-45 as a date, but it is not a valid "
        "one; write '2024-13-45' in quotes",
        id="invalid-date",
    ),
]


@pytest.mark.parametrize(("body", "expected"), BROKEN_YAML)
def test_yaml_problems_are_errors_with_their_line(body: str, expected: str) -> None:
    found = problems(policy_text(body))
    assert len(found) == 1 and found[0].startswith(expected), found


NOT_TEXT = [
    pytest.param(
        "events: [on]",
        "rules[0].events[0]: got on, expected text: YAML reads an unquoted on as a boolean; write 'on' in quotes",
        id="on",
    ),
    pytest.param(
        "events: [yes]",
        "got yes, expected text: YAML reads an unquoted yes as a boolean; write 'yes' in quotes",
        id="yes",
    ),
    pytest.param(
        "environments: [no]",
        "got no, expected a string, or {pattern: REGEX}: YAML reads an unquoted no as a boolean",
        id="no-as-environment",
    ),
    pytest.param(
        "environments: [1.10]",
        "got 1.10, expected a string, or {pattern: REGEX}: YAML reads an unquoted 1.10 as a number; write '1.10' in quotes",
        id="version-like-number",
    ),
    pytest.param("environments: [2024-01-01]", "YAML reads an unquoted 2024-01-01 as a date", id="date"),
    pytest.param(
        "description: off",
        "rules[0].description: got off, expected text: YAML reads an unquoted off as a boolean",
        id="description",
    ),
]


@pytest.mark.parametrize(("line", "expected"), NOT_TEXT)
def test_the_norway_problem_never_silently_changes_meaning(line: str, expected: str) -> None:
    found = problems(policy_text(rule(f"actions: [read]\nrepositories: '*'\n{line}")))
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            rule("actions: [deploy]\nrepositories: '*'\napprovals: {count: true}"),
            "approvals.count: got True, expected a whole number",
            id="boolean-count",
        ),
        pytest.param(
            rule("actions: [deploy]\nrepositories: '*'\napprovals: {count: '1'}"),
            "approvals.count: got '1', expected a whole number",
            id="quoted-count",
        ),
        pytest.param(
            rule("actions: [deploy]\nrepositories: '*'\napprovals: {count: 1.5}"),
            "approvals.count: got 1.5, expected a whole number",
            id="fractional-count",
        ),
        pytest.param(
            rule("actions: [deploy]\nrepositories: '*'\nallow_agents: 'no'"),
            "allow_agents: got 'no', expected true or false",
            id="quoted-boolean",
        ),
    ],
)
def test_values_are_never_coerced(body: str, expected: str) -> None:
    assert any(expected in p for p in problems(policy_text(body)))


def test_problems_reading_and_validating_are_reported_together_without_echoes() -> None:
    text = policy_text(
        """
        rules:
          - name: r
            actions: [deploy]
            repositories:
            refs: [refs/heads/main]
            refs: [refs/heads/dev]
            on: push
            approvals: {count: lots}
        """
    )
    assert problems(text) == [
        "p.yml:6: rules[0].repositories: empty value; write a value, or remove the key (an omitted "
        "condition matches anything)",
        "p.yml:8: rules[0].refs: duplicate key 'refs' (first at line 7); each key may appear once",
        "p.yml:9: rules[0].on: a key must be text: YAML reads an unquoted on as a boolean; did you mean 'events'?",
        "p.yml:10: rules[0].approvals.count: got 'lots', expected a whole number",
    ], "the empty repositories are not also reported as missing"


def test_a_tag_can_make_a_boolean_looking_value_text() -> None:
    loaded = load(rule("actions: [read]\nrepositories: '*'\nevents: [!!str on, 'yes', \"no\"]"))
    assert loaded.policy.rules[0].events == ["on", "yes", "no"]


def test_a_boolean_version_is_not_version_1() -> None:
    assert problems("version: true\nowner: {login: acme, id: 1}\n...\n") == [
        "p.yml:1: version: got True, expected 1"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "", ["p.yml:1: the file is empty; expected a mapping with version, owner and rules"], id="empty"
        ),
        pytest.param(
            "# nothing but a comment\n",
            ["p.yml:1: the file is empty; expected a mapping with version, owner and rules"],
            id="only-comments",
        ),
        pytest.param(
            "- version: 1\n",
            ["p.yml:1: got a list, expected a mapping with version, owner, rules"],
            id="a-list",
        ),
        pytest.param(
            "rules: []\n...\n",
            [
                "p.yml:1: owner: required field is missing (The owner this policy governs, pinned by repository_owner_id)",
                "p.yml:1: version: required field is missing (Policy language version: 1)",
            ],
            id="no-version-no-owner",
        ),
        pytest.param(
            "version: 1\nowner: {login: acme}\n...\n",
            [
                "p.yml:2: owner.id: required field is missing (repository_owner_id: the owner's numeric id "
                "(names can be re-registered, ids cannot))"
            ],
            id="owner-must-be-pinned-by-id",
        ),
        pytest.param(
            "version: 2\nowner: {login: acme, id: 1}\n...\n",
            ["p.yml:1: version: got 2, expected 1"],
            id="unknown-version",
        ),
    ],
)
def test_documents_that_are_not_policies(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_size_and_nesting_are_bounded_before_anything_is_built() -> None:
    assert problems("[" * 100_000)[0] == "p.yml:1: nested more than 32 levels deep; a policy never needs that"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
    )
    assert "more than 100000 values once YAML aliases are expanded" in problems(bomb)[0]
    assert "larger than 1 MiB" in problems("#" * 1_048_577)[0]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000, id="flow-sequences"),
        pytest.param("{a: " * 40 + "1" + "}" * 40, id="flow-mappings"),
        pytest.param(
            "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)) + "  " * 40 + "v\n", id="block"
        ),
    ],
)
def test_nesting_is_bounded_by_the_gate_whatever_the_yaml_library_does(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML 6.0.4 added a flow-nesting limit of its own, with its own message; older releases have
    # none. The gate's bound answers first either way: a YAML reader that accepts anything changes
    # nothing for flow nesting, and block nesting is bounded while reading events.
    expected = "nested more than 32 levels deep; a policy never needs that"
    assert expected in problems(text)[0]
    if text.startswith(("[", "{")):
        monkeypatch.setattr(source, "_Loader", None)  # never reached: refused before parsing
        assert expected in problems(text)[0]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("a: '" + "[" * 40 + "'\n", None, id="single-quoted"),
        pytest.param("a: '" + "it''s " + "[" * 40 + "'\n", None, id="single-quoted-with-escaped-quote"),
        pytest.param('a: "\\"' + "[" * 40 + '"\n', None, id="double-quoted-with-escape"),
        pytest.param("# " + "[" * 40 + "\nb: 1\n", None, id="comment"),
        pytest.param("a: x#" + "{" * 33 + "\n", 1, id="a-hash-inside-a-word-is-no-comment"),
        pytest.param("a: don't\nb: " + "[" * 33, 2, id="an-apostrophe-in-a-word-opens-nothing"),
        pytest.param("a: [[1], [2], {b: [3]}]\n" * 50, None, id="wide-but-shallow"),
    ],
)
def test_the_flow_depth_prescan_skips_quotes_and_comments(text: str, line: int | None) -> None:
    assert source.flow_depth_exceeded(text) == line


def test_anchors_aliases_and_merge_keys_work_and_keep_their_lines() -> None:
    loaded = load(
        """
        rules:
          - &hardened
            name: base
            actions: [deploy]
            repositories: [{id: 2, name: acme/api}]
            runner_environments: [github-hosted]
          - <<: *hardened
            name: staging
            environments: [staging]
        """
    )
    base, staging = loaded.policy.rules
    assert staging.actions == ["deploy"] and staging.runner_environments == ["github-hosted"]
    assert staging.environments == ["staging"] and base.environments is None
    assert loaded.line_at("rules", 1, "runner_environments") == 8, (
        "a merged key keeps the line it was written on"
    )
    assert loaded.line_of("staging") == 9


def test_a_merged_value_with_a_problem_is_reported_where_it_was_written() -> None:
    text = policy_text(
        """
        rules:
          - &base {name: a, actions: [deploy], repositories: '*', refs: [main, {pattern: '(('}]}
          - <<: *base
            name: b
        """
    )
    found = problems(text)
    assert "p.yml:4: rules[0].refs[1].pattern: got '(('" in found[0]
    assert "p.yml:4: rules[1].refs[1].pattern: got '(('" in found[1]


def test_rules_are_indexed_by_action_in_file_order() -> None:
    loaded = load(
        """
        rules:
          - {name: a, actions: [read, deploy], repositories: '*'}
          - {name: b, actions: [deploy], repositories: '*'}
        """
    )
    assert [r.name for r in loaded.rules_for("deploy")] == ["a", "b"]
    assert [r.name for r in loaded.rules_for("read")] == ["a"]
    assert loaded.rules_for("merge") == []
    assert (loaded.line_of("a"), loaded.line_of("b"), loaded.line_of("c")) == (4, 5, None)


def test_candidate_rules_for_a_repository_keep_file_order() -> None:
    loaded = load(
        """
        rules:
          - {name: pinned-2, actions: [deploy], repositories: [{id: 2, name: acme/api}]}
          - {name: every, actions: [deploy], repositories: '*'}
          - {name: pinned-3, actions: [deploy], repositories: [{id: 3, name: acme/web}]}
          - {name: pattern, actions: [deploy, read], repositories: [{id: 3, name: acme/web}, {name_pattern: 'acme/.*'}]}
          - {name: both, actions: [deploy], repositories: [{id: 3, name: acme/web}, {id: 2, name: acme/api}]}
        """
    )
    assert [r.name for r in loaded.candidates("deploy", 2)] == ["pinned-2", "every", "pattern", "both"]
    assert [r.name for r in loaded.candidates("deploy", 3)] == ["every", "pinned-3", "pattern", "both"]
    assert [r.name for r in loaded.candidates("deploy", 4)] == ["every", "pattern"]
    assert [r.name for r in loaded.candidates("read", 2)] == ["pattern"]
    assert list(loaded.candidates("merge", 2)) == []


def test_line_at_falls_back_to_the_nearest_written_ancestor() -> None:
    loaded = load(rule("actions: [deploy]\nrepositories: '*'\nrefs: [refs/heads/main]"))
    assert loaded.line_at("rules", 0, "refs") == 7
    assert loaded.line_at("rules", 0, "refs", 0) == 7
    assert loaded.line_at("rules", 0, "events") == 4, "omitted: the rule's line"
    assert loaded.line_at("owner", "id") == 2


def test_the_catalog_and_agents_include_the_policys_additions() -> None:
    loaded = load(
        """
        actions:
          rotate: {permission: execute}
          comment: {permission: execute}
        agents:
          ai: [{login: "acme-agent[bot]", id: 77, name: ACME agent}]
          bots: [{login: "acme-ci[bot]"}]
          labels: [ai-generated]
        """
    )
    assert loaded.catalog["rotate"].permission == "execute"
    assert loaded.catalog["comment"].permission == "execute", "a built-in class may be raised"
    assert loaded.catalog["read"].permission == "read"
    assert loaded.agents.classify("someone-else", 77).kind is Kind.AI_AGENT, "matched by id"
    assert loaded.agents.classify("acme-ci[bot]", None).kind is Kind.BOT
    assert loaded.agents.classify("claude[bot]", 209825114).kind is Kind.AI_AGENT, "built-ins stay"
    assert "ai-generated" in loaded.agents.labels


def test_the_pure_python_parser_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    text = policy_text(rule("actions: [deploy]\nrepositories: '*'\nrefs: [on]\nrefs: [main]"))
    with_c = problems(text)
    monkeypatch.setattr(source, "_Loader", yaml.SafeLoader)
    assert problems(text) == with_c
    assert load(rule("actions: [read]\nrepositories: '*'")).policy.rules[0].name == "r"


# -- files and directories ---------------------------------------------------------------------


def test_a_directory_is_every_yml_and_yaml_file_but_schema_json_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(whole(HEADER))
    (tmp_path / "other.yaml").write_text(whole("version: 1\nowner: {login: other, id: 2}\n"))
    (tmp_path / "schema.json").write_text("{}")
    (tmp_path / ".acme.yml.swp").write_text("garbage: [")
    (tmp_path / "README.md").write_text("# policies")
    policies = load_policies(tmp_path)
    assert sorted(policies.by_owner) == [1, 2]
    other = policies.for_owner(2)
    assert other is not None and other.path.endswith("other.yaml")
    assert policies.for_owner(3) is None


def test_a_single_file_is_a_policy_set_too(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_text(whole(HEADER))
    assert list(load_policies(tmp_path / "acme.yml").by_owner) == [1]
    assert load_policy_file(tmp_path / "acme.yml").policy.owner.login == "acme"


def test_two_files_for_one_owner_are_refused(tmp_path: Path) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text(whole(HEADER))
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    assert [p.render() for p in info.value.problems] == [
        f"{tmp_path / 'b.yml'}:2: owner.id: got 1, expected an owner no other file governs: "
        f"{tmp_path / 'a.yml'}:2 already governs owner id 1; keep one policy file per owner"
    ]


def test_every_file_s_problems_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(whole("version: 2\nowner: {login: a, id: 1}\n"))
    (tmp_path / "b.yml").write_text(whole("version: 1\nowner: {login: b, id: 2}\nrules: [\n"))
    (tmp_path / "c.yml").write_text(whole("version: 1\nowner: {login: c, id: 3}\n"))
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    assert info.value.message == "2 policy problems in 2 files"
    assert [(p.path.rsplit("/", 1)[-1], p.line) for p in info.value.problems] == [("a.yml", 1), ("b.yml", 4)]
    survey = survey_policies(tmp_path)
    assert [p.policy.owner.login for p in survey.loaded] == ["c"] and len(survey.files) == 3


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda d: d / "missing", "no such file or directory; check GATE_POLICY_PATH", id="missing"
        ),
        pytest.param(lambda d: d, "the directory holds no *.yml or *.yaml policy file", id="empty-directory"),
    ],
)
def test_a_path_without_policies_is_an_error(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    with pytest.raises(PolicyError) as info:
        load_policies(make(tmp_path))
    assert info.value.problems[0].message == expected


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "acme.yml").write_bytes(HEADER.encode() + b"description: caf\xe9\n")
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    assert (
        info.value.problems[0].render()
        == f"{tmp_path / 'acme.yml'}:3: not UTF-8 text; save the file as UTF-8"
    )


def test_the_digest_covers_names_and_contents_and_nothing_else(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for directory in (one, two):
        directory.mkdir()
        (directory / "acme.yml").write_text(whole(HEADER))
    first = load_policies(one).digest
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert load_policies(two).digest == first, "the same files elsewhere: the same digest"
    (two / "acme.yml").write_text(whole(HEADER + "description: changed\n"))
    assert load_policies(two).digest != first
    (two / "acme.yml").rename(two / "renamed.yml")
    (two / "renamed.yml").write_text(whole(HEADER))
    assert load_policies(two).digest != first, "the file name is part of the digest"


def test_the_shipped_example_is_valid() -> None:
    from tests.policy.test_validate import REPO

    policies = load_policies(REPO / "policies")
    assert list(policies.by_owner) == [1000]
    loaded = policies.by_owner[1000]
    assert {r.name for r in loaded.rules_for("deploy")} == {"deploy-staging", "deploy-production"}
    assert loaded.catalog["rotate-credentials"].permission == "execute"


def test_parse_policy_text_names_its_source() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text("version: 1\n")
    assert info.value.problems[0].path == "<string>"
