"""``bash scripts/dev``: installs what the gate runs on (the runtime lock, the build backend and the
project, never the test lock), and nothing at all when nothing changed since its last install.

The script runs for real in a copy of its checkout whose ``.venv`` holds two recording stand-ins:
``python`` (what pip was asked to install) and ``agent-gate`` (how the gate was started). What the
script is responsible for is which installs it asks for, and when.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_RECORDER = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"$(dirname "$0")/../calls.log"
[ ! -e "$(dirname "$0")/../fail-install" ] || [ "$(basename "$0")" != python ] || exit 1
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what scripts/dev reads, with a .venv of recorders."""
    root = tmp_path / "agent-gate"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "dev", root / "scripts" / "dev")
    shutil.copytree(REPO / "requirements", root / "requirements")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "agent-gate"):
        (bin_dir / name).write_text(_RECORDER, "utf-8")
        (bin_dir / name).chmod(0o755)
    return root


def start(root: Path, *args: str) -> list[str]:
    """Run scripts/dev; the calls it made, one line each."""
    log = root / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", "scripts/dev", *args], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    calls = log.read_text("utf-8").splitlines() if log.exists() else []
    assert done.returncode == (1 if (root / ".venv" / "fail-install").exists() else 0), done.stderr
    return calls


def installs(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("python -m pip install")]


def test_the_first_start_installs_the_runtime_lock_and_the_project_then_serves(checkout):
    calls = start(checkout, "--port", "8081")
    assert installs(calls) == [
        "python -m pip install --quiet --disable-pip-version-check --require-hashes "
        "-r requirements/runtime.txt -r requirements/build.txt",
        "python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .",
    ]
    assert calls[-1] == "agent-gate serve --dev --port 8081"
    assert not any("requirements/test.txt" in c for c in calls), "the test lock is scripts/test's"


def test_a_second_start_installs_nothing(checkout):
    start(checkout)
    assert start(checkout) == ["agent-gate serve --dev"]


@pytest.mark.parametrize(
    "changed",
    ["pyproject.toml", "requirements/runtime.txt", "requirements/build.txt"],
    ids=["pyproject-changed", "runtime-lock-changed", "build-lock-changed"],
)
def test_a_change_to_what_is_installed_installs_again(checkout, changed):
    start(checkout)
    with (checkout / changed).open("a", encoding="utf-8") as f:
        f.write("\n# changed\n")
    assert len(installs(start(checkout))) == 2
    assert installs(start(checkout)) == []


def test_a_change_to_the_test_lock_alone_installs_nothing(checkout):
    start(checkout)
    with (checkout / "requirements" / "test.txt").open("a", encoding="utf-8") as f:
        f.write("\n# changed\n")
    assert installs(start(checkout)) == []


def test_a_failed_install_is_tried_again_at_the_next_start(checkout):
    (checkout / ".venv" / "fail-install").touch()
    calls = start(checkout)
    assert len(installs(calls)) == 1 and not any(c.startswith("agent-gate") for c in calls)
    (checkout / ".venv" / "fail-install").unlink()
    assert len(installs(start(checkout))) == 2
