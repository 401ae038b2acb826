"""The GitHub App's REST client: the typed calls the gate makes, as the App installed on each repository.

Transport (session, retries, rate limits, ETags, pagination, call counts) is ``app.github.transport``;
this module adds the App's authentication per repository, the short-lived caches of facts
(permissions, team membership), installation tokens and check runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
from cachetools import TTLCache
from pydantic import SecretStr

from app.errors import GitHubError, GitHubNotFound
from app.github.auth import GitHubAppAuth, repo_path
from app.github.config import AppCredentials, GitHubAppConfig
from app.github.graphql import data_of
from app.github.payloads import GhHookDelivery, parse
from app.github.protocol import Credential, GitHubAPI, InstallationToken, Params
from app.github.transport import GitHubHTTP

log = logging.getLogger("agent_gate.github")

# The roles GitHub names in role_name, and the base permission each maps to in `permission`.
_ROLE_BASE = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}

T = TypeVar("T")


class GitHubClient:
    """The gate's GitHub, as the App installed on each repository. Implements ``GitHubAPI``."""

    def __init__(
        self,
        config: GitHubAppConfig | AppCredentials,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float | tuple[float, float] | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        fact_ttl: float | None = None,
    ) -> None:
        """``timeout`` (seconds, or (connect, read)), ``retries``, ``backoff`` and ``fact_ttl``
        override the config's values (tests use them)."""
        cfg = GitHubAppConfig.of(config)
        overrides: dict[str, Any] = {
            k: v
            for k, v in {"retries": retries, "backoff": backoff, "fact_ttl": fact_ttl}.items()
            if v is not None
        }
        if isinstance(timeout, tuple):
            overrides["connect_timeout"], overrides["timeout"] = timeout
        elif timeout is not None:
            overrides["timeout"] = timeout
        if overrides:
            cfg = GitHubAppConfig.model_validate({**dict(cfg), **overrides})
        self.config = cfg
        self.api_url = cfg.api_url
        self.http = GitHubHTTP(cfg, session=session, clock=clock)
        self.auth = GitHubAppAuth(cfg, self.http, clock=clock)
        self._lock = threading.Lock()
        self._permissions: TTLCache[tuple[str, str], str | None] = TTLCache(
            maxsize=8192, ttl=cfg.fact_ttl, timer=clock
        )
        self._memberships: TTLCache[tuple[str, str, str], bool] = TTLCache(
            maxsize=8192, ttl=cfg.fact_ttl, timer=clock
        )

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, app_id={self.config.app_id})"

    @property
    def calls(self) -> int:
        """HTTP requests made so far by the current thread (304s and retries included)."""
        return self.http.calls

    @property
    def not_modified(self) -> int:
        """How many of those were answered 304 from the ETag cache (free of rate limit)."""
        return self.http.not_modified

    # -- reads -------------------------------------------------------------------------------------
    def get_json(self, repository: str, path: str, *, what: str, params: Params | None = None) -> Any:
        return self._as_installation(
            repository,
            lambda cred: (
                self.http.request(
                    "GET", path, credential=cred, what=what, params=params, conditional=True
                ).data
            ),
        )

    def graphql(self, repository: str, query: str, variables: dict[str, Any], *, what: str) -> dict[str, Any]:
        """The ``data`` of one GraphQL query, as the repository's installation (errors raised)."""
        reply = self._as_installation(
            repository,
            lambda cred: self.http.request(
                "POST",
                self.http.graphql_url,
                credential=cred,
                json_body={"query": query, "variables": variables},
                what=what,
                hint="the App needs Contents: read and Pull requests: read",
            ),
        )
        return data_of(reply.data, what)

    def get_all(self, repository: str, path: str, *, what: str) -> list[Any]:
        return self._as_installation(
            repository, lambda cred: self.http.paginate(path, credential=cred, what=what)
        )

    def _cached(self, cache: TTLCache[Any, Any], key: Any, fetch: Callable[[], Any]) -> Any:
        """A short-TTL, locked cache of stable facts: expiry only ever causes a re-check."""
        with self._lock:
            if key in cache:
                return cache[key]
        value = fetch()
        with self._lock:
            cache[key] = value
        return value

    def collaborator_permission(self, repository: str, login: str) -> str | None:
        def fetch() -> str | None:
            try:
                data = self.get_json(
                    repository,
                    f"/repos/{repo_path(repository)}/collaborators/{quote(login, safe='')}/permission",
                    what=f"reading @{login}'s permission on {repository}",
                )
            except GitHubNotFound:
                return None  # not a user GitHub knows on this repository: no standing
            return _role(data)

        permission: str | None = self._cached(self._permissions, (repository.lower(), login.lower()), fetch)
        return permission

    def is_active_team_member(self, repository: str, org: str, team_slug: str, login: str) -> bool:
        def fetch() -> bool:
            try:
                data = self.get_json(
                    repository,
                    f"/orgs/{quote(org, safe='')}/teams/{quote(team_slug, safe='')}/memberships/{quote(login, safe='')}",
                    what=f"checking whether @{login} is in @{org}/{team_slug}",
                )
            except GitHubNotFound:
                return False  # GitHub's answer for "not a member" (and for a team the App cannot see)
            return isinstance(data, dict) and data.get("state") == "active"  # "pending" is not yet a member

        member: bool = self._cached(self._memberships, (org.lower(), team_slug.lower(), login.lower()), fetch)
        return member

    # -- installation tokens -----------------------------------------------------------------------
    def installation_id(self, repository: str) -> int:
        return self.auth.installation_id(repository)

    def installation_token(
        self,
        repository: str,
        *,
        repository_ids: Sequence[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        return self.auth.installation_token(
            repository, repository_ids=repository_ids, permissions=permissions
        )

    def revoke_installation_token(self, token: SecretStr) -> None:
        self.auth.revoke_installation_token(token)

    def app_events(self) -> tuple[str, ...]:
        """The webhook events the App is subscribed to (``GET /app``, as the App): what ``doctor``
        checks against the events the gate answers. Raises ``GitHubError``."""
        reply = self.http.request(
            "GET", "/app", credential=self.auth.app.credential(), what="reading the App's settings"
        )
        events = reply.data.get("events") if isinstance(reply.data, dict) else None
        if not isinstance(events, list):
            raise GitHubError("GitHub's answer to GET /app has no list of events")
        return tuple(str(e) for e in events)

    # -- check runs (app.publish.checks.ChecksAPI) ---------------------------------------------------------
    @property
    def app_id(self) -> int:
        """The App's id: the integration id that rulesets and protection rules pin."""
        return int(self.config.app_id)

    def find_check_run(self, repository: str, sha: str, name: str) -> int | None:
        """The latest check run with this name on this commit *created by this App*, if any.

        Filtered by GitHub (``app_id``) and again here: a same-named check run from another App or
        a workflow is never read, updated or taken for the gate's own.
        """
        data = self.get_json(
            repository,
            f"/repos/{repo_path(repository)}/commits/{quote(sha, safe='')}/check-runs",
            params={"check_name": name, "filter": "latest", "app_id": self.app_id},
            what=f"finding check run {name!r} on {sha[:7]}",
        )
        runs = data.get("check_runs") if isinstance(data, dict) else None
        for run in runs or []:
            app = run.get("app") if isinstance(run, dict) else None
            if isinstance(app, dict) and app.get("id") == self.app_id and run.get("name") == name:
                return int(run["id"])
        return None

    def review_deployment_protection_rule(self, repository: str, run_id: int, body: dict[str, Any]) -> None:
        """Answer a deployment protection rule: ``state`` approved/rejected, or (without ``state``)
        a progress comment. ``POST .../actions/runs/{run_id}/deployment_protection_rule`` (204)."""
        self._as_installation(
            repository,
            lambda cred: self.http.request(
                "POST",
                f"/repos/{repo_path(repository)}/actions/runs/{int(run_id)}/deployment_protection_rule",
                credential=cred,
                json_body=body,
                what=f"answering the deployment protection rule of run {int(run_id)}",
                hint="the App needs Deployments: read and write, and must be enabled on the environment",
            ),
        )

    def create_check_run(self, repository: str, body: dict[str, Any]) -> int:
        reply = self._as_installation(
            repository,
            lambda cred: self.http.request(
                "POST",
                f"/repos/{repo_path(repository)}/check-runs",
                credential=cred,
                json_body=body,
                what=f"creating check run {body.get('name')!r}",
                hint="the App needs Checks: read and write",
            ),
        )
        return int(reply.data["id"])

    def update_check_run(self, repository: str, check_run_id: int, body: dict[str, Any]) -> None:
        self._as_installation(
            repository,
            lambda cred: self.http.request(
                "PATCH",
                f"/repos/{repo_path(repository)}/check-runs/{int(check_run_id)}",
                credential=cred,
                json_body=body,
                what=f"updating check run {check_run_id}",
                hint="the App needs Checks: read and write",
            ),
        )

    # -- the App's webhook deliveries (app.events.redelivery) ------------------------------------------
    def webhook_deliveries(self, page: str | None = None) -> tuple[list[GhHookDelivery], str | None]:
        """One page of the App's recent webhook deliveries, newest first, and the next page's URL (its
        cursor) or None: ``GET /app/hook/deliveries``, as the App (JWT)."""
        reply = self.http.request(
            "GET",
            page or "/app/hook/deliveries",
            credential=self.auth.app.credential(),
            params=None if page else {"per_page": 100},
            what="listing the App's webhook deliveries",
        )
        return parse(list[GhHookDelivery], reply.data, "listing the App's webhook deliveries"), reply.next_url

    def redeliver_webhook_delivery(self, delivery_id: int) -> None:
        """Ask GitHub to send delivery ``delivery_id`` again (``POST .../attempts``, 202): a new
        delivery of the same event, under the same X-GitHub-Delivery."""
        self.http.request(
            "POST",
            f"/app/hook/deliveries/{int(delivery_id)}/attempts",
            credential=self.auth.app.credential(),
            what=f"asking GitHub to redeliver webhook delivery {int(delivery_id)}",
        )

    def _as_installation(self, repository: str, send: Callable[[Credential], T]) -> T:
        """Run ``send`` with the installation's cached token; once more with a fresh one on a 401."""
        try:
            return send(self.auth.credential(repository))
        except GitHubError as exc:
            if exc.http_status != 401:
                raise
        # GitHub no longer accepts the cached token (revoked, or the App was re-installed).
        self.auth.forget(repository)
        return send(self.auth.credential(repository))


if TYPE_CHECKING:

    def _implements_the_protocol(client: GitHubClient) -> GitHubAPI:
        return client  # mypy checks here that GitHubClient keeps to GitHubAPI


def _role(data: Any) -> str | None:
    """The role GitHub reports: ``role_name`` when it is a built-in role consistent with the base
    ``permission`` (so maintain and triage show), else the base permission (custom roles)."""
    if not isinstance(data, dict):
        return None
    base, role = data.get("permission"), data.get("role_name")
    if isinstance(role, str) and _ROLE_BASE.get(role) == base:
        return role
    return base if isinstance(base, str) else None
