"""The gate as a GitHub App: configuration, authentication and the REST client.

``GitHubClient`` implements the ``GitHubAPI`` Protocol; ``app.evidence.gather.GitHubEvidence``
reads a decision's facts through it. See docs/github-app.md for the App's set-up and costs.
"""

from __future__ import annotations

from app.github.client import GitHubClient
from app.github.config import GitHubAppConfig
from app.github.protocol import GitHubAPI, InstallationToken

__all__ = ["GitHubAPI", "GitHubAppConfig", "GitHubClient", "InstallationToken"]
