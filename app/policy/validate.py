"""``agent-gate policy check PATH...``: validate, lint, and say precisely what is wrong.

Each PATH is checked as the gate would load it (``GATE_POLICY_PATH``): a policy file, or a
directory of them with one file per owner. Errors and warnings are printed one per line as
``error: FILE:LINE: FIELD: MESSAGE`` / ``warning: ...``, then one ``audit: ...`` line per rule in
audit mode, then a summary line; or as one JSON object, or as GitHub Actions annotations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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


FORMATS = ("text", "json", "github")


def check_paths(paths: Sequence[Path], out: TextIO, format: str = "text") -> int:
    """Check every path; 0 valid (warnings allowed), 1 errors, 2 usage (no path, or one is missing).

    ``format``: ``text`` (a line per problem, then a summary), ``json`` (one object, see
    docs/policy.md#checking-a-policy) or ``github`` (workflow commands: an ``::error`` or ``::warning``
    annotation per problem on its file, line and column, then the summary).
    """
    if not paths:
        out.write("usage: agent-gate policy check PATH...  (a policy file or a directory of them)\n")
        return EXIT_USAGE
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        gone = [PolicyProblem(str(p), None, "", "no such file or directory") for p in missing]
        _write(out, format, CheckReport(problems=gone, usage=True))
        return EXIT_USAGE
    report = CheckReport()
    for path in paths:
        try:
            survey = survey_policies(Path(path))
        except PolicyError as exc:
            report.problems.extend(exc.problems)
            report.errors += len(exc.problems)
            continue
        found = [w for loaded in survey.loaded for w in lint(loaded) + ownership_warnings(loaded)]
        report.problems.extend(survey.problems + found)
        report.notes.extend(note for loaded in survey.loaded for note in audit_mode_notes(loaded))
        report.errors += len(survey.problems)
        report.warnings += len(found)
        report.files += len(survey.files)
        report.valid += len(survey.files) - len({p.path for p in survey.problems})
    _write(out, format, report)
    return EXIT_ERRORS if report.errors else EXIT_OK


@dataclass
class CheckReport:
    """What ``policy check`` found, for any of its formats."""

    problems: list[PolicyProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one per rule in audit mode
    errors: int = 0
    warnings: int = 0
    files: int = 0
    valid: int = 0
    usage: bool = False  # a path is missing: nothing was checked

    def sorted_problems(self) -> list[PolicyProblem]:
        return sorted(self.problems, key=lambda p: (p.path, p.line or 0, p.severity, p.field))

    def summary(self) -> str:
        verdict = "FAILED" if self.errors else "ok"
        return (
            f"{verdict}: {self.errors} error(s), {self.warnings} warning(s); "
            f"{self.valid} of {self.files} policy file(s) valid"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.usage and self.errors == 0,
            "errors": len(self.problems) if self.usage else self.errors,
            "warnings": self.warnings,
            "files": self.files,
            "valid": self.valid,
            "problems": [
                {
                    "severity": p.severity,
                    "path": p.path,
                    "line": p.line,
                    "column": p.column,
                    "field": p.field,
                    "message": p.message,
                }
                for p in self.sorted_problems()
            ],
            "audit_mode": self.notes,
        }


def _write(out: TextIO, format: str, report: CheckReport) -> None:
    if format == "json":
        out.write(json.dumps(report.as_json(), indent=2) + "\n")
        return
    if report.usage:
        for problem in report.problems:
            out.write(
                f"::error file={_property(problem.path)}::{_data(problem.message)}\n"
                if format == "github"
                else f"error: {problem.path}: {problem.message}\n"
            )
        return
    for problem in report.sorted_problems():
        out.write(_annotation(problem) if format == "github" else f"{problem.severity}: {problem.render()}\n")
    for note in report.notes:
        out.write(f"::notice::{_data(note)}\n" if format == "github" else note + "\n")
    out.write(report.summary() + "\n")


def _annotation(problem: PolicyProblem) -> str:
    """A GitHub Actions workflow command that annotates the problem's file, line and column."""
    where = [f"file={_property(problem.path)}"]
    if problem.line is not None:
        where.append(f"line={problem.line}")
        if problem.column is not None:
            where.append(f"col={problem.column}")
    where.append("title=agent-gate policy check")
    message = f"{problem.field}: {problem.message}" if problem.field else problem.message
    return f"::{problem.severity} {','.join(where)}::{_data(message)}\n"


def _data(text: str) -> str:
    """A workflow command's message, escaped as the Actions toolkit does (``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command's property value: its message's escapes, and ``:`` and ``,`` too."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


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
