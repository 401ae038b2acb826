"""``agent-gate policy check PATH...``: validate, lint, and say precisely what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from app.errors import PolicyError
from app.policy.lint import lint
from app.policy.loader import load_policies
from app.policy.schema import Policy

SCHEMA_ID = "https://agent-gate.dev/schemas/policy-v1.json"


def check_paths(paths: Sequence[Path], out: TextIO) -> int:
    """0 valid (warnings allowed), 1 errors, 2 a path does not exist."""
    errors = warnings = owners = 0
    for path in paths:
        if not Path(path).exists():
            out.write(f"{path}: no such file or directory\n")
            return 2
        try:
            policies = load_policies(Path(path))
        except PolicyError as exc:
            for problem in exc.problems:
                out.write(f"error: {problem.render()}\n")
            errors += len(exc.problems)
            continue
        for loaded in policies.by_owner.values():
            owners += 1
            for problem in lint(loaded):
                out.write(f"warning: {problem.render()}\n")
                warnings += 1
    verdict = "FAILED" if errors else "ok"
    out.write(f"{verdict}: {errors} error(s), {warnings} warning(s), {owners} policy file(s) valid\n")
    return 1 if errors else 0


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (policies/schema.json), generated from the models."""
    schema = Policy.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "agent-gate policy",
        **schema,
    }
