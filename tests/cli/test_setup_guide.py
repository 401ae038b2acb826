"""docs/setup-guide.md, followed against the fake GitHub: its `agent-gate protect` and `doctor`
commands, run exactly as written, print exactly what the guide shows.

Each ```console block of the guide is a session: a line ``$ agent-gate ...`` is a command, the lines
after it (up to the next ``$``) its output. The fake serves the guide's repository unprotected, with
the App id the guide shows, and an administrator's token in GH_TOKEN.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pydantic import SecretStr

from app.cli import main, options
from app.settings import GitHubSettings, Settings
from tests.cli.test_doctor import protected
from tests.fake_github import AdminToken, FakeGitHub
from tests.github.conftest import app_key_pem

GUIDE = Path(__file__).parents[2] / "docs" / "setup-guide.md"
GUIDE_APP_ID = 123456
TOKEN = "ghp_the0guide0admin0token000000000000"


def sessions() -> list[list[tuple[str, list[str]]]]:
    """The guide's console blocks, each a list of (command, output lines)."""
    blocks = re.findall(r"^```console\n(.*?)^```$", GUIDE.read_text("utf-8"), re.MULTILINE | re.DOTALL)
    found = []
    for block in blocks:
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        found.append(steps)
    return found


def test_the_guide_has_the_sessions_this_test_runs():
    commands = [command for session in sessions() for command, _ in session]
    assert commands == [
        "agent-gate protect octo-org/octo-repo --dry-run",
        "agent-gate protect octo-org/octo-repo",
        "agent-gate protect octo-org/octo-repo",
        "agent-gate doctor octo-org/octo-repo",
    ]


def test_the_guide_links_from_the_readme_and_states_the_plan_limits_up_front():
    readme = (GUIDE.parents[1] / "README.md").read_text("utf-8")
    assert "docs/setup-guide.md" in readme
    quick_start = readme.index("## Quick start")
    assert readme.index("GitHub Enterprise") < quick_start, "the plan limit comes before the Quick start"
    guide = GUIDE.read_text("utf-8")
    assert guide.index("## First: what your GitHub plan allows") < guide.index("## 1. Host the gate")


def test_following_the_guide_protects_the_repository(monkeypatch, tmp_path, capsys):
    scenario = protected(
        app_id=GUIDE_APP_ID,
        rule_apps={GUIDE_APP_ID: "agent-gate"},
        environments={"production": []},
        branch_rules={},
        admin_tokens={TOKEN: AdminToken()},
    )
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    with FakeGitHub(scenario) as server:
        github = GitHubSettings(app_id=GUIDE_APP_ID, private_key=SecretStr(app_key_pem()), api_url=server.url)
        monkeypatch.setattr(
            options, "load_settings", lambda: Settings(data_dir=tmp_path / "var", github=github)
        )
        for session in sessions():
            for command, shown in session:
                argv = shlex.split(command)
                assert argv[0] == "agent-gate"
                code = main(argv[1:])
                out = capsys.readouterr().out.splitlines()
                assert out == shown, f"`{command}` printed what the guide does not show"
                expected = 1 if "--dry-run" in argv else 0
                assert code == expected, command
