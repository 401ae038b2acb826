"""``agent-gate policy check PATH...``: validate, lint, and say precisely what is wrong.

Each PATH is checked as the gate would load it (``GATE_POLICY_PATH``): a policy file, or a
directory of them with one file per owner. Errors and warnings are printed one per line as
``error: FILE:LINE: FIELD: MESSAGE`` / ``warning: ...``, then one ``audit: ...`` line per rule in
audit mode, then a summary line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from app.errors import PolicyError, PolicyProblem
from app.policy.lint import lint
from app.policy.loader import survey_policies
from app.policy.ownership import audit_mode_notes, ownership_warnings
from app.policy.schema import Policy

SCHEMA_ID = "https://agent-gate.dev/schemas/policy-v1.json"
REGENERATE = "agent-gate policy schema -o policies/schema.json"

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def check_paths(paths: Sequence[Path], out: TextIO) -> int:
    """Check every path; 0 valid (warnings allowed), 1 errors, 2 usage (no path, or one is missing)."""
    if not paths:
        out.write("usage: agent-gate policy check PATH...  (a policy file or a directory of them)\n")
        return EXIT_USAGE
    missing = [p for p in paths if not Path(p).exists()]
    for path in missing:
        out.write(f"error: {path}: no such file or directory\n")
    if missing:
        return EXIT_USAGE
    errors = warnings = files = valid = 0
    for path in paths:
        try:
            survey = survey_policies(Path(path))
        except PolicyError as exc:
            _print(out, exc.problems)
            errors += len(exc.problems)
            continue
        found = [w for loaded in survey.loaded for w in lint(loaded) + ownership_warnings(loaded)]
        _print(out, survey.problems + found)
        for loaded in survey.loaded:
            for note in audit_mode_notes(loaded):
                out.write(note + "\n")
        errors += len(survey.problems)
        warnings += len(found)
        files += len(survey.files)
        valid += len(survey.files) - len({p.path for p in survey.problems})
    verdict = "FAILED" if errors else "ok"
    out.write(
        f"{verdict}: {errors} error(s), {warnings} warning(s); {valid} of {files} policy file(s) valid\n"
    )
    return EXIT_ERRORS if errors else EXIT_OK


def _print(out: TextIO, problems: list[PolicyProblem]) -> None:
    for problem in sorted(problems, key=lambda p: (p.path, p.line or 0, p.severity, p.field)):
        out.write(f"{problem.severity}: {problem.render()}\n")


class _PolicyJsonSchema(GenerateJsonSchema):
    """The models' schema as an editor should see it: an omitted field is written by omitting it.

    The loader refuses an explicit empty value (``refs:`` alone would read as null and silently
    match anything), so the schema offers no ``null`` either.
    """

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", 0) is None:
            del json_schema["default"]
        return json_schema


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (``policies/schema.json``), generated from the models."""
    schema = Policy.model_json_schema(mode="validation", schema_generator=_PolicyJsonSchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "$comment": f"Generated from app/policy/schema.py; do not edit. Regenerate with: {REGENERATE}",
        **schema,
        "title": "agent-gate policy",
    }
