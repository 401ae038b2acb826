"""The small surface the gate needs from GitHub, as Protocols, and the values that cross it.

``app.github.client.GitHubClient`` implements :class:`GitHubAPI` over HTTP; tests and
``agent-gate explain`` use fakes that implement the same Protocol, so mypy keeps them honest.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr

# A query string's values, as GitHub's endpoints take them.
Params = Mapping[str, str | int]


@dataclass(frozen=True)
class Credential:
    """What authenticates one request. ``scope`` names whose rate limit and caches it belongs to
    (``app``, ``installation:<id>``); the token itself is never a cache key and never shown."""

    scope: str
    token: SecretStr = field(repr=False)

    def __repr__(self) -> str:
        return f"Credential(scope={self.scope!r})"


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token. Its format and length are GitHub's business: never assumed."""

    token: SecretStr = field(repr=False)
    expires_at: datetime
    installation_id: int
    permissions: dict[str, str] = field(default_factory=dict)
    repository_ids: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        scope = "" if self.repository_ids is None else f", repository_ids={list(self.repository_ids)}"
        return (
            f"InstallationToken(installation_id={self.installation_id}, "
            f"expires_at={self.expires_at.isoformat()}{scope})"
        )


@dataclass(frozen=True)
class Reply:
    """One HTTP answer from GitHub: its JSON (``None`` for 204), the next page's URL, whether it
    was a 304 served from the ETag cache, and the few headers a caller reads (``X-OAuth-Scopes``)."""

    status: int
    data: Any
    next_url: str | None = None
    not_modified: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """The HTTP layer (``app.github.transport.GitHubHTTP``): one session, retries, rate limits, ETags."""

    def request(
        self,
        method: str,
        path: str,
        *,
        credential: Credential,
        what: str,
        params: Params | None = None,
        json_body: Mapping[str, Any] | None = None,
        conditional: bool = False,
        hint: str | None = None,
    ) -> Reply:
        """Send one request; raise ``GitHubError`` (or ``GitHubNotFound``) for any failure."""
        ...


class GitHubAPI(Protocol):
    """What the gate asks of GitHub, as the App installed on a repository (``owner/name``).

    Every method raises ``app.errors.GitHubError`` (503) when GitHub fails, times out or rate-limits,
    and ``app.errors.GitHubNotFound`` for a 404 where the caller may treat absence as an answer.
    ``what`` is a phrase for messages: "reading the reviews of PR #12 in octo-org/octo-repo".
    """

    @property
    def app_id(self) -> int:
        """The App's id (the integration id rulesets and protection rules pin)."""
        ...

    @property
    def calls(self) -> int:
        """HTTP requests made so far by the current thread (304s included)."""
        ...

    @property
    def not_modified(self) -> int:
        """How many of those were answered 304 and served from the ETag cache."""
        ...

    def get_json(self, repository: str, path: str, *, what: str, params: Params | None = None) -> Any:
        """The JSON of one GET with the installation's token (conditional, through the ETag cache)."""
        ...

    def graphql(self, repository: str, query: str, variables: dict[str, Any], *, what: str) -> dict[str, Any]:
        """The ``data`` of one GraphQL query (GraphQL's errors raised as ``GitHubError``)."""
        ...

    def get_all(self, repository: str, path: str, *, what: str) -> list[Any]:
        """Every item of a list endpoint, 100 a page through ``Link: rel="next"``. Fails closed
        (``GitHubError``) past the page cap rather than return part of the list."""
        ...

    def collaborator_permission(self, repository: str, login: str) -> str | None:
        """The account's role on the repository (admin, maintain, write, triage, read, none), cached."""
        ...

    def is_active_team_member(self, repository: str, org: str, team_slug: str, login: str) -> bool:
        """Whether the account is an *active* member of ``@org/team_slug`` (404: not a member), cached."""
        ...

    def installation_token(
        self,
        repository: str,
        *,
        repository_ids: Sequence[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        """A token of the repository's installation. Down-scoped ones (ids/permissions) are not cached."""
        ...

    def revoke_installation_token(self, token: SecretStr) -> None:
        """Revoke a token (``DELETE /installation/token``); an already dead token is not an error."""
        ...

    def review_deployment_protection_rule(self, repository: str, run_id: int, body: dict[str, Any]) -> None:
        """Approve or reject a job held by the App's deployment protection rule, or comment on it."""
        ...
