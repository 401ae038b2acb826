"""GitHub App authentication: the App JWT, the repository's installation, installation tokens.

1. The App JWT: RS256 with the App's private key (loaded once), ``iss`` = the App id as a string,
   ``iat`` back-dated 60 s for clock skew, ``exp`` 9 minutes ahead (GitHub refuses more than 10).
2. ``GET /repos/{owner}/{repo}/installation`` (with the App JWT) -> the installation id, cached
   for ``installation_ttl``.
3. ``POST /app/installations/{id}/access_tokens`` -> an installation token, cached until
   ``token_refresh_margin`` before its ``expires_at``. Down-scoped tokens (repository ids,
   permissions) are minted for one use and never cached.

Tokens and keys are ``SecretStr``: never logged, never in a ``repr`` or an error. A token's format
and length are GitHub's business (a new format is being rolled out): nothing here inspects them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt
from cachetools import LRUCache, TTLCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import SecretStr

from app.errors import ConfigError, GitHubError, GitHubNotFound
from app.github.config import GitHubAppConfig
from app.github.protocol import Credential, InstallationToken, Transport

__all__ = ["AppAuth", "GitHubAppAuth", "InstallationToken", "repo_path"]

JWT_BACKDATE = 60  # seconds: GitHub's clock and ours may disagree
JWT_LIFETIME = 9 * 60  # seconds after now; GitHub refuses an exp more than 10 minutes ahead
# GitHub adds metadata:read to every installation token; it is never more than that.
_IMPLIED_PERMISSIONS = {"metadata": "read"}
_LEVELS = {"read": 1, "write": 2, "admin": 3}


class AppAuth:
    """Signs App JWTs. The key is parsed once, here; an unusable key stops the start-up."""

    def __init__(
        self, app_id: int, private_key: SecretStr, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.app_id = app_id
        self._clock = clock
        try:
            key = serialization.load_pem_private_key(private_key.get_secret_value().encode(), password=None)
        except (ValueError, TypeError) as exc:
            # The exception's text is not shown: it could quote part of the key.
            raise ConfigError(
                "the GitHub App's private key is not an unencrypted PEM private key; download a new one "
                "from the App's settings and set GATE_GITHUB_PRIVATE_KEY_FILE (docs/github-app.md)"
            ) from exc
        if not isinstance(key, RSAPrivateKey):
            raise ConfigError(
                f"the GitHub App's private key is a {type(key).__name__.removeprefix('_')}, expected the RSA key "
                "GitHub generates for Apps (docs/github-app.md)"
            )
        self._key = key

    def __repr__(self) -> str:
        return f"AppAuth(app_id={self.app_id})"

    def app_jwt(self) -> SecretStr:
        now = int(self._clock())
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}
        return SecretStr(jwt.encode(claims, self._key, algorithm="RS256"))

    def credential(self) -> Credential:
        return Credential("app", self.app_jwt())


class GitHubAppAuth:
    """The repository's installation and its tokens, cached, behind a lock. Thread-safe."""

    def __init__(
        self,
        config: GitHubAppConfig,
        http: Transport,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = AppAuth(config.app_id, config.private_key, clock=clock)
        self._http = http
        self._clock = clock
        self._margin = config.token_refresh_margin
        self._lock = threading.Lock()
        self._mint_lock = threading.Lock()
        self._lookup_lock = threading.Lock()
        self._installations: TTLCache[str, int] = TTLCache(
            maxsize=4096, ttl=config.installation_ttl, timer=clock
        )
        self._tokens: LRUCache[int, InstallationToken] = LRUCache(maxsize=1024)

    def __repr__(self) -> str:
        return f"GitHubAppAuth(app_id={self.app.app_id})"

    def installation_id(self, repository: str) -> int:
        """The id of the App's installation on ``owner/name``. Raises ``GitHubError`` when not installed."""
        key = repository.lower()
        with self._lock:
            cached = self._installations.get(key)
        if cached is not None:
            return cached
        with self._lookup_lock:  # one lookup when a decision's concurrent calls all find it missing
            with self._lock:
                cached = self._installations.get(key)
            return cached if cached is not None else self._look_up_installation(repository, key)

    def _look_up_installation(self, repository: str, key: str) -> int:
        try:
            reply = self._http.request(
                "GET",
                f"/repos/{repo_path(repository)}/installation",
                credential=self.app.credential(),
                what=f"finding the App's installation on {repository}",
            )
        except GitHubNotFound as exc:
            raise GitHubError(
                f"the GitHub App (id {self.app.app_id}) is not installed on {repository}; install it on this "
                "repository (docs/github-app.md); the decision was not made",
                code="github-app-not-installed",
                http_status=404,
            ) from exc
        installation = _int_field(reply.data, "id", f"finding the installation of {repository}")
        with self._lock:
            self._installations[key] = installation
        return installation

    def credential(self, repository: str) -> Credential:
        """The cached installation token of the repository's installation, as a request credential."""
        token = self.installation_token(repository)
        return Credential(f"installation:{token.installation_id}", token.token)

    def installation_token(
        self,
        repository: str,
        *,
        repository_ids: Sequence[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        """A token of ``repository``'s installation; down-scoped when ids or permissions are given.

        A down-scoped token carries at most the permissions asked for (GitHub adds metadata:read);
        anything broader is revoked at once and refused.
        """
        installation = self.installation_id(repository)
        scoped = repository_ids is not None or permissions is not None
        if not scoped:
            cached = self._fresh(installation)
            if cached is not None:
                return cached
        body: dict[str, Any] = {}
        if repository_ids is not None:
            body["repository_ids"] = [int(i) for i in repository_ids]
        if permissions is not None:
            body["permissions"] = dict(permissions)
        with self._mint_lock:
            if not scoped and (cached := self._fresh(installation)) is not None:
                return cached  # another thread minted it while we waited
            token = self._mint(repository, installation, body)
            if not scoped:
                with self._lock:
                    self._tokens[installation] = token
        if permissions is not None:
            self._check_scope(token, dict(permissions))
        return token

    def forget(self, repository: str) -> None:
        """Drop what is cached for the repository (after GitHub refused a cached token)."""
        with self._lock:
            installation = self._installations.pop(repository.lower(), None)
            if installation is not None:
                self._tokens.pop(installation, None)

    def revoke_installation_token(self, token: SecretStr) -> None:
        """``DELETE /installation/token`` (204). An expired or already revoked token is not an error."""
        with self._lock:
            for installation, cached in list(self._tokens.items()):
                if cached.token.get_secret_value() == token.get_secret_value():
                    del self._tokens[installation]
        try:
            self._http.request(
                "DELETE",
                "/installation/token",
                credential=Credential("revocation", token),
                what="revoking an installation token",
            )
        except GitHubError as exc:
            if exc.http_status in (401, 404):
                return  # already dead: revocation is idempotent
            raise

    def _fresh(self, installation: int) -> InstallationToken | None:
        with self._lock:
            cached = self._tokens.get(installation)
        if cached is not None and cached.expires_at.timestamp() - self._clock() > self._margin:
            return cached
        return None

    def _mint(self, repository: str, installation: int, body: dict[str, Any]) -> InstallationToken:
        what = f"creating an installation token for {repository}"
        try:
            reply = self._http.request(
                "POST",
                f"/app/installations/{installation}/access_tokens",
                credential=self.app.credential(),
                what=what,
                json_body=body,
                hint="the App may have been uninstalled, or lacks a permission the rule asks for",
            )
        except GitHubNotFound as exc:
            self.forget(repository)  # the installation is gone: look it up again next time
            raise GitHubError(
                f"GitHub answered 404 while {what}: the App's installation {installation} is gone; "
                "re-install the App (docs/github-app.md); the decision was not made",
                code="github-app-not-installed",
                http_status=404,
            ) from exc
        raw_expiry = _str_field(reply.data, "expires_at", what)
        try:
            expires_at = datetime.fromisoformat(raw_expiry.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError as exc:
            raise GitHubError(f"GitHub's answer had an unreadable expires_at while {what}") from exc
        granted = reply.data.get("permissions")
        return InstallationToken(
            token=SecretStr(_str_field(reply.data, "token", what)),
            expires_at=expires_at,
            installation_id=installation,
            permissions={str(k): str(v) for k, v in granted.items()} if isinstance(granted, dict) else {},
            repository_ids=tuple(body["repository_ids"]) if "repository_ids" in body else None,
        )

    def _check_scope(self, token: InstallationToken, asked: dict[str, str]) -> None:
        allowed = {**_IMPLIED_PERMISSIONS, **asked}
        broader = {
            k: v
            for k, v in token.permissions.items()
            if _LEVELS.get(v, 99) > _LEVELS.get(allowed.get(k, ""), -1)  # unknown levels count as broader
        }
        if broader:
            self.revoke_installation_token(token.token)
            raise GitHubError(
                "GitHub granted a token broader than asked ("
                + ", ".join(f"{k}: {v}" for k, v in sorted(broader.items()))
                + "); it was revoked and not handed out",
                code="github-token-too-broad",
            )


def repo_path(repository: str) -> str:
    """``owner/name`` with each part quoted for a URL path."""
    owner, _, name = repository.partition("/")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def _int_field(data: Any, name: str, what: str) -> int:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise GitHubError(f"GitHub's answer lacked {name!r} while {what}; the decision was not made")
    return value


def _str_field(data: Any, name: str, what: str) -> str:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise GitHubError(f"GitHub's answer lacked {name!r} while {what}; the decision was not made")
    return value
