"""Audit mode through POST /v1/decisions: a would-deny is a 200 without credentials, recorded as such."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from tests.conftest import TEST_POLICY
from tests.governance.policies import write_policy


def _audit(policy_file: Path) -> None:
    text = TEST_POLICY.replace("rules:\n", "mode: audit\nrules:\n", 1)
    text = text.replace(
        "    environments: [staging]\n", "    environments: [staging]\n    grant: {required: true}\n"
    )
    write_policy(policy_file, text)


def test_a_deny_under_audit_mode_is_answered_200_marked_would_deny_without_a_grant(
    app: Flask, policy_file: Path, ask: Callable[..., Any]
) -> None:
    _audit(policy_file)
    response = ask(
        {"action": "deploy", "environment": "staging"}, ref="refs/heads/dev", environment="staging"
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["allowed"] is True and body["would_deny"] is True
    assert body["rule"] == "deploy-staging"
    assert any(r["message"] == "ref: got refs/heads/dev, expected refs/heads/main" for r in body["reasons"])
    assert "grant" not in body and "github_token" not in body
    store = app.extensions["agent_gate"].store
    [record] = [r for r in store.iter_audit() if r.kind == "decision"]
    assert record.payload["would_deny"] is True
    assert store.get_decision(body["decision_id"])["would_deny"] is True


def test_the_same_workload_is_denied_once_the_policy_enforces(
    policy_file: Path, ask: Callable[..., Any]
) -> None:
    response = ask(
        {"action": "deploy", "environment": "staging"}, ref="refs/heads/dev", environment="staging"
    )
    assert response.status_code == 403
    assert response.get_json()["would_deny"] is False


def test_an_agent_is_never_let_through_by_audit_mode(policy_file: Path, ask: Callable[..., Any]) -> None:
    _audit(policy_file)
    response = ask({"action": "deploy", "environment": "production"}, agent=True, environment="production")
    assert response.status_code == 403
    assert response.get_json()["would_deny"] is False
