"""GitHub App authentication: the App JWT and installation access tokens (never logged)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import jwt
from pydantic import SecretStr


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token. Its format and length are GitHub's business: we never assume them."""

    token: SecretStr
    expires_at: datetime
    installation_id: int
    permissions: dict[str, str]
    repository_ids: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return f"InstallationToken(installation_id={self.installation_id}, expires_at={self.expires_at.isoformat()})"


class AppAuth:
    """Signs the App JWT: RS256, iss = App id, iat back-dated 60 s for clock skew, exp within 10 min."""

    def __init__(
        self, app_id: int, private_key: SecretStr, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.app_id = app_id
        self._key = private_key
        self._clock = clock

    def __repr__(self) -> str:
        return f"AppAuth(app_id={self.app_id})"

    def app_jwt(self) -> str:
        now = int(self._clock())
        return jwt.encode(
            {"iat": now - 60, "exp": now + 9 * 60, "iss": str(self.app_id)},
            self._key.get_secret_value(),
            algorithm="RS256",
        )
