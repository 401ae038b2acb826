"""``agent-gate audit export --format ocsf``: every audit record as an OCSF 1.8.0 event that the
published schema accepts (validated with ocsf-lib's compiled schema), traceable to its chain link."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.cli import main
from app.governance.ocsf import OCSF_VERSION, to_ocsf
from app.store.base import AuditRecord
from tests.conftest import TEST_POLICY
from tests.governance.ocsf_schema import fixture, problems
from tests.governance.policies import write_policy

HASH, PREV = "a" * 64, "b" * 64
SUBJECT = {"actor": "octocat", "actor_id": 583231, "repository": "octo-org/octo-repo", "repository_id": 2000,
           "sha": "e5a8f2c1d3b4a5968778695a4b3c2d1e0f9a8b7c", "ref": "refs/heads/main", "run_id": 9000,
           "environment": "production", "agent": False, "agent_signals": []}  # fmt: skip


def _record(kind: str, **payload: Any) -> AuditRecord:
    return AuditRecord(7, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), kind, payload, PREV, HASH)


def _decision(**overrides: Any) -> dict[str, Any]:
    decision = {"decision_id": "dec_1", "action": "deploy", "permission": "execute", "allowed": True,
                "would_deny": False, "rule": "deploy-production", "policy_digest": "sha256:" + "c" * 64,
                "request_id": "req_1", "subject": SUBJECT, "reasons": [], "approvals": []}  # fmt: skip
    return {**decision, **overrides}


def ocsf(record: AuditRecord) -> dict[str, Any]:
    event = to_ocsf(record, product_version="1.2.3")
    assert problems(event) == [], json.dumps(event, indent=1)
    return event


# --- the validator itself refuses what the schema refuses -----------------------------------------------

VALID = to_ocsf(_record("decision", **_decision()), product_version="1.2.3")
BROKEN = [
    pytest.param({"class_uid": 1}, "class_uid 1 is none of", id="unknown-class"),
    pytest.param({"api": None}, "api: expected a api object", id="object-of-wrong-type"),
    pytest.param({"api": {"service": {"name": "x"}}}, "required attribute operation is missing", id="object-required"),
    pytest.param({"severity_id": 7}, "7 is not one of", id="enum-value-outside"),
    pytest.param({"severity_id": "1"}, "expected integer_t", id="scalar-of-wrong-type"),
    pytest.param({"activity_id": True}, "expected integer_t", id="a-bool-is-no-integer"),
    pytest.param({"privileges": ["read"]}, "api_activity: no attribute privileges", id="attribute-of-another-class"),
    pytest.param({"resources": {"name": "x"}}, "expected an array", id="array-expected"),
    pytest.param({"src_endpoint": {"port": 1}}, "needs at least one of name, uid", id="at-least-one"),
    pytest.param({"type_uid": 600301}, "type_uid 600301 is not class_uid * 100 + activity_id", id="type-uid"),
    pytest.param({"actor": {"user": {"name": "x", "color": "red"}}}, "a user has no attribute color", id="unknown-nested"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "problem"), BROKEN)
def test_the_validator_refuses(change: dict[str, Any], problem: str) -> None:
    assert problems(VALID) == []
    found = problems({**VALID, **change})
    assert any(problem in p for p in found), found


def test_the_validator_requires_the_classes_required_attributes() -> None:
    event = {k: v for k, v in VALID.items() if k != "actor"}
    assert problems(event) == ["api_activity: required attribute actor is missing"]
    with_osint = {**VALID, "metadata": {**VALID["metadata"], "profiles": ["osint"]}}
    assert problems(with_osint) == ["api_activity: required attribute osint is missing"]


def test_the_fixture_says_where_it_came_from() -> None:
    source = fixture()["source"]
    assert (source["version"], source["commit"]) == (OCSF_VERSION, "3dcb905d26523ce4d5d0ba3c28c8507e2c859407")
    assert source["compiled_by"].startswith("ocsf-lib ")


# --- the mapping, record kind by record kind --------------------------------------------------------------

VERDICTS = [
    pytest.param({}, (1, 1, 1, 1), id="allowed"),
    pytest.param({"allowed": False, "reasons": [{"code": "approvals", "ok": False, "message": "needs 1"}]},
                 (2, 2, 2, 2), id="denied"),
    pytest.param({"would_deny": True}, (1, 17, 1, 2), id="audit-mode-would-deny"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "expected"), VERDICTS)
def test_a_decision_is_api_activity_with_its_verdict(
    change: dict[str, Any], expected: tuple[int, ...]
) -> None:
    event = ocsf(_record("decision", **_decision(**change)))
    assert (event["class_uid"], event["category_uid"], event["type_uid"]) == (6003, 6, 600399)
    assert (event["action_id"], event["disposition_id"], event["status_id"], event["severity_id"]) == expected
    assert event["api"]["operation"] == "deploy" and event["api"]["request"] == {"uid": "req_1"}
    assert event["policy"] == {"name": "deploy-production", "uid": "sha256:" + "c" * 64}
    assert event["actor"]["user"] == {"name": "octocat", "uid": "583231"}
    assert {"type": "repository", "name": "octo-org/octo-repo", "uid": "2000"} in event["resources"]
    assert event["metadata"]["correlation_uid"] == "dec_1"
    if not change.get("allowed", True):
        assert event["status_detail"] == "needs 1"


@pytest.mark.parametrize(
    ("permission", "activity"), [("read", 2), ("propose", 1), ("execute", 99), ("nonsense", 99)]
)
def test_the_activity_follows_the_permission(permission: str, activity: int) -> None:
    assert ocsf(_record("merge-check", **_decision(permission=permission)))["activity_id"] == activity


def test_every_event_names_its_chain_link() -> None:
    event = ocsf(_record("decision", **_decision()))
    assert (event["metadata"]["sequence"], event["metadata"]["uid"]) == (7, HASH)
    assert event["unmapped"]["audit"] == {"seq": 7, "kind": "decision", "hash": HASH, "prev_hash": PREV}
    assert event["time"] == int(datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    assert event["metadata"]["version"] == "1.8.0" and event["metadata"]["product"]["version"] == "1.2.3"


KINDS = [
    pytest.param("grant-issued", {"jti": "gr_1", "decision_id": "dec_1", "audience": "deploy:staging",
                                  "permission": "execute", "expires_at": 1796349972, "repository_id": 2000,
                                  "run_id": 9000}, (3003, 1), id="grant-issued"),
    pytest.param("grant-revoked", {"jti": "gr_1", "reason": "job finished", "decision_id": "dec_1"}, (3004, 11),
                 id="grant-revoked"),
    pytest.param("break-glass-requested", {"id": "bg_1", "justification": "INC-1"}, (3004, 1), id="break-glass"),
    pytest.param("break-glass-used", {"id": "bg_1"}, (3004, 3), id="break-glass-used"),
    pytest.param("token-refused", {"code": "expired"}, (6003, 99), id="any-other-kind"),
    pytest.param("decision", {"decision_id": 5}, (6003, 99), id="a-decision-without-its-id"),
    pytest.param("decision", {"decision_id": "dec_x", "subject": "not an object", "reasons": None}, (6003, 99),
                 id="a-decision-missing-its-parts"),
    pytest.param("grant-issued", {}, (3003, 1), id="an-empty-grant"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "payload", "expected"), KINDS)
def test_every_kind_maps_to_a_valid_event(
    kind: str, payload: dict[str, Any], expected: tuple[int, int]
) -> None:
    event = ocsf(_record(kind, **payload))
    assert (event["class_uid"], event["activity_id"]) == expected


def test_a_grant_is_a_session_with_its_privileges() -> None:
    event = ocsf(_record("grant-issued", jti="gr_1", decision_id="dec_1", audience="deploy:staging",
                         permission="execute", expires_at=1796349972, repository_id=2000, run_id=9000))  # fmt: skip
    assert event["session"] == {"uid": "gr_1", "issuer": "agent-gate", "expiration_time": 1796349972000}
    assert event["privileges"] == ["execute", "deploy:staging"]
    assert event["user"]["uid"] == "repository:2000/run:9000"


# --- end to end: the CLI exports what the gate recorded ---------------------------------------------------

POLICY = TEST_POLICY + "break_glass: {invokers: ['@octocat', '@alice'], confirm: false, max_minutes: 30}\n"


def test_the_export_of_a_real_store_validates_line_by_line(
    app: Flask, client: FlaskClient, mint: Callable[..., str], ask: Callable[..., Any], settings: Any,
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    write_policy(policy_file, POLICY)
    assert ask({"action": "read"}).status_code == 200
    assert ask({"action": "deploy", "environment": "production"}, environment="production").status_code == 403
    granted = ask(
        {"action": "deploy", "environment": "staging", "grant": True}, environment="staging"
    ).get_json()
    grant = granted["grant"]["token"]
    revoked = client.post("/v1/grants/revoke", json={}, headers={"Authorization": f"Bearer {grant}"})
    assert revoked.status_code == 200
    glass = client.post(
        "/v1/break-glass",
        json={"action": "deploy", "minutes": 15, "justification": "INC-42: production is down"},
        headers={"Authorization": f"Bearer {mint()}"},
    )
    assert glass.status_code == 201, glass.get_json()
    refused = client.post("/v1/decisions", json={"action": "read"}, headers={"Authorization": "Bearer x.y.z"})
    assert refused.status_code == 401

    out = tmp_path / "events.jsonl"
    assert (
        main(["audit", "export", "--database", settings.database_url, "--format", "ocsf", "-o", str(out)])
        == 0
    )
    events = [json.loads(line) for line in out.read_text().splitlines()]
    chain = list(app.extensions["agent_gate"].store.iter_audit())
    assert len(events) == len(chain) >= 7
    for event, record in zip(events, chain, strict=True):
        assert problems(event) == [], event
        assert (event["metadata"]["sequence"], event["metadata"]["uid"]) == (record.seq, record.hash)
    classes = [(e["metadata"]["event_code"], e["class_uid"]) for e in events]
    assert ("decision", 6003) in classes and ("grant-issued", 3003) in classes
    assert ("grant-revoked", 3004) in classes and ("break-glass-requested", 3004) in classes
    verdicts = [e["action"] for e in events if e["metadata"]["event_code"] == "decision"]
    assert verdicts[:3] == ["Allowed", "Denied", "Allowed"]
    assert "exported" in capsys.readouterr().err
    # The default export is still the chain itself, which re-verifies.
    assert (
        main(["audit", "export", "--database", settings.database_url, "-o", str(tmp_path / "chain.jsonl")])
        == 0
    )
    assert main(["audit", "verify", "--file", str(tmp_path / "chain.jsonl")]) == 0
