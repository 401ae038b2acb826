"""Builders for the action's tests: gate decisions, error bodies and unsigned GitHub-shaped tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

DECISION_ID = "dec_2ySq7ej2JL9AuMOx5mPTMQ"
DETAILS_URL = f"https://gate.example.com/decisions/{DECISION_ID}"
SHA = "e5a8f2c1d3b4a5968778695a4b3c2d1e0f9a8b7c"


def decision_body(*, allowed: bool = True, action: str = "deploy", **overrides: Any) -> dict[str, Any]:
    """A decision as ``POST /v1/decisions`` answers it (docs/api.md)."""
    reasons = [
        {"code": "action", "ok": True, "message": f"{action} is an execute action"},
        {"code": "rule", "ok": True, "message": "rule 'deploy-production' allows deploy"},
    ]
    if not allowed:
        reasons.append(
            {
                "code": "approvals",
                "ok": False,
                "message": "1 independent approval of e5a8f2c1d3b4 needed, got 0",
            }
        )
    body: dict[str, Any] = {
        "decision_id": DECISION_ID,
        "allowed": allowed,
        "action": action,
        "permission": "execute",
        "approval_action": False,
        "rule": "deploy-production",
        "subject": {
            "repository": "octo-org/octo-repo",
            "repository_id": 2000,
            "owner": "octo-org",
            "owner_id": 1000,
            "actor": "octocat",
            "actor_id": 583231,
            "agent": False,
            "agent_signals": [],
            "workflow": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
            "workflow_sha": SHA,
            "ref": "refs/heads/main",
            "sha": SHA,
            "event": "workflow_dispatch",
            "run_id": 9000,
            "run_attempt": 1,
            "environment": "production",
            "runner_environment": "github-hosted",
            "pull_request": None,
            "triggering_actor": None,
        },
        "reasons": reasons,
        "remedy": None if allowed else "an independent human approves the deployment of e5a8f2c1d3b4",
        "policy_digest": "sha256:32671ba2bd1d871d1dde7995895c52dd2f5e3572b74001b221d4d5c09b3add97",
        "approvals": [],
        "evidence_source": "github",
        "github_api_calls": 2,
        "decided_at": "2026-05-01T12:00:00Z",
        "details_url": DETAILS_URL,
    }
    body.update(overrides)
    return body


def error_body(message: str, *codes: str) -> dict[str, Any]:
    """agent-gate's error format."""
    return {"message": message, "errors": [{"code": c, "description": f"{c}: {message}"} for c in codes]}


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


def unsigned_token(**claims: Any) -> str:
    """A JWT-shaped token with GitHub's claims (and ``claims``); its signature is junk."""

    def segment(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    payload = {
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "agent-gate",
        "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
        "repository": "octo-org/octo-repo",
        "repository_id": "2000",
        "repository_owner": "octo-org",
        "repository_owner_id": "1000",
        "job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
        "ref": "refs/heads/main",
        "sha": SHA,
        "event_name": "workflow_dispatch",
        "actor": "octocat",
        "actor_id": "583231",
        "run_id": "9000",
        "iat": 1_777_636_800,
        "exp": 1_777_637_100,
        "secretish": "not a debug claim",
    }
    payload.update(claims)
    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(payload)}.c2lnbmF0dXJlLXNlZ21lbnQtdGhhdC1pcy1sb25n"
