"""The GitHub App's REST client: one Session, retries, rate limits, ETags, pagination, call counts.

- One ``requests.Session`` with connection reuse; proxy and CA settings resolved once at start-up
  (the per-call scan of the environment costs ~150 µs).
- Idempotent GETs are retried with backoff on 500/502/503/504 and connection errors (urllib3
  ``Retry``); POST/PATCH/DELETE are never retried.
- 403/429 with ``Retry-After`` or an exhausted ``x-ratelimit-remaining`` raise
  ``GitHubError(code="github-rate-limited")`` at once, without hammering.
- GETs send ``If-None-Match`` from a bounded, locked ETag cache; a 304 (free of rate limit) is
  served from it.
- Pagination follows ``Link: rel="next"`` up to a hard page cap, then fails closed.
- Every HTTP request made by the current thread is counted (``calls``), for the audit record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from cachetools import LRUCache, TTLCache
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app.errors import GitHubError, GitHubNotFound
from app.github.auth import AppAuth, InstallationToken
from app.settings import GitHubSettings

log = logging.getLogger("agent_gate.github")

API_VERSION = "2022-11-28"
MAX_PAGES = 30
TOKEN_REFRESH_MARGIN = 300  # seconds before expires_at when a cached installation token is renewed


@dataclass(frozen=True)
class _Reply:
    status: int
    data: Any
    next_url: str | None


class GitHubClient:
    """The small surface the gate needs from GitHub, as a GitHub App. Thread-safe."""

    def __init__(
        self,
        settings: GitHubSettings,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = (3.05, 10.0),
        retries: int = 2,
        backoff: float = 0.3,
        fact_ttl: float = 60.0,
    ) -> None:
        self.api_url = settings.api_url.rstrip("/")
        self._auth = AppAuth(settings.app_id, settings.private_key, clock=clock)
        self._clock = clock
        self._timeout = timeout
        self._session = session or requests.Session()
        env = self._session.merge_environment_settings(self.api_url, {}, None, None, None)
        self._session.trust_env = False
        self._session.proxies.update(env.get("proxies") or {})
        self._session.verify = env.get("verify", True)
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "agent-gate",
            }
        )
        self._lock = threading.Lock()
        self._installations: TTLCache[str, int] = TTLCache(maxsize=1024, ttl=3600, timer=clock)
        self._tokens: dict[int, InstallationToken] = {}
        self._etags: LRUCache[str, tuple[str, _Reply]] = LRUCache(maxsize=4096)
        self._facts: TTLCache[tuple[str, ...], Any] = TTLCache(maxsize=8192, ttl=fact_ttl, timer=clock)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, app_id={self._auth.app_id})"

    # -- counting ------------------------------------------------------------------------------
    @property
    def calls(self) -> int:
        """HTTP requests made so far by the current thread (304s included)."""
        return int(getattr(self._local, "calls", 0))

    @property
    def not_modified(self) -> int:
        """How many of those were answered 304 from the ETag cache (free of rate limit)."""
        return int(getattr(self._local, "not_modified", 0))

    def _count(self) -> None:
        self._local.calls = self.calls + 1

    # -- HTTP ----------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        *,
        auth: str,
        what: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        use_etag: bool = False,
    ) -> _Reply:
        headers = {"Authorization": f"Bearer {auth}"}
        cache_key = None
        cached: _Reply | None = None
        if use_etag:
            # Keyed by URL and the installation the token belongs to, never by the token itself.
            cache_key = f"{url}?{sorted((params or {}).items())}"
            with self._lock:
                entry = self._etags.get(cache_key)
            if entry:
                headers["If-None-Match"] = entry[0]
                cached = entry[1]
        self._count()
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                params=params,
                json=body,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # With retries mounted, a timeout surfaces as a ConnectionError whose reason is urllib3's.
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(exc, requests.Timeout) or isinstance(reason, urllib3.exceptions.TimeoutError):
                raise GitHubError(
                    f"GitHub did not answer in time while {what}; the decision was not made, retry later"
                ) from exc
            raise GitHubError(
                f"GitHub could not be reached while {what} ({exc.__class__.__name__}); the decision was not made, "
                "retry later"
            ) from exc
        if response.status_code == 304 and cached is not None:
            self._local.not_modified = getattr(self._local, "not_modified", 0) + 1
            return cached
        self._raise_for(response, what)
        data: Any = None
        if response.status_code != 204 and response.content:
            try:
                data = response.json()
            except ValueError as exc:
                raise GitHubError(f"GitHub's answer was not JSON while {what}") from exc
        reply = _Reply(response.status_code, data, response.links.get("next", {}).get("url"))
        if cache_key is not None and response.status_code == 200 and response.headers.get("ETag"):
            with self._lock:
                self._etags[cache_key] = (response.headers["ETag"], reply)
        return reply

    def _raise_for(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        retry_after = _retry_after(response, self._clock())
        if status in (403, 429) and (
            retry_after is not None or response.headers.get("x-ratelimit-remaining") == "0"
        ):
            raise GitHubError(
                f"GitHub's rate limit was reached while {what}; the decision was not made, retry after "
                f"{retry_after or 60} s",
                code="github-rate-limited",
                http_status=status,
                retry_after=retry_after or 60,
            )
        if status == 404:
            raise GitHubNotFound(f"GitHub answered 404 while {what}", http_status=404)
        if status in (401, 403):
            raise GitHubError(
                f"GitHub refused the App's credentials ({status}) while {what}; check the App id, its private key "
                "and that the App is installed on this repository with the permissions in docs/github-app.md",
                http_status=status,
            )
        raise GitHubError(
            f"GitHub answered {status} while {what}; the decision was not made, retry later",
            http_status=status,
        )

    # -- App and installations ---------------------------------------------------------------------
    def installation_id(self, repository: str) -> int:
        with self._lock:
            cached = self._installations.get(repository)
        if cached is not None:
            return cached
        reply = self._send(
            "GET",
            f"{self.api_url}/repos/{repository}/installation",
            auth=self._auth.app_jwt(),
            what=f"finding the App's installation on {repository}",
        )
        installation = int(reply.data["id"])
        with self._lock:
            self._installations[repository] = installation
        return installation

    def installation_token(
        self,
        repository: str,
        *,
        repository_ids: list[int] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> InstallationToken:
        """A token for the repository's installation. Down-scoped tokens (ids/permissions) are never cached."""
        installation = self.installation_id(repository)
        scoped = repository_ids is not None or permissions is not None
        if not scoped:
            with self._lock:
                cached = self._tokens.get(installation)
            if cached and cached.expires_at.timestamp() - self._clock() > TOKEN_REFRESH_MARGIN:
                return cached
        body: dict[str, Any] = {}
        if repository_ids is not None:
            body["repository_ids"] = repository_ids
        if permissions is not None:
            body["permissions"] = permissions
        data = self._send(
            "POST",
            f"{self.api_url}/app/installations/{installation}/access_tokens",
            auth=self._auth.app_jwt(),
            body=body or None,
            what="creating an installation access token",
        ).data
        token = InstallationToken(
            token=SecretStr(str(data["token"])),
            expires_at=datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00")).astimezone(UTC),
            installation_id=installation,
            permissions=dict(data.get("permissions") or {}),
            repository_ids=tuple(repository_ids) if repository_ids is not None else None,
        )
        if not scoped:
            with self._lock:
                self._tokens[installation] = token
        return token

    def revoke_installation_token(self, token: SecretStr) -> None:
        """``DELETE /installation/token`` (204). An already expired or revoked token is not an error."""
        try:
            self._send(
                "DELETE",
                f"{self.api_url}/installation/token",
                auth=token.get_secret_value(),
                what="revoking an installation token",
            )
        except GitHubError as exc:
            if exc.http_status in (401, 404):
                return
            raise

    # -- REST reads with the installation token -------------------------------------------------
    def get(self, repository: str, path: str, *, what: str, params: dict[str, Any] | None = None) -> Any:
        token = self.installation_token(repository).token.get_secret_value()
        return self._send(
            "GET", f"{self.api_url}{path}", auth=token, params=params, what=what, use_etag=True
        ).data

    def paginate(self, repository: str, path: str, *, what: str) -> list[Any]:
        """Every item of a list endpoint, following Link rel="next"; fails closed past MAX_PAGES."""
        token = self.installation_token(repository).token.get_secret_value()
        url: str | None = f"{self.api_url}{path}"
        params: dict[str, Any] | None = {"per_page": 100}
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            reply = self._send("GET", url, auth=token, params=params, what=what, use_etag=True)  # type: ignore[arg-type]  # url is set
            if not isinstance(reply.data, list):
                raise GitHubError(f"GitHub's answer was not a list while {what}")
            items.extend(reply.data)
            url, params = reply.next_url, None  # the next link carries its own query
            if url is None:
                return items
        raise GitHubError(f"more than {MAX_PAGES} pages while {what}; refusing to decide on a partial list")

    def cached_fact(self, key: tuple[str, ...], fetch: Callable[[], Any]) -> Any:
        """Stable facts (permissions, team membership) for a short TTL; a miss only means a re-check."""
        with self._lock:
            if key in self._facts:
                return self._facts[key]
        value = fetch()
        with self._lock:
            self._facts[key] = value
        return value

    # -- checks (implements app.checks.ChecksAPI) -----------------------------------------------
    def find_check_run(self, repository: str, sha: str, name: str) -> int | None:
        data = self.get(
            repository,
            f"/repos/{repository}/commits/{sha}/check-runs",
            params={"check_name": name, "filter": "latest"},
            what=f"finding check run {name!r}",
        )
        runs = data.get("check_runs") or []
        return int(runs[0]["id"]) if runs else None

    def create_check_run(self, repository: str, body: dict[str, Any]) -> int:
        token = self.installation_token(repository).token.get_secret_value()
        reply = self._send(
            "POST",
            f"{self.api_url}/repos/{repository}/check-runs",
            auth=token,
            body=body,
            what=f"creating check run {body.get('name')!r}",
        )
        return int(reply.data["id"])

    def update_check_run(self, repository: str, check_run_id: int, body: dict[str, Any]) -> None:
        token = self.installation_token(repository).token.get_secret_value()
        self._send(
            "PATCH",
            f"{self.api_url}/repos/{repository}/check-runs/{check_run_id}",
            auth=token,
            body=body,
            what=f"updating check run {check_run_id}",
        )


def _retry_after(response: requests.Response, now: float) -> int | None:
    value = response.headers.get("Retry-After")
    if value and value.isdigit():
        return int(value)
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(1, int(reset) - int(now))
    return None


def user_path(login: str) -> str:
    return quote(login, safe="")
