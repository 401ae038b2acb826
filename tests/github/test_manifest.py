"""The App manifest: exactly the permissions and events the gate uses, in GitHub's own names."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from app.github.manifest import EVENTS, PERMISSIONS, app_manifest
from tests.fake_github import extract

DOC = Path(__file__).parents[2] / "docs" / "github-app-manifest.json"


def test_the_documented_manifest_is_the_one_the_gate_builds():
    assert json.loads(DOC.read_text()) == app_manifest("https://agent-gate.example.com")


def test_the_permissions_are_exactly_what_the_gate_uses():
    assert PERMISSIONS == {
        "actions": "read",
        "checks": "write",
        "contents": "read",
        "deployments": "write",
        "members": "read",
        "merge_queues": "read",
        "metadata": "read",
        "pull_requests": "read",
    }
    forbidden = {"administration", "secrets", "workflows"}
    assert not forbidden & set(PERMISSIONS), "never needed; an agent's grant can never include them"


def test_every_permission_is_a_name_and_level_github_knows():
    # GitHub's description of the permissions object (the same names and levels as an App's).
    schema = extract()["operations"]["apps/create-installation-access-token"]["request_schema"]
    jsonschema.validate({"permissions": PERMISSIONS}, schema)
    known = schema["properties"]["permissions"]["properties"]
    assert set(PERMISSIONS) <= set(known)


def test_every_event_is_a_webhook_github_sends():
    webhooks = set(extract()["webhooks"])
    assert set(EVENTS) == {
        "pull_request",
        "pull_request_review",
        "check_run",
        "check_suite",
        "deployment_protection_rule",
        "deployment_review",
        "merge_group",
    }
    for event in EVENTS:
        prefix = event.replace("_", "-") + "-"
        assert any(name.startswith(prefix) for name in webhooks), event


def test_the_urls_follow_the_public_url():
    manifest = app_manifest("https://gate.example.org/")
    assert manifest["hook_attributes"] == {
        "url": "https://gate.example.org/v1/github/webhook",
        "active": True,
    }
    assert manifest["redirect_url"] == "https://gate.example.org/setup/complete"
    assert manifest["callback_urls"] == ["https://gate.example.org/login/callback"]
    assert manifest["public"] is False
