"""The gate as a GitHub App: authentication and the REST client."""

from __future__ import annotations

from app.github.client import GitHubClient
from app.settings import GitHubSettings


def build_client(settings: GitHubSettings) -> GitHubClient:
    return GitHubClient(settings)


__all__ = ["GitHubClient", "build_client"]
