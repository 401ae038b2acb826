"""requirements/ is the lock of pyproject.toml: every declared dependency is pinned there, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _locked(path: Path) -> dict[str, str]:
    # A pin may name its extras (psycopg[binary]==...): pip 23's hash mode needs them in the lock.
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", path.read_text(), re.M)
    return {_name(name): version for name, version in pins}


@pytest.mark.parametrize(
    ("lock", "declared"),
    [
        ("runtime.txt", PROJECT["dependencies"]),
        ("test.txt", PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]),
    ],
    ids=["runtime", "test"],
)
def test_every_declared_dependency_is_locked(lock, declared):
    locked = _locked(REPO / "requirements" / lock)
    missing = sorted({_name(r) for r in declared} - locked.keys())
    assert not missing, (
        f"not in requirements/{lock}: {missing}; run `bash scripts/lock` and commit requirements/"
    )


def test_every_pin_carries_a_hash_and_the_locks_agree():
    runtime, test = (_locked(REPO / "requirements" / f) for f in ("runtime.txt", "test.txt"))
    assert {name: test[name] for name in runtime} == runtime
    for lock in ("runtime.txt", "test.txt", "build.txt"):
        text = (REPO / "requirements" / lock).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
        for block in blocks:
            if "==" in block.split("\n", 1)[0]:
                assert "--hash=sha256:" in block, f"{lock}: {block.splitlines()[0]} has no hash"
