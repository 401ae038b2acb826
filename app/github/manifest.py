"""The GitHub App the gate needs, as a manifest: exactly the permissions and events it uses.

GitHub's manifest flow (docs: "Registering a GitHub App from a manifest") creates an App from this
JSON in one step. ``docs/github-app-manifest.json`` is this manifest for an example URL; a test keeps
the two equal, and ``/setup`` serves it filled in with ``GATE_PUBLIC_URL``.
"""

from __future__ import annotations

from typing import Any

# Repository and organisation permissions, as the manifest's ``default_permissions`` names them.
PERMISSIONS: dict[str, str] = {
    "actions": "read",  # the workflow run (triggering_actor) and its environment approvals
    "checks": "write",  # the agent-gate / <action> check runs
    "contents": "read",  # the pull requests of a commit; grants that ask for contents
    "deployments": "write",  # deployment protection rules: read the deployment, answer the callback
    "members": "read",  # organisation: team membership of approvers (rules that name teams)
    "metadata": "read",  # required by GitHub for every App
    "pull_requests": "read",  # the PR, its commits and its reviews
}

# Webhook events (``default_events``): the merge check, re-evaluation and deployment protection.
EVENTS: tuple[str, ...] = (
    "check_run",
    "check_suite",
    "deployment_protection_rule",
    "deployment_review",
    "pull_request",
    "pull_request_review",
)


def app_manifest(public_url: str, *, name: str = "agent-gate") -> dict[str, Any]:
    """The manifest for a gate reachable at ``public_url`` (its webhook, login callback and setup page)."""
    base = public_url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "description": "Governed, attributable, least-privilege actions for AI coding agents.",
        "hook_attributes": {"url": f"{base}/v1/github/webhook", "active": True},
        "redirect_url": f"{base}/setup/complete",
        "callback_urls": [f"{base}/login/callback"],
        "public": False,
        "request_oauth_on_install": False,
        "setup_on_update": False,
        "default_permissions": dict(PERMISSIONS),
        "default_events": list(EVENTS),
    }
