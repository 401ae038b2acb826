"""``agent-gate policy check``."""

from __future__ import annotations

from app.cli import main
from tests.cli.conftest import REPO


def test_policy_check_command(capsys):
    assert main(["policy", "check", str(REPO / "policies")]) == 0
    assert "ok: 0 error(s)" in capsys.readouterr().out
