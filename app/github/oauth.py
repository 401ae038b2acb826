"""Who is reading: the GitHub App's user authorisation (OAuth web flow with PKCE), for the decision page.

The gate sends the reader to ``{web}/login/oauth/authorize`` with a ``state`` and an S256 code
challenge; GitHub sends them back with a ``code``, which the gate exchanges at
``{web}/login/oauth/access_token`` (with the App's client secret and the code verifier) for a user
access token. The token is used once, for ``GET {api}/user``, and then forgotten: the gate keeps
only the user's id and login. Whether that user may read a repository is asked of GitHub with the
App's own installation token (``app.github.client``), never with the user's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
from pydantic import SecretStr

from app.errors import GateError, GitHubError

log = logging.getLogger("agent_gate.github.oauth")

API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class GitHubUser:
    """A GitHub account that completed the login: its stable id and its login at that moment."""

    id: int
    login: str


class LoginRefused(GateError):
    """GitHub did not confirm the reader (a refused, expired or replayed code): 401."""

    status = 401
    default_code = "login-failed"


class UserLogin(Protocol):
    """The login flow's two calls; tests pass the real class against the fake GitHub."""

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str) -> str:
        """Where to send the reader's browser."""
        ...

    def identify(self, *, code: str, redirect_uri: str, code_verifier: str) -> GitHubUser:
        """Exchange the code and read who it belongs to. Raises LoginRefused or GitHubError."""
        ...


class GitHubOAuth:
    """The App's user authorisation against github.com (or GHES: ``web_url`` and ``api_url``)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: SecretStr,
        web_url: str = "https://github.com",
        api_url: str = "https://api.github.com",
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"GitHubOAuth(client_id={self.client_id!r}, web_url={self.web_url!r})"

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "allow_signup": "false",
            }
        )
        return f"{self.web_url}/login/oauth/authorize?{query}"

    def identify(self, *, code: str, redirect_uri: str, code_verifier: str) -> GitHubUser:
        token = self._exchange(code=code, redirect_uri=redirect_uri, code_verifier=code_verifier)
        data = self._send(
            "GET",
            f"{self.api_url}/user",
            what="reading the signed-in user",
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
        )
        user_id, login = data.get("id"), data.get("login")
        if (
            not isinstance(user_id, int)
            or isinstance(user_id, bool)
            or not isinstance(login, str)
            or not login
        ):
            raise GitHubError(
                "GitHub's GET /user answered without an id and login", code="github-unavailable"
            )
        return GitHubUser(id=user_id, login=login)

    def _exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> SecretStr:
        data = self._send(
            "POST",
            f"{self.web_url}/login/oauth/access_token",
            what="exchanging the login code",
            headers={"Accept": "application/json"},
            form={
                "client_id": self.client_id,
                "client_secret": self._secret.get_secret_value(),
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
        )
        # GitHub answers a refused exchange with 200 and an ``error`` field.
        if "error" in data:
            error = str(data.get("error"))[:100]
            log.info("GitHub refused a login code: %s", error)
            raise LoginRefused(
                f"GitHub did not confirm the login ({error}); the link may have expired: log in again"
            )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise GitHubError(
                "GitHub's token exchange answered without an access token", code="github-unavailable"
            )
        return SecretStr(token)

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str],
        form: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._session.request(
                method, url, headers=headers, data=form, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise GitHubError(
                f"GitHub could not be reached while {what} ({exc.__class__.__name__})",
                code="github-unavailable",
            ) from exc
        if response.status_code == 401:
            raise LoginRefused(f"GitHub refused the login while {what}: log in again")
        if response.status_code != 200:
            raise GitHubError(
                f"GitHub answered {response.status_code} while {what}",
                code="github-unavailable",
                http_status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise GitHubError(f"GitHub answered something that is not JSON while {what}") from exc
        if not isinstance(data, dict):
            raise GitHubError(f"GitHub answered something that is not a JSON object while {what}")
        return data
