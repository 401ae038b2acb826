"""An administrator's token, for the few writes the App must never be able to make itself.

``agent-gate protect`` enables the App's deployment protection rule on environments and creates the
ruleset that requires its check. Both need administration of the repository, which the App does
not hold (an App that could change its own rules could lift them). So those writes go with a
person's token, taken from ``GH_TOKEN``, ``GITHUB_TOKEN`` or ``gh auth token``, in that order: it
is held in memory as a ``SecretStr`` for one command, never stored, never logged, never shown.

Before any write, :meth:`AdminGitHub.check` asks GitHub what the token may do and refuses one that
cannot, naming what it lacks: the ``repo`` scope of a classic token (GitHub lists a classic token's
scopes in ``X-OAuth-Scopes``), the person's admin role on the repository (``permissions.admin``),
or access to the repository at all (a 404). A fine-grained token's permissions are not shown by
GitHub; it is refused on its first write, with the permission GitHub names
(``X-Accepted-GitHub-Permissions``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from app.errors import GateError, GitHubError, GitHubNotFound
from app.github.auth import repo_path
from app.github.protocol import Credential, Transport

# The credential scope of the admin token: its own rate-limit cooldown and ETag keys, never the App's.
ADMIN_SCOPE = "admin"
CLASSIC_SCOPE = "repo"
FINE_GRAINED = "Administration: Read and write"
NEEDS = (
    f"a classic token with the `{CLASSIC_SCOPE}` scope, or a fine-grained token with {FINE_GRAINED} on the "
    "repository, of a person who is an admin of it"
)


class AdminTokenError(GateError):
    """No administrator's token, or one GitHub says cannot make protect's writes."""

    default_code = "admin-token-refused"


@dataclass(frozen=True)
class AdminToken:
    """A person's token and where it came from (``GH_TOKEN``, ``GITHUB_TOKEN``, ``gh auth token``)."""

    token: SecretStr = field(repr=False)
    source: str

    def __repr__(self) -> str:
        return f"AdminToken(source={self.source!r})"


def find_admin_token(
    *,
    host: str = "github.com",
    environ: Mapping[str, str] = os.environ,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> AdminToken:
    """The administrator's token: ``GH_TOKEN``, else ``GITHUB_TOKEN``, else ``gh auth token`` (for
    ``host``, GitHub Enterprise Server's web host). Raises :class:`AdminTokenError` when there is none."""
    for name in ("GH_TOKEN", "GITHUB_TOKEN"):
        value = environ.get(name, "").strip()
        if value:
            return AdminToken(SecretStr(value), name)
    gh = shutil.which("gh", path=environ.get("PATH"))
    if gh is not None:
        try:
            argv = [gh, "auth", "token"] + ([] if host == "github.com" else ["--hostname", host])
            done = run(argv, capture_output=True, text=True, timeout=15, check=False)
        except (OSError, subprocess.SubprocessError):
            done = None
        value = done.stdout.strip() if done is not None and done.returncode == 0 else ""
        if value:
            return AdminToken(SecretStr(value), "gh auth token")
    raise AdminTokenError(
        "protect writes the repository's rules, which needs an administrator's token the App does not hold: "
        f"set GH_TOKEN (or GITHUB_TOKEN) to {NEEDS}, or log in with `gh auth login`; the token is used for "
        "this command only and never stored",
        code="admin-token-missing",
    )


@dataclass(frozen=True)
class TokenCheck:
    """What GitHub said about the token: a classic token's scopes (None: fine-grained) and the login's role."""

    scopes: tuple[str, ...] | None
    admin: bool


class AdminGitHub:
    """GitHub's REST API with the administrator's token, over the App client's transport (its
    retries, rate limits and error messages)."""

    def __init__(self, http: Transport, token: AdminToken) -> None:
        self._http = http
        self._token = token
        self._credential = Credential(ADMIN_SCOPE, token.token)

    def __repr__(self) -> str:
        return f"AdminGitHub({self._token!r})"

    def check(self, repository: str) -> TokenCheck:
        """Refuse (:class:`AdminTokenError`) a token that cannot administer ``repository``."""
        where = f"the token from {self._token.source}"
        try:
            reply = self._http.request(
                "GET",
                f"/repos/{repo_path(repository)}",
                credential=self._credential,
                what=f"checking what {where} may do on {repository}",
            )
        except GitHubNotFound as exc:
            raise AdminTokenError(
                f"{where} cannot see {repository} (404): a fine-grained token must be granted this repository "
                f"(Repository access), a classic one needs the `{CLASSIC_SCOPE}` scope; protect needs {NEEDS}"
            ) from exc
        except GitHubError as exc:
            if exc.http_status == 401:
                raise AdminTokenError(
                    f"GitHub refused {where} (401: expired or revoked); protect needs {NEEDS}"
                ) from exc
            raise
        raw = reply.headers.get("X-OAuth-Scopes")
        scopes = None if raw is None else tuple(s.strip() for s in raw.split(",") if s.strip())
        if scopes is not None and CLASSIC_SCOPE not in scopes:
            shown = ", ".join(scopes) or "none"
            raise AdminTokenError(
                f"{where} is a classic token without the `{CLASSIC_SCOPE}` scope (it has: {shown}); protect "
                f"needs {NEEDS}: run `gh auth refresh -s {CLASSIC_SCOPE}` or make a token with it"
            )
        permissions = reply.data.get("permissions") if isinstance(reply.data, dict) else None
        admin = isinstance(permissions, dict) and permissions.get("admin") is True
        if not admin:
            raise AdminTokenError(
                f"{where} belongs to someone who is not an admin of {repository} (or is no person's token, "
                "like a workflow's GITHUB_TOKEN); enabling a deployment "
                f"protection rule and writing a ruleset need the admin role: use {NEEDS}"
            )
        return TokenCheck(scopes, admin)

    def get(self, path: str, *, what: str, params: Mapping[str, str | int] | None = None) -> Any:
        """The JSON of one GET, never from the ETag cache (a write follows what it read)."""
        return self._http.request("GET", path, credential=self._credential, what=what, params=params).data

    def write(self, method: str, path: str, body: Mapping[str, Any], *, what: str) -> Any:
        """One write; a 403 or 404 becomes :class:`AdminTokenError` naming what the token lacks."""
        try:
            reply = self._http.request(
                method,
                path,
                credential=self._credential,
                what=what,
                json_body=body,
                hint=f"the token from {self._token.source} needs {FINE_GRAINED} (fine-grained) or `{CLASSIC_SCOPE}`",
            )
        except GitHubError as exc:
            if exc.http_status in (403, 404):
                said = exc.message.split(": see the permissions in docs/github-app.md")[0]
                raise AdminTokenError(said.removesuffix("; the decision was not made")) from exc
            raise
        return reply.data
