"""The HTTP layer under the GitHub App client: one Session, retries, rate limits, ETags, pagination.

- One ``requests.Session`` with connection reuse. Proxy and CA settings are read from the
  environment once, at start-up (``trust_env`` would rescan it on every call, ~150 µs).
- Idempotent GETs are retried with exponential backoff on 500/502/503/504 and on connection
  errors (urllib3 ``Retry``). A read timeout is not retried (the request reached GitHub; waiting
  twice would outlast the caller), nor is a response that says when to come back, nor any
  POST/PATCH/DELETE.
- 403/429 with ``Retry-After``, with ``x-ratelimit-remaining: 0`` (until ``x-ratelimit-reset``), or
  naming a secondary rate limit (60 s) raise ``GitHubError(code="github-rate-limited")`` at once,
  and the client then refuses to call GitHub for that credential's scope until the wait is over.
- GETs send ``If-None-Match`` from a bounded, locked ETag cache keyed by credential scope and URL;
  a 304 (free of rate limit) is served from it.
- Lists follow ``Link: rel="next"`` (same origin only) up to a hard page cap, then fail closed.
- Every HTTP request made by the current thread is counted (``calls``; retries included), for the
  decision's audit record, with the requests of the work it hands to a pool in a copy of its
  context (app/github/counting.py).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from cachetools import LRUCache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app.errors import GitHubError, GitHubNotFound
from app.github.config import GitHubAppConfig
from app.github.counting import CallCounter
from app.github.graphql import graphql_url
from app.github.protocol import Credential, Params, Reply
from app.observe import deadline
from app.observe.metrics import metrics

log = logging.getLogger("agent_gate.github")

API_VERSION = "2022-11-28"
PER_PAGE = 100
SECONDARY_RATE_LIMIT_WAIT = 60  # GitHub: "otherwise, wait for at least one minute before retrying"
MAX_RATE_LIMIT_WAIT = 3600
# Headers a caller may read from a Reply: a classic token's scopes (``agent-gate protect``).
_KEPT_HEADERS = ("X-OAuth-Scopes",)


class _GitHubRetry(Retry):
    """urllib3's Retry, except for two answers that must not be retried right away."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if has_retry_after:
            return False  # GitHub said when to come back: the caller hears it, we don't retry early
        return super().is_retry(method, status_code, has_retry_after)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise error  # the request reached GitHub and it did not answer in time: don't wait twice
        return super().increment(method, url, response, error, _pool, _stacktrace)


@dataclass(frozen=True)
class _Cached:
    etag: str
    content: bytes
    next_url: str | None


