"""Shared fixtures: a gate on embedded parts (SQLite, a policy file, the dev issuer) and its client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.decide.decision import DecisionRequest
from app.evidence.model import Evidence, EvidenceNeeds
from app.settings import Settings
from app.tokens.devissuer import AGENT_PRESET, DevIssuer
from app.tokens.identity import WorkloadIdentity
from tests.builders import whole

TEST_POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: read-anything
    actions: [read]
    repositories: "*"
  - name: propose
    actions: [open-pull-request, push-branch, comment]
    repositories: "*"
  - name: deploy-staging
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
    environments: [staging]
  - name: deploy-production
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    refs: [refs/heads/main]
    environments: [production]
    approvals: {count: 1}
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
"""


@dataclass
class RecordingEvidence:
    """An EvidenceSource that returns fixed evidence and records what it was asked."""

    evidence: Evidence = field(default_factory=lambda: Evidence.none("the GitHub App is not configured"))
    calls: list[tuple[str, EvidenceNeeds]] = field(default_factory=list)
    error: Exception | None = None

    def gather(self, identity: WorkloadIdentity, request: DecisionRequest, needs: EvidenceNeeds) -> Evidence:
        self.calls.append((request.action, needs))
        if self.error is not None:
            raise self.error
        return self.evidence


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies" / "octo-org.yml"
    path.parent.mkdir()
    path.write_text(whole(TEST_POLICY))
    return path


@pytest.fixture
def settings(tmp_path: Path, policy_file: Path) -> Settings:
    return Settings(
        dev_mode=True,
        issuers=(),
        data_dir=tmp_path / "data",
        policy_path=policy_file.parent,
        public_url="http://gate.test",
        policy_check_interval=0,
    )


@pytest.fixture
def evidence_source() -> RecordingEvidence:
    return RecordingEvidence()


@pytest.fixture
def app(settings: Settings, evidence_source: RecordingEvidence) -> Iterator[Flask]:
    application = create_app(settings, evidence=evidence_source)
    yield application
    close_gate(application)


def close_gate(application: Flask) -> None:
    """Close the store once the housekeeping thread is done with it (closing a SQLite connection
    under a running purge crashes the interpreter)."""
    application.extensions["agent_gate"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def mint(settings: Settings) -> Callable[..., str]:
    """mint(agent=False, **claims) -> a fresh dev-issuer token for the test gate."""
    issuer = DevIssuer(settings.data_dir)
    issuer.ensure_key()

    def _mint(*, agent: bool = False, **claims: Any) -> str:
        base: dict[str, Any] = dict(AGENT_PRESET) if agent else {}
        base.update(claims)
        return issuer.mint(audience=settings.audience, **base)

    return _mint


@pytest.fixture
def ask(client: FlaskClient, mint: Callable[..., str]) -> Callable[..., Any]:
    """ask(body, token=None, agent=False, **claims) -> the response of POST /v1/decisions."""

    def _ask(body: dict[str, Any], *, token: str | None = None, agent: bool = False, **claims: Any) -> Any:
        token = token or mint(agent=agent, **claims)
        return client.post("/v1/decisions", json=body, headers={"Authorization": f"Bearer {token}"})

    return _ask
