"""policies/schema.json: generated from the models, current, and agreeing with the loader."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.errors import PolicyError
from app.policy.loader import parse_policy_text
from app.policy.validate import REGENERATE, policy_json_schema
from tests.builders import whole

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "policies" / "schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_json_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == policy_json_schema(), (
        f"policies/schema.json is stale; regenerate it with: {REGENERATE}"
    )


def test_the_schema_identifies_itself() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/policy-v1.json") and schema["title"] == "agent-gate policy"
    assert REGENERATE in schema["$comment"]


def test_the_schema_offers_no_null_the_loader_would_refuse() -> None:
    text = json.dumps(policy_json_schema())
    assert '"null"' not in text and '"default": null' not in text


def test_the_example_policy_validates_against_the_schema(validator: jsonschema.Draft202012Validator) -> None:
    document = yaml.safe_load((REPO / "policies" / "example.yml").read_text())
    assert list(validator.iter_errors(document)) == []


BASE: dict[str, Any] = {"version": 1, "owner": {"login": "acme", "id": 1}}
RULE: dict[str, Any] = {"name": "r", "actions": ["deploy"], "repositories": "*"}


def with_rule(**fields: Any) -> dict[str, Any]:
    return {**BASE, "rules": [{**RULE, **fields}]}


# Documents both the schema (in an editor) and the loader (in the gate) must refuse.
REFUSED = [
    pytest.param({"owner": {"login": "acme", "id": 1}}, id="no-version"),
    pytest.param({**BASE, "version": 2}, id="unknown-version"),
    pytest.param({**BASE, "owner": {"login": "acme"}}, id="owner-without-id"),
    pytest.param({**BASE, "extra": 1}, id="unknown-top-level-field"),
    pytest.param(with_rule(aprovals={"count": 1}), id="unknown-rule-field"),
    pytest.param(with_rule(approvals={"count": "1"}), id="count-as-text"),
    pytest.param(with_rule(approvals={"count": 11}), id="count-too-high"),
    pytest.param(with_rule(approvals={"sources": []}), id="no-approval-source"),
    pytest.param(with_rule(refs=[]), id="empty-condition"),
    pytest.param(with_rule(refs=[True]), id="boolean-ref"),
    pytest.param(with_rule(refs=[{"patern": "x"}]), id="misspelt-pattern"),
    pytest.param(with_rule(repositories="all"), id="repositories-not-star"),
    pytest.param(with_rule(repositories=[]), id="no-repositories"),
    pytest.param(with_rule(repositories=[{"id": 2}]), id="repository-without-name"),
    pytest.param(with_rule(runner_environments=["mars"]), id="unknown-runner"),
    pytest.param(with_rule(name="Not A Slug"), id="rule-name-not-a-slug"),
    pytest.param(with_rule(workflows=[{"ref": "x", "sha": "abc"}]), id="short-sha"),
    pytest.param(with_rule(github_permissions={"contents": "admin"}), id="permission-level"),
    pytest.param(with_rule(grant={"ttl": 7200}), id="grant-too-long"),
    pytest.param(
        {**BASE, "actions": {"x": {"permission": "propose", "approval": True}}}, id="approval-not-execute"
    ),
    pytest.param({**BASE, "agents": {"ai": [{"name": "nameless"}]}}, id="agent-without-login-or-id"),
    pytest.param(with_rule(owners=["octocat"]), id="owner-without-at"),
    pytest.param(with_rule(owners=["@acme/Security Team"]), id="owner-team-not-a-slug"),
    pytest.param(with_rule(owners=[]), id="no-owners"),
    pytest.param(with_rule(mode="dry-run"), id="unknown-rule-mode"),
    pytest.param({**BASE, "mode": True}, id="policy-mode-boolean"),
    pytest.param({**BASE, "break_glass": {"invokers": []}}, id="break-glass-without-invokers"),
    pytest.param(
        {**BASE, "break_glass": {"invokers": ["@sre"], "max_minutes": 600}}, id="break-glass-too-long"
    ),
    pytest.param({**BASE, "break_glass": {"invokers": ["@bot[bot]"]}}, id="break-glass-bot-account"),
]


@pytest.mark.parametrize("document", REFUSED)
def test_the_schema_and_the_loader_refuse_the_same_shapes(
    validator: jsonschema.Draft202012Validator, document: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(document)) != [], "the schema accepts it"
    with pytest.raises(PolicyError):
        parse_policy_text(json.dumps(document), "p.json")


ACCEPTED = [
    pytest.param(BASE, id="minimal"),
    pytest.param(with_rule(refs=["refs/heads/main", {"pattern": "refs/tags/v.*"}]), id="matchers"),
    pytest.param(
        with_rule(repositories=[{"id": 2, "name": "acme/api"}, {"name_pattern": "acme/.*"}]),
        id="repositories",
    ),
    pytest.param({**BASE, "agents": {"ai": [{"id": 5}], "bots": [{"login": "x[bot]"}]}}, id="agents"),
    pytest.param(
        {**BASE, "actions": {"sign": {"permission": "execute", "approval": True}}}, id="approval-action"
    ),
    pytest.param(
        {
            **BASE,
            "owners": ["@acme/platform"],
            "mode": "audit",
            "break_glass": {"invokers": ["@acme/sre", "@octocat"], "confirm": False, "max_minutes": 30},
            "rules": [
                {
                    **RULE,
                    "owners": ["@octocat"],
                    "mode": "enforce",
                    "repositories": [{"id": 2, "name": "acme/api", "owners": ["@acme/api"]}],
                    "workflows": [
                        {"ref": "acme/api/.github/workflows/d.yml@refs/heads/main", "owners": ["@a"]}
                    ],
                }
            ],
        },
        id="governance-fields",
    ),
]


@pytest.mark.parametrize("document", ACCEPTED)
def test_the_schema_and_the_loader_accept_the_same_shapes(
    validator: jsonschema.Draft202012Validator, document: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(document)) == []
    parse_policy_text(whole(json.dumps(document)), "p.json")


def _doc_examples() -> list[Any]:
    text = (REPO / "docs" / "policy.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/policy.md has YAML examples"
    return [pytest.param(block, id=f"block-{i}") for i, block in enumerate(blocks, 1)]


@pytest.mark.parametrize("block", _doc_examples())
def test_every_yaml_example_in_the_docs_is_valid(
    validator: jsonschema.Draft202012Validator, block: str
) -> None:
    """Whole policies load as they are; rule fragments (``- name: ...``) load under a header."""
    if not block.lstrip().startswith("version:"):
        block = "version: 1\nowner: {login: acme, id: 1}\nrules:\n" + textwrap.indent(block, "  ")
    loaded = parse_policy_text(whole(block), "docs/policy.md")
    assert list(validator.iter_errors(yaml.safe_load(block))) == []
    assert loaded.policy.owner.id > 0


def test_the_docs_list_every_builtin_action_and_agent() -> None:
    from app.policy.schema import BUILTIN_ACTIONS

    docs = (REPO / "docs" / "policy.md").read_text()
    builtin = yaml.safe_load((REPO / "app" / "data" / "agents.yml").read_text())
    names = [f"`{a}`" for a in BUILTIN_ACTIONS]
    names += [f"`{e['login']}`" for section in ("ai_agents", "bots") for e in builtin[section]]
    names += [f"`{e['email']}`" for e in builtin["agent_emails"]]
    names += [f"`{b['prefix']}`" for b in builtin["branch_prefixes"]]
    assert [n for n in names if n not in docs] == [], "docs/policy.md: update the built-in lists"
