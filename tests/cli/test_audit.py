"""``agent-gate audit verify`` and ``audit export``: the chain checked, an edit and a cut tail caught."""

from __future__ import annotations

import json
import sqlite3

from app.cli import main
from app.store.sqlite import SQLiteStore


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


def test_audit_verify_as_json(data_dir, capsys):
    db = data_dir / "agent-gate.db"
    store = SQLiteStore(db)
    for i in range(3):
        store.append_audit("decision", {"i": i})
    head = store.head()
    store.close()
    assert main(["audit", "verify", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "records": 3,
        "head": {"seq": 3, "hash": head[1]},
        "first_bad_seq": None,
        "problem": None,
    }
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit SET payload = '{\"i\":42}' WHERE seq = 2")
    conn.commit()
    conn.close()
    assert main(["audit", "verify", "--format", "json"]) == 1
    broken = json.loads(capsys.readouterr().out)
    assert (broken["ok"], broken["first_bad_seq"], broken["head"]) == (False, 2, None)
    assert "record 2" in broken["problem"]
