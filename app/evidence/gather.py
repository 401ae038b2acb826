"""Where evidence comes from: GitHub (``GitHubEvidence``), a file (``FileEvidence``) or nowhere.

The API calls an :class:`EvidenceSource` only for decisions that need evidence (see
``app.engine.evidence_needs``); a read decision never reaches it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from app.decision import DecisionRequest
from app.errors import GateError
from app.evidence.model import Evidence, EvidenceNeeds
from app.identity import WorkloadIdentity

APP_NOT_CONFIGURED = (
    "the GitHub App is not configured: set GATE_GITHUB_APP_ID and GATE_GITHUB_PRIVATE_KEY(_FILE) "
    "(see docs/github-app.md)"
)


class EvidenceSource(Protocol):
    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        """The facts for one decision. Raises ``GitHubError`` (503) rather than guess."""
        ...


class NoEvidence:
    """No GitHub App: decisions that need evidence are denied, saying why."""

    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        return Evidence.none(APP_NOT_CONFIGURED)


class FileEvidence:
    """Evidence from a JSON file in the shape the GitHub client produces (for ``agent-gate explain``)."""

    def __init__(self, path: Path) -> None:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            self._evidence = Evidence.model_validate({**data, "source": "file"})
        except (OSError, ValueError, ValidationError, TypeError) as exc:
            raise GateError(f"the evidence file {path} is not valid: {exc}", code="invalid-evidence") from exc

    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        return self._evidence
