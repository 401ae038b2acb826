"""The GitHub App the gate needs, as a manifest: exactly the permissions and events it uses.

GitHub's manifest flow (docs: "Registering a GitHub App from a manifest") creates an App from this
JSON in one step. ``docs/github-app-manifest.json`` is this manifest for an example URL; a test keeps
the two equal, and ``/setup`` serves it filled in with ``GATE_PUBLIC_URL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from pydantic import SecretStr

from app.errors import GitHubError

# Repository and organisation permissions, as the manifest's ``default_permissions`` names them.
PERMISSIONS: dict[str, str] = {
    "actions": "read",  # the workflow run (triggering_actor) and its environment approvals
    "checks": "write",  # the agent-gate / <action> check runs
    "contents": "read",  # the pull requests of a commit; grants that ask for contents
    "deployments": "write",  # deployment protection rules: read the deployment, answer the callback
    "members": "read",
    "merge_queues": "read",  # the merge_group event: the merge queue's groups, judged for their check  # organisation: team membership of approvers (rules that name teams)
    "metadata": "read",  # required by GitHub for every App
    "pull_requests": "read",  # the PR, its commits and its reviews
}

# Webhook events (``default_events``): the merge check, re-evaluation, merge queues and deployment
# protection.
EVENTS: tuple[str, ...] = (
    "check_run",
    "check_suite",
    "deployment_protection_rule",
    "deployment_review",
    "merge_group",
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


@dataclass(frozen=True)
class CreatedApp:
    """What GitHub's manifest conversion hands back once: the new App's identity and its secrets."""

    id: int
    slug: str
    html_url: str
    client_id: str
    client_secret: SecretStr = field(repr=False)
    webhook_secret: SecretStr = field(repr=False)
    pem: SecretStr = field(repr=False)


def api_url_for(web_url: str) -> str:
    """The REST API of a GitHub web host: api.github.com, or GHES's ``https://HOST/api/v3``."""
    base = web_url.rstrip("/")
    return "https://api.github.com" if base == "https://github.com" else f"{base}/api/v3"


def convert_manifest_code(api_url: str, code: str, *, session: requests.Session | None = None) -> CreatedApp:
    """``POST /app-manifests/{code}/conversions``: the App GitHub created from the manifest (a code
    works once, within an hour). Raises :class:`GitHubError` for anything but GitHub's 201."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    try:
        response = (session or requests).post(
            url,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
            timeout=10,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise GitHubError(
            f"GitHub could not be reached to finish the App's creation ({exc.__class__.__name__})"
        ) from exc
    if response.status_code != 201:
        raise GitHubError(
            f"GitHub answered {response.status_code} to the manifest code: it works once and for an hour; "
            "start again from /setup",
            http_status=response.status_code,
        )
    try:
        data = response.json()
        return CreatedApp(
            id=int(data["id"]),
            slug=str(data["slug"]),
            html_url=str(data["html_url"]),
            client_id=str(data["client_id"]),
            client_secret=SecretStr(str(data["client_secret"])),
            webhook_secret=SecretStr(str(data["webhook_secret"])),
            pem=SecretStr(str(data["pem"])),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise GitHubError("GitHub's manifest conversion answered without the App's credentials") from exc
