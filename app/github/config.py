"""The GitHub App's configuration: who the gate is on GitHub, and how patiently it talks to it.

Built by ``app.settings`` from ``GATE_GITHUB_*`` variables; tests build it directly. The private key
is a ``SecretStr``: it never appears in a ``repr``, a log line or an error. Whether it is a usable
RSA key is checked once, when the client is built (``app.github.auth.AppAuth``).
"""

from __future__ import annotations

import ipaddress
from typing import Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_API_URL = "https://api.github.com"


class AppCredentials(Protocol):
    """Anything that names the App (``GitHubAppConfig``, or the settings object that holds one)."""

    @property
    def app_id(self) -> int: ...
    @property
    def private_key(self) -> SecretStr: ...
    @property
    def api_url(self) -> str: ...


class GitHubAppConfig(BaseModel):
    """The App's identity and the client's limits. Every duration is in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: int = Field(gt=0)
    private_key: SecretStr
    # github.com, or GitHub Enterprise Server's https://HOST/api/v3.
    api_url: str = DEFAULT_API_URL
    # Read timeout of one HTTP request; a timed-out read is not retried (the request reached GitHub).
    timeout: float = Field(10.0, gt=0, le=60)
    connect_timeout: float = Field(3.05, gt=0, le=60)
    # Retries of idempotent GETs on 500/502/503/504 and connection errors, with exponential backoff
    # (urllib3's backoff_factor: 0.3 s, 0.6 s, ...). POST/PATCH/DELETE are never retried.
    retries: int = Field(2, ge=0, le=5)
    backoff: float = Field(0.3, ge=0, le=10)
    # Lists are read 100 items a page; past this many pages the gate refuses to decide on a part.
    max_pages: int = Field(30, ge=1, le=100)
    # Cache lifetimes. Expiry only ever causes a re-check, never an allow.
    installation_ttl: float = Field(900.0, ge=0, le=86_400)
    fact_ttl: float = Field(60.0, ge=0, le=3_600)  # collaborator permission, team membership
    token_refresh_margin: float = Field(300.0, ge=60, le=1_800)  # renew a token this long before expiry
    etag_cache_bytes: int = Field(32 * 1024 * 1024, ge=0)
    user_agent: str = "agent-gate"

    def __repr__(self) -> str:
        return f"GitHubAppConfig(app_id={self.app_id}, api_url={self.api_url!r})"

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        """https, or plain http to a loopback address only (tests): tokens never cross a network in clear."""
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return url
        raise ValueError(
            f"expected an https URL such as {DEFAULT_API_URL} or https://HOST/api/v3 (plain http only to a "
            "loopback address)"
        )

    @classmethod
    def of(cls, credentials: AppCredentials | GitHubAppConfig) -> GitHubAppConfig:
        """This config, or one built from another object naming the App (defaults for the rest)."""
        if isinstance(credentials, GitHubAppConfig):
            return credentials
        return cls(
            app_id=credentials.app_id, private_key=credentials.private_key, api_url=credentials.api_url
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
