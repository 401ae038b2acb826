"""Evidence sources that make no GitHub call: none without an App, the same evidence every time
(``agent-gate explain``), or a JSON file in the shape ``GitHubEvidence`` produces."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from app.errors import GateError
from app.evidence.model import Evidence, EvidenceNeeds, Question
from app.tokens.identity import WorkloadIdentity

APP_NOT_CONFIGURED = (
    "the GitHub App is not configured: set GATE_GITHUB_APP_ID and GATE_GITHUB_PRIVATE_KEY(_FILE) "
    "(see docs/github-app.md)"
)


class NoEvidence:
    """No GitHub App: decisions that need evidence are denied, saying why. Makes no call."""

    def gather(self, identity: WorkloadIdentity, request: Question, needs: EvidenceNeeds) -> Evidence:
        return Evidence.none(APP_NOT_CONFIGURED)


class FixedEvidence:
    """The same evidence for every decision (``agent-gate explain`` with an evidence file, or none)."""

    def __init__(self, evidence: Evidence) -> None:
        self._evidence = evidence

    def gather(self, identity: WorkloadIdentity, request: Question, needs: EvidenceNeeds) -> Evidence:
        return self._evidence


class FileEvidence(FixedEvidence):
    """Evidence from a JSON file in the shape ``GitHubEvidence`` produces (for ``agent-gate explain``)."""

    def __init__(self, path: Path) -> None:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            if not isinstance(data, dict):
                raise TypeError("expected a JSON object in the shape of Evidence")
            evidence = Evidence.model_validate({**data, "source": "file"})
        except (OSError, ValueError, TypeError) as exc:
            detail = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise GateError(
                f"the evidence file {path} is not valid: {detail}; write it in the shape of "
                "`agent-gate explain`'s evidence (docs/github-app.md)",
                code="invalid-evidence",
            ) from exc
        super().__init__(evidence)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'the file'}: {first['msg']}"
