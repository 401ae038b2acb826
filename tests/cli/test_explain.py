"""``agent-gate explain`` offline: the decision from claims and evidence files, bad input without a trace."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from tests.builders import HEAD, claims


@pytest.mark.parametrize(
    ("who", "action", "extra", "code", "expected"),
    [
        ({"actor": "Copilot", "actor_id": "198982749"}, "read", [], 0, "Allowed: read"),
        (
            {
                "actor": "Copilot",
                "actor_id": "198982749",
                "environment": "production",
                "event_name": "workflow_dispatch",
            },
            "deploy",
            [],
            3,
            "Blocked: agent change needs an independent human approval",
        ),
    ],
    ids=["agent-read", "agent-deploy"],
)
def test_explain_prints_the_decision(tmp_path, capsys, who, action, extra, code, expected):
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims(**who)))
    assert main(["explain", "--claims", str(claims_file), "--action", action, *extra]) == code
    assert expected in capsys.readouterr().out


def test_explain_with_an_evidence_file_answers_what_if(tmp_path, capsys):
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims(environment="production", event_name="workflow_dispatch")))
    evidence = {
        "pull_request": {
            "number": 12,
            "author": {"login": "Copilot", "id": 198982749, "type": "Bot"},
            "head_sha": HEAD,
            "head_ref": "copilot/fix",
            "base_ref": "main",
            "state": "closed",
            "merged": True,
            "merge_commit_sha": HEAD,
            "commits": [],
        },
        "reviews": [
            {"id": 1, "reviewer": {"login": "bob", "id": 1002}, "state": "APPROVED", "commit_id": HEAD}
        ],
        "standings": {"bob": {"permission": "write", "teams": ["release-managers"]}},
    }
    evidence_file = tmp_path / "evidence.json"
    evidence_file.write_text(json.dumps(evidence))
    code = main(
        [
            "explain",
            "--claims",
            str(claims_file),
            "--action",
            "deploy",
            "--evidence",
            str(evidence_file),
            "--format",
            "json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["decision"]["reasons"]
    assert out["decision"]["approvals"][0]["counted"] is True
    assert out["explanation"]["title"].startswith("Allowed")


def test_explain_reports_bad_input_without_a_trace(tmp_path, capsys):
    claims_file = tmp_path / "claims.json"
    claims_file.write_text("{not json")
    assert main(["explain", "--claims", str(claims_file), "--action", "read"]) == 1
    err = capsys.readouterr().err
    assert "is not valid JSON" in err and "Traceback" not in err


def test_explain_outside_a_checkout_uses_the_packaged_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATE_POLICY_PATH")
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims(actor="Copilot", actor_id="198982749")))
    assert main(["explain", "--claims", str(claims_file), "--action", "read"]) == 0
    captured = capsys.readouterr()
    assert "Allowed: read" in captured.out
    assert "using the example policy shipped with the package" in captured.err
