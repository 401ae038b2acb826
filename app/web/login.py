"""The readers of decision pages: a GitHub login, and read access to the decision's repository.

``GET /login`` starts the GitHub App's user authorisation (state and PKCE kept in the signed
session cookie), ``GET /login/callback`` finishes it and keeps only the user's id and login in the
session, with a random session id whose sha256 the store records; ``POST /logout`` ends that record,
and ``agent-gate sessions end-all`` ends every one: a session is valid only while the server says so,
so a cookie copied before a logout stops working with it. :class:`PageReaders` answers "may this user read this
repository?" through GitHub (the collaborator permission, with the App's token), cached briefly in
a bounded, locked cache: expiry only ever causes a re-check.

The session cookie is signed (Flask's session) with a key derived from the store's sealing key,
so every worker and replica shares it without another secret to configure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cachetools import TTLCache
from flask import Blueprint, Flask, jsonify, redirect, request, session
from werkzeug.wrappers import Response as BaseResponse

from app.errors import GateError, GitHubError, InvalidRequest, Unavailable
from app.github.oauth import GitHubOAuth, GitHubUser, LoginRefused, UserLogin
from app.github.protocol import GitHubAPI
from app.settings import Settings
from app.web.requests import gate
from app.web.spec import INVALID, OBJECT, Operation, Param, documented, error, json_answer, moved

log = logging.getLogger("agent_gate.login")

bp = Blueprint("login", __name__)

EXTENSION = "agent_gate_readers"
SESSION_LIFETIME = timedelta(hours=8)
FLOW_SECONDS = 600  # a login started more than 10 minutes ago is not finished
READ_ROLES = frozenset({"admin", "maintain", "write", "triage", "read"})
NOT_INSTALLED = "github-app-not-installed"  # app.github.auth's code: nobody may read such a repository here
_NEXT = re.compile(r"^/(?:decisions/dec_[A-Za-z0-9_-]{16,64}|inventory)$")  # where a login may return to


class LoginRequired(GateError):
    """A decision page asked for as JSON without a session (401)."""

    status = 401
    default_code = "login-required"


@dataclass
class PageReaders:
    """Who may read which repository's decisions, asked of GitHub and cached for ``ttl`` seconds."""

    github: GitHubAPI | None
    login: UserLogin | None
    ttl: float = 60.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._cache: TTLCache[tuple[int, str], bool] = TTLCache(maxsize=4096, ttl=self.ttl, timer=self.clock)
        self._lock = threading.Lock()

    def require_configured(self) -> UserLogin:
        if self.login is None or self.github is None:
            raise Unavailable(
                "decision pages need a GitHub login: configure the GitHub App and GATE_GITHUB_CLIENT_ID / "
                "GATE_GITHUB_CLIENT_SECRET (docs/configuration.md), or set GATE_DECISION_PAGES=public for "
                "a deployment that governs only public repositories",
                code="login-not-configured",
            )
        return self.login

    def may_read(self, user: GitHubUser, repository: str) -> bool:
        """Whether GitHub gives ``user`` at least read on ``repository``.

        A repository where the App is not installed is one nobody may read here: its pages answer
        like missing ones. Fails closed (503) when GitHub fails, without naming the repository (the
        reader may not be one who may know it exists).
        """
        self.require_configured()
        assert self.github is not None
        key = (user.id, repository.lower())
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            role = self.github.collaborator_permission(repository, user.login)
        except GitHubError as exc:
            if exc.code != NOT_INSTALLED:
                raise Unavailable(
                    f"GitHub could not confirm that @{user.login} may read this repository; try again",
                    code="github-unavailable",
                ) from exc
            role = None
        allowed = role in READ_ROLES
        with self._lock:
            self._cache[key] = allowed
        return allowed


def init_app(
    app: Flask, settings: Settings, github: GitHubAPI | None, session_key: Callable[[], bytes]
) -> None:
    """Register the login routes and the page readers; sign sessions when a login is configured."""
    login: UserLogin | None = None
    if settings.github_client_id and settings.github_client_secret is not None and github is not None:
        login = GitHubOAuth(
            client_id=settings.github_client_id,
            client_secret=settings.github_client_secret,
            web_url=settings.github_web_url,
            # The client's own API URL (GHES, or a test's fake), else the configured one.
            api_url=str(
                getattr(github, "api_url", None)
                or (settings.github.api_url if settings.github else "https://api.github.com")
            ),
        )
    if login is None and not settings.pages_public:
        log.warning(
            "decision pages answer 503 login-not-configured: set GATE_GITHUB_CLIENT_ID and "
            "GATE_GITHUB_CLIENT_SECRET (with the GitHub App), or GATE_DECISION_PAGES=public"
        )
    init_readers(app, settings, PageReaders(github=github, login=login), session_key)


