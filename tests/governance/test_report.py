"""agent-gate audit report: what rules in audit mode would have denied, by rule and repository; and
the grant ledger the inventory's grants_held comes from."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.governance.history import read
from app.store.base import AuditRecord
from tests.conftest import TEST_POLICY
from tests.governance.policies import write_policy


def _would_deny_twice_then_allow(policy_file: Path, ask: Callable[..., Any]) -> None:
    write_policy(policy_file, TEST_POLICY.replace("rules:\n", "mode: audit\nrules:\n", 1))
    for ref in ("refs/heads/dev", "refs/heads/feature"):
        response = ask({"action": "deploy", "environment": "staging"}, ref=ref, environment="staging")
        assert response.get_json()["would_deny"] is True
    assert ask({"action": "deploy"}, environment="staging").get_json()["would_deny"] is False


def test_the_report_groups_would_deny_by_rule_and_repository(
    app: Any, policy_file: Path, ask: Callable[..., Any], settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _would_deny_twice_then_allow(policy_file, ask)
    assert main(["audit", "report", "--database", settings.database_url, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["decisions"], report["would_deny"]) == (3, 2)
    [row] = report["by_rule_and_repository"]
    assert (row["rule"], row["repository"], row["would_deny"]) == ("deploy-staging", "octo-org/octo-repo", 2)
    assert {r["reason"]: r["count"] for r in row["reasons"]}[
        "no rule allows deploy; closest is 'deploy-staging'"
    ] == 2
    assert {r["reason"] for r in row["reasons"]} >= {
        "ref: got refs/heads/dev, expected refs/heads/main",
        "ref: got refs/heads/feature, expected refs/heads/main",
    }
    assert main(["audit", "report", "--database", settings.database_url]) == 0
    text = capsys.readouterr().out
    assert text.startswith(
        "audit mode since the beginning of the log: 2 of 3 decision(s) would have been denied"
    )
    assert "  rule deploy-staging on octo-org/octo-repo: 2 would deny" in text


def test_since_leaves_out_earlier_decisions(
    app: Any, policy_file: Path, ask: Callable[..., Any], settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _would_deny_twice_then_allow(policy_file, ask)
    assert (
        main(["audit", "report", "--database", settings.database_url, "--since", "2999-01-01T00:00:00Z"]) == 0
    )
    out = capsys.readouterr().out
    assert "0 of 0 decision(s)" in out and "can be enforced" in out


def _record(seq: int, kind: str, **payload: Any) -> AuditRecord:
    return AuditRecord(seq, datetime(2026, 11, 1, tzinfo=UTC), kind, payload, "0" * 64, "0" * 64)


def test_grants_held_are_issued_neither_revoked_nor_expired() -> None:
    _, ledger = read(
        [
            _record(1, "grant-issued", jti="gr_live", decision_id="dec_a", expires_at=2000),
            _record(2, "grant-issued", jti="gr_revoked", decision_id="dec_a", expires_at=2000),
            _record(3, "grant-issued", jti="gr_expired", decision_id="dec_b", expires_at=900),
            _record(4, "grant-revoked", jti="gr_revoked", reason="job finished", decision_id="dec_a"),
        ]
    )
    assert ledger.held(1000) == {"dec_a": ["gr_live"]}