class GitHubHTTP:
    """The HTTP layer (implements ``app.github.protocol.Transport``). Thread-safe."""

    def __init__(
        self,
        config: GitHubAppConfig,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_url = config.api_url
        origin = urlsplit(self.api_url)
        self._origin = (origin.scheme, origin.netloc)
        self._prefix = origin.path.rstrip("/") + "/"
        self.graphql_url = graphql_url(self.api_url)
        self._connect_timeout = config.connect_timeout
        self._read_timeout = config.timeout
        self._retries = config.retries
        self._max_pages = config.max_pages
        self._clock = clock
        self._session = session or requests.Session()
        # Resolve proxies (honouring no_proxy for the API host) and the CA bundle once.
        env = self._session.merge_environment_settings(self.api_url, {}, None, None, None)
        self._session.trust_env = False
        self._session.proxies = dict(env.get("proxies") or {})
        self._session.verify = env.get("verify", True)
        retry = _GitHubRetry(
            total=config.retries,
            connect=config.retries,
            read=config.retries,  # connection resets; read timeouts are refused in increment()
            status=config.retries,
            redirect=0,
            other=0,
            backoff_factor=config.backoff,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=False,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": config.user_agent,
            }
        )
        self._lock = threading.Lock()
        self._etags: LRUCache[str, _Cached] | None = (
            LRUCache(maxsize=config.etag_cache_bytes, getsizeof=lambda c: len(c.content) + 256)
            if config.etag_cache_bytes > 0
            else None
        )
        self._cooldowns: LRUCache[str, float] = LRUCache(maxsize=1024)
        self._counter = CallCounter()

    def __repr__(self) -> str:
        return f"GitHubHTTP(api_url={self.api_url!r})"

    # -- counting ----------------------------------------------------------------------------------
    @property
    def calls(self) -> int:
        return self._counter.calls

    @property
    def not_modified(self) -> int:
        return self._counter.not_modified

    def _count(self, attempts: int) -> None:
        self._counter.add(attempts)

    # -- requests ----------------------------------------------------------------------------------
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
        fresh: bool = False,
    ) -> Reply:
        """Send one request (retried per the policy above); raise ``GitHubError`` for any failure.

        ``conditional`` GETs go through the ETag cache; ``fresh`` skips ``If-None-Match`` once (the
        answer still refreshes the cache)."""
        url = self._url(path, params, what)
        self._check_cooldown(credential.scope, what)
        headers = {"Authorization": f"Bearer {credential.token.get_secret_value()}"}
        cache_key = f"{credential.scope} {url}" if conditional and method == "GET" else None
        cached = None if fresh else self._cached(cache_key)
        if cached is not None:
            headers["If-None-Match"] = cached.etag
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise GitHubError(
                f"the decision ran out of time before {what} (GATE_DECISION_DEADLINE); GitHub is slow, so the "
                "decision was not made; retry later",
                code="decision-deadline",
                retry_after=5,
            )
        read_timeout = self._read_timeout if left is None else min(self._read_timeout, left)
        started = time.perf_counter()
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                json=json_body,
                timeout=(min(self._connect_timeout, read_timeout), read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self._count(1)
            metrics().github_calls.labels(credential.scope.removeprefix("installation:"), "error").inc()
            raise self._unreachable(exc, what) from exc
        self._count(_attempts(response))
        _observe(credential.scope, response)
        log.debug(
            "GitHub %s %s -> %s (%.0f ms)",
            method,
            url,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        if response.status_code == 304 and cached is not None:
            self._counter.add(not_modified=1)
            # Prefer the 304's own Link header when GitHub sends one.
            next_url = (
                response.links.get("next", {}).get("url") if "Link" in response.headers else cached.next_url
            )
            return Reply(200, _parse(cached.content, what), next_url, not_modified=True)
        self._raise_for(response, credential.scope, what, hint)
        data = _parse(response.content, what) if response.status_code != 204 and response.content else None
        next_url = response.links.get("next", {}).get("url")
        etag = response.headers.get("ETag")
        if cache_key is not None and response.status_code == 200 and etag:
            self._remember(cache_key, _Cached(etag, response.content, next_url))
        kept = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
        return Reply(response.status_code, data, next_url, headers=kept)

    def paginate(self, path: str, *, credential: Credential, what: str, hint: str | None = None) -> list[Any]:
        """Every item of a list endpoint, 100 a page; fails closed past the page cap."""
        url: str = path
        params: Params | None = {"per_page": PER_PAGE}
        items: list[Any] = []
        for _ in range(self._max_pages):
            reply = self.request(
                "GET", url, credential=credential, what=what, params=params, conditional=True, hint=hint
            )
            if reply.not_modified and reply.next_url is None and _is_full_page(reply.data):
                # A full last page, unchanged: but an ETag covers the body, not the Link header, so a
                # list that has since grown past this page looks the same. Ask again, unconditionally.
                reply = self.request(
                    "GET",
                    url,
                    credential=credential,
                    what=what,
                    params=params,
                    conditional=True,
                    hint=hint,
                    fresh=True,
                )
            if not isinstance(reply.data, list):
                raise GitHubError(f"GitHub's answer was not a list while {what}; the decision was not made")
            items.extend(reply.data)
            if reply.next_url is None:
                return items
            url, params = reply.next_url, None  # the next link carries its own query
        raise GitHubError(
            f"GitHub's list has more than {self._max_pages} pages of {PER_PAGE} while {what}; the gate does not "
            "decide on part of a list; the decision was not made",
            code="github-list-too-long",
        )

    # -- helpers -----------------------------------------------------------------------------------
    def _url(self, path: str, params: Params | None, what: str) -> str:
        if path == self.graphql_url:
            url = path
        elif path.startswith(("https://", "http://")):
            # A Link header's URL: followed only on GitHub's own origin, so the token never goes elsewhere.
            parts = urlsplit(path)
            if (parts.scheme, parts.netloc) != self._origin or not parts.path.startswith(self._prefix):
                raise GitHubError(
                    f"GitHub's next-page link left {self.api_url} while {what}; refusing to follow it",
                    code="github-unexpected-answer",
                )
            url = path
        else:
            url = self.api_url + path
        if params:
            url += "?" + urlencode(sorted((k, str(v)) for k, v in params.items()))
        return url

    def _cached(self, key: str | None) -> _Cached | None:
        if key is None or self._etags is None:
            return None
        with self._lock:
            return self._etags.get(key)

    def _remember(self, key: str, entry: _Cached) -> None:
        if self._etags is None or len(entry.content) + 256 > self._etags.maxsize:
            return
        with self._lock:
            self._etags[key] = entry

    def _check_cooldown(self, scope: str, what: str) -> None:
        with self._lock:
            until = self._cooldowns.get(scope)
        if until is None:
            return
        wait = math.ceil(until - self._clock())
        if wait > 0:
            raise GitHubError(
                f"GitHub's rate limit was reached a moment ago: the gate is not calling GitHub for {wait} s, "
                f"so it skipped {what}; the decision was not made, retry after {wait} s",
                code="github-rate-limited",
                retry_after=wait,
            )
        with self._lock:
            self._cooldowns.pop(scope, None)

    def _raise_for(self, response: requests.Response, scope: str, what: str, hint: str | None) -> None:
        status = response.status_code
        if status < 300:
            return
        said = _github_message(response)
        if status in (403, 429):
            wait = _rate_limit_wait(response, said, self._clock())
            if wait is not None:
                with self._lock:
                    self._cooldowns[scope] = self._clock() + wait
                raise GitHubError(
                    f"GitHub's rate limit was reached ({status}) while {what}; the gate will not call GitHub "
                    f"again for {wait} s; the decision was not made, retry after {wait} s",
                    code="github-rate-limited",
                    http_status=status,
                    retry_after=wait,
                )
        quoted = f": {said}" if said else ""
        if status == 404:
            raise GitHubNotFound(f"GitHub answered 404 (Not Found) while {what}", http_status=404)
        if status == 401:
            raise GitHubError(
                f"GitHub refused the App's credentials (401{quoted}) while {what}; check GATE_GITHUB_APP_ID, "
                "the App's private key and the gate's clock (docs/github-app.md); the decision was not made",
                code="github-unauthorized",
                http_status=401,
            )
        if status == 403:
            accepted = response.headers.get("X-Accepted-GitHub-Permissions", "").strip()
            if accepted:  # what GitHub says the endpoint takes, for a fine-grained token or an App
                quoted += f"; it accepts {accepted[:120]}"
            raise GitHubError(
                f"GitHub refused access (403{quoted}) while {what}; "
                f"{hint or 'the App may lack a permission'}: see the permissions in docs/github-app.md; "
                "the decision was not made",
                code="github-forbidden",
                http_status=403,
            )
        if status < 400:
            raise GitHubError(
                f"GitHub redirected ({status}) while {what}; was the repository renamed or moved? "
                "The decision was not made",
                http_status=status,
            )
        if status >= 500:
            wait = _retry_after(response)
            if wait is not None:
                # Not retried (GitHub said when to come back); nobody calls GitHub before then.
                with self._lock:
                    self._cooldowns[scope] = self._clock() + wait
                raise GitHubError(
                    f"GitHub answered {status} while {what} and asked to come back in {wait} s; the decision "
                    f"was not made, retry after {wait} s",
                    http_status=status,
                    retry_after=wait,
                )
            tries = f" (after {self._retries + 1} attempts)" if response.request.method == "GET" else ""
            raise GitHubError(
                f"GitHub answered {status} while {what}{tries}; the decision was not made; retry later",
                http_status=status,
            )
        raise GitHubError(
            f"GitHub answered {status}{quoted} while {what}; the decision was not made",
            http_status=status,
        )

    def _unreachable(self, exc: requests.RequestException, what: str) -> GitHubError:
        if isinstance(exc, requests.ConnectTimeout):  # after the connect retries
            return GitHubError(
                f"GitHub could not be reached within {self._connect_timeout:g} s while {what}; the decision was "
                "not made; retry later"
            )
        if isinstance(exc, requests.Timeout):  # a read timeout, never retried (_GitHubRetry)
            return GitHubError(
                f"GitHub did not answer in time ({self._read_timeout:g} s) while {what}; the decision was not made; "
                "retry later"
            )
        return GitHubError(
            f"GitHub could not be reached at {self.api_url} while {what} ({type(exc).__name__}); the decision "
            "was not made; retry later"
        )


def _is_full_page(data: Any) -> bool:
    return isinstance(data, list) and len(data) >= PER_PAGE


def _attempts(response: requests.Response) -> int:
    """HTTP requests behind one response: 1 plus urllib3's retries."""
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", None) or ()
    return 1 + len(history)


def _parse(content: bytes, what: str) -> Any:
    try:
        return json.loads(content)
    except ValueError as exc:
        raise GitHubError(f"GitHub's answer was not JSON while {what}; the decision was not made") from exc


def _github_message(response: requests.Response) -> str:
    """GitHub's own one-line explanation (``message``), shortened; never anything we sent."""
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message).split())[:200] if message else ""


