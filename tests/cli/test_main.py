"""The ``agent-gate`` command as a whole: help for every command, the version."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.cli import main


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


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip().startswith("agent-gate 0.")


def test_the_command_stays_light_until_a_command_runs():
    # Every command builds the whole parser (a dev token minted in a loop, a --help); the web stack,
    # pydantic, YAML and the GitHub client load only in the command bodies that use them.
    heavy = ("flask", "pydantic", "requests", "yaml", "jwt")
    code = f"import sys, app.cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []
