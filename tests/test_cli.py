"""The agent-gate command: dev tokens, explain, audit verify/export, policy check, help."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import jwt
import pytest

from app.cli import main
from app.store.sqlite import SQLiteStore
from app.tokens.devissuer import DEV_ISSUER_URL
from tests.builders import HEAD, claims

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GATE_POLICY_PATH", str(REPO / "policies"))
    return tmp_path / "var"


def test_dev_token_is_github_shaped(capsys):
    assert main(["dev", "token", "--agent", "--environment", "production"]) == 0
    token = capsys.readouterr().out.strip()
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == DEV_ISSUER_URL and payload["aud"] == "agent-gate"
    assert payload["actor"] == "Copilot" and payload["actor_id"] == "198982749"
    assert payload["repository_id"] == "2000" and payload["environment"] == "production"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_dev_token_rejects_bad_claim_syntax(capsys):
    assert main(["dev", "token", "--claim", "novalue"]) == 1
    assert "--claim expects NAME=VALUE" in capsys.readouterr().err


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


def test_audit_verify_passes_then_fails_after_an_edit(data_dir, capsys):
    db = data_dir / "agent-gate.db"
    store = SQLiteStore(db)
    for i in range(3):
        store.append_audit("decision", {"i": i})
    store.close()
    assert main(["audit", "verify"]) == 0
    assert "ok: 3 records" in capsys.readouterr().out
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit SET payload = '{\"i\":42}' WHERE seq = 2")
    conn.commit()
    conn.close()
    assert main(["audit", "verify"]) == 1
    assert "record 2" in capsys.readouterr().err


def test_audit_export_since(data_dir, capsys, tmp_path):
    store = SQLiteStore(data_dir / "agent-gate.db")
    store.append_audit("decision", {"i": 1})
    store.close()
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--output", str(out), "--since", "2000-01-01T00:00:00Z"]) == 0
    assert json.loads(out.read_text().splitlines()[0])["payload"] == {"i": 1}
    assert main(["audit", "export", "--since", "2999-01-01"]) == 0
    assert "exported 0 records" in capsys.readouterr().err


def test_policy_check_command(capsys):
    assert main(["policy", "check", str(REPO / "policies")]) == 0
    assert "ok: 0 error(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["serve", "--help"],
        ["policy", "check", "--help"],
        ["explain", "--help"],
        ["audit", "verify", "--help"],
        ["dev", "token", "--help"],
    ],
    ids=["top", "serve", "policy-check", "explain", "audit-verify", "dev-token"],
)
def test_every_command_has_help(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code in (0, 2)
    assert "usage: agent-gate" in capsys.readouterr().out


def test_keys_rotate_adds_a_key_and_keeps_the_old_one_published(data_dir, capsys):
    from app.credentials.grants import SigningKeys

    store = SQLiteStore(data_dir / "agent-gate.db")
    first, _ = SigningKeys(store).current()
    assert main(["keys", "rotate"]) == 0
    assert "new grant-signing key gk_" in capsys.readouterr().out
    second, _ = SigningKeys(store).current()
    assert second != first
    store.close()


def test_audit_verify_with_an_anchor_detects_a_truncated_tail(data_dir, capsys):
    db = data_dir / "agent-gate.db"
    store = SQLiteStore(db)
    for i in range(3):
        store.append_audit("decision", {"i": i})
    store.close()
    assert main(["audit", "verify"]) == 0
    head = capsys.readouterr().out.split("head ")[1].strip()
    assert head.startswith("3:")
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit WHERE seq = 3")
    conn.commit()
    conn.close()
    assert main(["audit", "verify"]) == 0, "a truncated tail is invisible without an anchor"
    capsys.readouterr()
    assert main(["audit", "verify", "--anchor", head]) == 1
    assert "BROKEN" in capsys.readouterr().err


def test_audit_verify_of_an_export_file(data_dir, tmp_path, capsys):
    store = SQLiteStore(data_dir / "agent-gate.db")
    for i in range(2):
        store.append_audit("decision", {"i": i})
    store.close()
    export = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--output", str(export)]) == 0
    assert main(["audit", "verify", "--file", str(export)]) == 0
    export.write_text(export.read_text().replace('"i":1', '"i":7').replace('"i": 1', '"i": 7'))
    assert main(["audit", "verify", "--file", str(export)]) == 1


def test_worker_drain_runs_the_queued_webhook_jobs(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("GATE_DEV_MODE", "true")
    store = SQLiteStore(data_dir / "agent-gate.db")
    # A signed delivery the webhook stored: a pull_request event without the fields the gate needs.
    store.enqueue_job("d-1", "webhook", "pull_request", b'{"action": "opened"}', now=1)
    store.close()
    assert main(["worker", "--drain"]) == 0
    assert "ran 1 job(s)" in capsys.readouterr().out
    store = SQLiteStore(data_dir / "agent-gate.db")
    assert store.queue_stats(now=2).dead == 1, "given up: it can never be handled"
    store.close()


def test_worker_refuses_a_silly_thread_count(capsys):
    assert main(["worker", "--threads", "0"]) != 0
    assert "--threads: got 0, expected 1 to 64" in capsys.readouterr().err


def test_the_packaged_example_policy_is_the_repository_example():
    packaged = REPO / "app" / "data" / "policies" / "example.yml"
    assert packaged.read_text() == (REPO / "policies" / "example.yml").read_text()


def test_explain_outside_a_checkout_uses_the_packaged_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATE_POLICY_PATH")
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims(actor="Copilot", actor_id="198982749")))
    assert main(["explain", "--claims", str(claims_file), "--action", "read"]) == 0
    captured = capsys.readouterr()
    assert "Allowed: read" in captured.out
    assert "using the example policy shipped with the package" in captured.err


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip().startswith("agent-gate 0.")


def test_serve_refuses_to_start_without_a_policy_and_says_what_to_mount(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("GATE_POLICY_PATH", str(tmp_path / "empty"))
    assert main(["serve", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "no policy files" in err and "/etc/agent-gate/policies" in err


@pytest.mark.parametrize(
    "argv",
    [["audit", "verify"], ["audit", "export"], ["keys", "rotate"]],
    ids=["audit-verify", "audit-export", "keys-rotate"],
)
@pytest.mark.parametrize("where", ["default", "mistyped", "url", "not-a-store"])
def test_store_commands_refuse_a_store_that_does_not_exist(data_dir, tmp_path, capsys, argv, where):
    options = {
        "default": [],  # GATE_DATA_DIR names a directory the gate never wrote to
        "mistyped": ["--database", str(tmp_path / "agent-gaet.db")],
        "url": ["--database", f"sqlite:///{tmp_path / 'nowhere' / 'agent-gate.db'}"],
        "not-a-store": ["--database", str(tmp_path / "notes.txt")],
    }[where]
    (tmp_path / "notes.txt").write_text("not a database")
    assert main([*argv, *options]) == 1
    captured = capsys.readouterr()
    assert "ok:" not in captured.out and "chain intact" not in captured.out
    assert "no store at" in captured.err or "is not an agent-gate store" in captured.err
    assert not (tmp_path / "agent-gaet.db").exists() and not (data_dir / "agent-gate.db").exists()
    assert not (tmp_path / "nowhere").exists()
