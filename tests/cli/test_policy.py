"""``agent-gate policy check``."""

from __future__ import annotations

from app.cli import main
from tests.cli.conftest import REPO


def test_policy_check_command(capsys):
    assert main(["policy", "check", str(REPO / "policies")]) == 0
    assert "ok: 0 error(s)" in capsys.readouterr().out


def test_policy_check_formats(capsys):
    import json

    assert main(["policy", "check", str(REPO / "policies"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == 1
    assert main(["policy", "check", str(REPO / "policies"), "--format", "github"]) == 0
    assert capsys.readouterr().out.startswith(f"::warning file={REPO / 'policies' / 'example.yml'},line=")
