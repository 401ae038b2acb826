"""What the commands share: the shipped example policy, and a store that must already exist."""

from __future__ import annotations

import pytest

from app.cli import main
from tests.cli.conftest import REPO


def test_the_packaged_example_policy_is_the_repository_example():
    packaged = REPO / "app" / "data" / "policies" / "example.yml"
    assert packaged.read_text() == (REPO / "policies" / "example.yml").read_text()


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
