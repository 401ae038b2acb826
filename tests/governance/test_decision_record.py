"""One decision record: agent-gate audit show and the decision page answer who approved, why, what
was attempted and what its grants were used for (revocations), and whether the saved record still
matches its entry in the audit chain."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.cli import main
from app.store.opener import open_store
from tests.conftest import TEST_POLICY
from tests.governance.policies import write_policy


@pytest.fixture
def granted(policy_file: Path, client: FlaskClient, ask: Callable[..., Any]) -> dict[str, Any]:
    """A deploy to staging with a grant, the grant then revoked by its holder."""
    write_policy(
        policy_file,
        TEST_POLICY.replace(
            "    environments: [staging]\n", "    environments: [staging]\n    grant: {}\n", 1
        ),
    )
    body = ask({"action": "deploy", "grant": True}, environment="staging").get_json()
    assert body["allowed"] is True and body["grant"]["jti"], body
    grant = body["grant"]["token"]
    revoked = client.post(
        "/v1/grants/revoke", json={"reason": "job finished"}, headers={"Authorization": f"Bearer {grant}"}
    )
    assert revoked.status_code == 200, revoked.get_json()
    return body


def _show(
    settings: Any, capsys: pytest.CaptureFixture[str], decision_id: str, *extra: str
) -> tuple[int, str]:
    code = main(["audit", "show", decision_id, "--database", settings.database_url, *extra])
    return code, capsys.readouterr().out


def test_audit_show_answers_the_four_questions(
    granted: dict[str, Any], settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _show(settings, capsys, granted["decision_id"], "--format", "json")
    record = json.loads(out)
    assert code == 0
    assert record["decision"]["rule"] == "deploy-staging" and record["decision"]["policy_digest"]
    [grant] = record["grants"]
    assert grant["jti"] == granted["grant"]["jti"] and grant["revoked"]["reason"] == "job finished"
    assert record["integrity"]["matches"] is True and record["integrity"]["audit_kind"] == "decision"
    code, text = _show(settings, capsys, granted["decision_id"])
    assert code == 0
    assert "why: rule deploy-staging, policy sha256:" in text
    assert "who approved: nobody" in text
    assert f"{grant['jti']} for deploy:staging; revoked" in text and "job finished" in text
    assert text.rstrip().endswith("record: ok: the saved record matches its audit entry")


def test_a_tampered_saved_record_is_shown_as_a_mismatch(
    app: Flask,
    client: FlaskClient,
    granted: dict[str, Any],
    settings: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    decision_id = granted["decision_id"]
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute(
            "SELECT record FROM decisions WHERE decision_id = ?", (decision_id,)
        ).fetchone()
        forged = json.loads(text) | {"rule": "deploy-production"}
        conn.execute(
            "UPDATE decisions SET record = ? WHERE decision_id = ?", (json.dumps(forged), decision_id)
        )
    code, out = _show(settings, capsys, decision_id)
    assert code == 1
    assert "record: MISMATCH: the saved record differs from its audit entry in: rule" in out
    page = client.get(f"/decisions/{decision_id}").get_data(as_text=True)
    assert "the saved record differs from its audit entry in: rule" in page


def test_the_page_shows_grants_revocations_and_integrity(
    client: FlaskClient, granted: dict[str, Any]
) -> None:
    page = client.get(f"/decisions/{granted['decision_id']}").get_data(as_text=True)
    assert granted["grant"]["jti"] in page and "revoked" in page and "job finished" in page
    assert "the saved record matches its audit entry" in page
    assert granted["grant"]["token"] not in page


def test_an_unknown_decision(settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    open_store(settings.database_url).close()  # audit commands never create a store
    assert main(["audit", "show", "dec_nothing", "--database", settings.database_url]) == 1
    assert "no decision dec_nothing in the store" in capsys.readouterr().err