def init_readers(
    app: Flask, settings: Settings, readers: PageReaders, session_key: Callable[[], bytes]
) -> None:
    app.extensions[EXTENSION] = readers
    if readers.login is not None:
        # HMAC of the store's sealing key under a label: a key of its own, shared by every worker.
        app.secret_key = hmac.new(session_key(), b"agent-gate/session-cookie/v1", hashlib.sha256).digest()
    app.config.update(
        SESSION_COOKIE_NAME="agent_gate_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # sent on GitHub's redirect back (a top-level GET), not on cross-site POSTs
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.register_blueprint(bp)


def readers() -> PageReaders:
    from flask import current_app

    found: PageReaders = current_app.extensions[EXTENSION]
    return found


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def current_user() -> GitHubUser | None:
    """The signed-in reader, from the signed session cookie, while the store has the session live; or None.

    Raises ``Unavailable`` (503) when the store cannot say: a session is never trusted unchecked.
    """
    user = session.get("user")
    if not isinstance(user, dict):
        return None
    user_id, login, at, sid = user.get("id"), user.get("login"), user.get("at"), user.get("sid")
    if not isinstance(user_id, int) or not isinstance(login, str) or not isinstance(at, int | float):
        return None
    if not isinstance(sid, str) or time.time() - at > SESSION_LIFETIME.total_seconds():
        return None
    if not gate().store.session_live(_session_hash(sid), now=int(time.time())):
        return None  # ended by a logout or an operator, or never started here
    return GitHubUser(id=user_id, login=login)


def _callback_url() -> str:
    return gate().settings.public_url.rstrip("/") + "/login/callback"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@bp.get("/login")
@documented(
    Operation(
        "login",
        "Start the GitHub login of a decision page reader",
        {
            302: moved("To GitHub's authorisation page."),
            503: error("The GitHub login is not configured."),
        },
        params=(Param("next", "query", description="The decision page to return to."),),
    )
)
def login() -> BaseResponse:
    """Start the GitHub login; ``next`` is the decision page to return to."""
    flow = readers().require_configured()
    target = request.args.get("next", "")
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    session["login_flow"] = {
        "state": state,
        "verifier": verifier,
        "next": target if _NEXT.fullmatch(target) else None,
        "at": int(time.time()),
    }
    url = flow.authorize_url(state=state, redirect_uri=_callback_url(), code_challenge=_challenge(verifier))
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/login/callback")
@documented(
    Operation(
        "loginCallback",
        "GitHub's redirect back after the reader authorised the App",
        {
            200: json_answer("Logged in (no page to return to).", OBJECT),
            302: moved("Back to the decision page."),
            400: INVALID,
            401: error("The login was not started here, expired, or GitHub refused it."),
            503: error("The GitHub login is not configured, or GitHub is unavailable."),
        },
        params=tuple(Param(name, "query") for name in ("code", "state", "error")),
    )
)
def callback() -> BaseResponse:
    """GitHub's redirect back: check the state, exchange the code, keep the user's id and login."""
    flow = readers().require_configured()
    started = session.pop("login_flow", None)
    if request.args.get("error"):
        raise LoginRefused(f"GitHub did not log you in ({request.args.get('error', '')[:100]})")
    state, code = request.args.get("state", ""), request.args.get("code", "")
    if (
        not isinstance(started, dict)
        or not isinstance(started.get("state"), str)
        or not hmac.compare_digest(started["state"].encode(), state.encode())
        or time.time() - float(started.get("at", 0)) > FLOW_SECONDS
    ):
        raise LoginRefused(
            "this login was not started here, or it took too long: open the decision link again"
        )
    if not code or len(code) > 200:
        raise InvalidRequest("GitHub's redirect has no valid code")
    user = flow.identify(code=code, redirect_uri=_callback_url(), code_verifier=str(started["verifier"]))
    session.clear()
    session.permanent = True
    sid, now = secrets.token_urlsafe(32), int(time.time())
    gate().store.start_session(
        _session_hash(sid), user.id, now=now, expires_at=now + int(SESSION_LIFETIME.total_seconds())
    )
    session["user"] = {"id": user.id, "login": user.login, "at": now, "sid": sid}
    target = started.get("next")
    if isinstance(target, str) and _NEXT.fullmatch(target):
        response = redirect(target, code=302)
    else:
        response = jsonify({"status": "logged-in", "login": user.login})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/logout")
@documented(
    Operation(
        "logout",
        "End the reader's session",
        {
            200: json_answer("Logged out.", OBJECT),
            503: error("The GitHub login is not configured."),
        },
    )
)
def logout() -> tuple[dict[str, Any], int]:
    """End the session on the server too: the cookie, or any copy of it, no longer logs anyone in."""
    readers().require_configured()
    user = session.get("user")
    sid = user.get("sid") if isinstance(user, dict) else None
    if isinstance(sid, str):
        gate().store.end_session(_session_hash(sid), now=int(time.time()))
    session.clear()
    return {"status": "logged-out"}, 200
