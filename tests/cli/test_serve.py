"""``agent-gate serve`` and ``agent-gate worker``."""

from __future__ import annotations

from app.cli import main
from app.store.sqlite import SQLiteStore


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


def test_serve_refuses_to_start_without_a_policy_and_says_what_to_mount(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("GATE_POLICY_PATH", str(tmp_path / "empty"))
    assert main(["serve", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "no policy files" in err and "/etc/agent-gate/policies" in err
