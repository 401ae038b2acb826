"""Policy files: validated, indexed, and every problem named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from app.errors import PolicyError
from app.policy.check import policy_json_schema
from app.policy.loader import load_policies, parse_policy_text

REPO = Path(__file__).resolve().parents[2]
HEADER = "version: 1\nowner: {login: acme, id: 1}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, "p.yml")
    return [p.render() for p in info.value.problems]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "rules:\n  - name: r\n    actions: [read]\n    repositories: '*'\n    aprovals: {count: 1}\n",
            "p.yml:7: rules[0].aprovals: unknown field 'aprovals' (did you mean 'approvals'?)",
        ),
        (
            "rules:\n  - name: r\n    actions: [read]\n    repositories: '*'\n    approvals: {count: sometimes}\n",
            "p.yml:7: rules[0].approvals.count: got 'sometimes'",
        ),
        (
            "rules:\n  - name: r\n    actions: [read]\n    repositories: '*'\n    refs: [{pattern: '('}]\n",
            "p.yml:7: rules[0].refs[0].pattern: got '(': not a valid regular expression",
        ),
        (
            "rules:\n  - name: r\n    actions: [launch-missiles]\n    repositories: '*'\n",
            "unknown action 'launch-missiles'; expected one of",
        ),
        (
            "rules:\n  - {name: r, actions: [read], repositories: '*'}\n  - {name: r, actions: [read], repositories: '*'}\n",
            "rule name 'r' is used twice",
        ),
        (
            "rules:\n  - name: r\n    name: s\n    actions: [read]\n    repositories: '*'\n",
            "p.yml:5: rules[0].name: duplicate key 'name' (first at line 4)",
        ),
        ("actions:\n  deploy: {permission: read}\n", "a policy may raise its class, not lower it to read"),
        (
            "rules:\n  - name: r\n    actions: [deploy]\n    repositories: '*'\n    refs: []\n",
            "p.yml:7: rules[0].refs: got []: an empty list matches nothing",
        ),
        (
            "rules:\n  - name: r\n    actions: [deploy]\n    repositories: []\n",
            "list at least one repository",
        ),
        (
            "rules:\n  - name: r\n    actions: [deploy]\n    repositories: '*'\n    runner_environments: [mars]\n",
            "p.yml:7: rules[0].runner_environments[0]: got 'mars'",
        ),
        (
            "rules:\n  - name: r\n    actions: [read]\n",
            "p.yml:4: rules[0].repositories: required field is missing",
        ),
        ("rules: [\n", "p.yml:4: YAML syntax error"),
    ],
    ids=[
        "misspelt-field",
        "wrong-type",
        "bad-regex",
        "unknown-action",
        "duplicate-rule-name",
        "duplicate-key",
        "lowering-a-builtin-class",
        "empty-list",
        "empty-repositories",
        "bad-enum",
        "missing-field",
        "yaml-syntax",
    ],
)
def test_errors_name_file_line_field_found_and_expected(body, expected):
    found = problems(HEADER + body)
    assert any(expected in p for p in found), found


def test_owner_must_be_pinned_by_id():
    assert any(
        "owner.id: required field is missing" in p for p in problems("version: 1\nowner: {login: acme}\n")
    )


def test_boolean_yaml_is_not_silently_a_string():
    found = problems(
        HEADER + "rules:\n  - name: r\n    actions: [read]\n    repositories: '*'\n    events: [yes]\n"
    )
    assert any("rules[0].events[0]" in p for p in found), found


def test_rules_are_indexed_by_action_in_file_order():
    loaded = parse_policy_text(
        HEADER + "rules:\n  - {name: a, actions: [read, deploy], repositories: '*'}\n"
        "  - {name: b, actions: [deploy], repositories: '*'}\n",
        "p.yml",
    )
    assert [r.name for r in loaded.rules_for("deploy")] == ["a", "b"]
    assert loaded.rules_for("merge") == []
    assert loaded.line_of("b") == 5


def test_two_files_for_one_owner_are_refused(tmp_path):
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text(HEADER)
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    assert "owner id 1 is already governed by" in info.value.problems[0].render()


def test_digest_changes_with_content(tmp_path):
    (tmp_path / "a.yml").write_text(HEADER)
    first = load_policies(tmp_path).digest
    (tmp_path / "a.yml").write_text(HEADER + "description: changed\n")
    assert load_policies(tmp_path).digest != first and first.startswith("sha256:")


def test_the_shipped_example_is_valid_and_matches_its_schema():
    policies = load_policies(REPO / "policies")
    assert 1000 in policies.by_owner
    schema = json.loads((REPO / "policies" / "schema.json").read_text())
    document = yaml.safe_load((REPO / "policies" / "example.yml").read_text())
    jsonschema.validate(document, schema)


def test_schema_json_is_current():
    current = json.loads((REPO / "policies" / "schema.json").read_text())
    assert current == policy_json_schema(), (
        "regenerate with: agent-gate policy schema -o policies/schema.json"
    )