def _retry_after(response: requests.Response) -> int | None:
    """``Retry-After`` in seconds (at least 1, at most an hour), or None when absent."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return min(MAX_RATE_LIMIT_WAIT, max(1, int(value)))
    if value:
        # An HTTP date, which GitHub does not send: wait the documented minute.
        return SECONDARY_RATE_LIMIT_WAIT
    return None


def _observe(scope: str, response: requests.Response) -> None:
    """Count the call and keep GitHub's rate-limit remaining for the installation (or ``app``)."""
    installation = scope.removeprefix("installation:")
    metrics().github_calls.labels(installation, str(response.status_code)).inc()
    remaining = response.headers.get("x-ratelimit-remaining", "")
    if remaining.isdigit():
        metrics().github_rate_limit_remaining.labels(installation).set(int(remaining))


def _rate_limit_wait(response: requests.Response, message: str, now: float) -> int | None:
    """Seconds to wait when a 403/429 is a rate limit (GitHub's documented rules), else None."""
    retry_after = _retry_after(response)
    if retry_after is not None:
        return retry_after
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if response.headers.get("x-ratelimit-remaining") == "0":
        if reset.isdigit():
            return min(MAX_RATE_LIMIT_WAIT, max(1, int(reset) - int(now)))
        return SECONDARY_RATE_LIMIT_WAIT
    if response.status_code == 429 or "rate limit" in message.lower():
        return SECONDARY_RATE_LIMIT_WAIT
    return None
