"""The ``agent-gate`` command as a whole: help for every command, the version."""

from __future__ import annotations

import os
import re
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


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["audti"], "no command 'audti'; did you mean 'audit'?"),
        (
            ["audit", "verfy"],
            "no command 'verfy'; did you mean 'verify'? (commands: verify, export, show, report)",
        ),
        (["brake-glass", "list"], "did you mean 'break-glass'?"),
        (
            ["inventory", "--format", "jsn"],
            "argument --format: 'jsn' is not one of table, json, csv; did you mean 'json'?",
        ),
        (["xyzzy"], "no command 'xyzzy' (commands: serve, "),
    ],
    ids=["command", "subcommand", "hyphenated-group", "option-choice", "nothing-close"],
)
def test_a_mistyped_command_is_answered_with_the_closest(argv, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ("audit", ["verify", "export", "show", "report"]),
        ("policy", ["check", "schema"]),
        ("break-glass", ["list"]),
        ("db", ["upgrade"]),
    ],
)
def test_a_group_alone_shows_its_help_with_every_command(group, commands, capsys):
    assert main([group]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"usage: agent-gate {group}")
    listed = re.findall(r"^    (\S+)", out.split(" commands:", 1)[1], re.M)  # a command per entry
    assert [c for c in listed if not c.startswith("{")] == commands


def test_writing_into_a_closed_pipe_ends_quietly(data_dir):
    # `agent-gate audit export | head -1`: the reader is gone before the command writes at all.
    from app.store.sqlite import SQLiteStore

    store = SQLiteStore(data_dir / "agent-gate.db")
    for i in range(3):
        store.append_audit("decision", {"i": i})
    store.close()
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "audit", "export"], stdout=write, capture_output=False,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
