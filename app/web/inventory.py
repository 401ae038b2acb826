"""``GET /inventory``: the identities the gate has seen, for the security team, behind the same login
as decision pages.

The same rows as ``agent-gate inventory`` (workloads and agent accounts with first and last seen,
counts, grants held, owners and flags), as HTML or, with ``Accept: application/json``, JSON. A
logged-in reader sees only the identities of repositories GitHub gives them read access to; an
identity no repository ties to (a policy-named agent that never asked) is shown only on public
deployments (``GATE_DECISION_PAGES=public``). Filters: ``unowned``, ``agents``, ``stale`` (days),
``repository`` (``OWNER/REPO``), as query parameters.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from app.errors import InvalidRequest
from app.github.oauth import GitHubUser
from app.governance.history import read
from app.governance.inventory import Filters, Identity, build_inventory, freeze_rows
from app.web.login import LoginRequired, current_user, readers
from app.web.requests import gate
from app.web.spec import LOGIN_UNAVAILABLE, Answer, Operation, Param, documented, error, moved

bp = Blueprint("inventory", __name__)

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_FLAG_WORDS = frozenset({"", "1", "true", "yes"})
_MAX_STALE_DAYS = 36_500
_FLAG = {"type": "string", "enum": sorted(_FLAG_WORDS)}


def _filters() -> Filters:
    args = request.args
    unknown = sorted(set(args) - {"unowned", "agents", "stale", "repository"})
    if unknown:
        raise InvalidRequest(
            f"unknown parameter {unknown[0]!r}; expected unowned, agents, stale or repository"
        )
    stale = args.get("stale")
    if stale is not None and not (stale.isdigit() and int(stale) <= _MAX_STALE_DAYS):
        raise InvalidRequest(f"stale: got {stale[:20]!r}, expected a number of days")
    repository = args.get("repository")
    if repository is not None and not _REPOSITORY.fullmatch(repository):
        raise InvalidRequest("repository: expected OWNER/REPO")
    for flag in ("unowned", "agents"):
        if flag in args and args[flag].lower() not in _FLAG_WORDS:
            raise InvalidRequest(f"{flag}: got {args[flag][:20]!r}, expected true or nothing")
    return Filters(
        unowned="unowned" in args,
        stale_days=int(stale) if stale is not None else None,
        agents="agents" in args,
        repository=repository,
    )


@bp.get("/inventory")
@documented(
    Operation(
        "getInventory",
        "The identities the gate has seen, with owners and flags (HTML, or JSON with Accept)",
        {
            200: Answer(
                "The identities of repositories the reader may read (docs/cli.md: the same rows).",
                {
                    "text/html": {"type": "string"},
                    "application/json": {"type": "array", "items": {"type": "object"}},
                },
            ),
            302: moved("To /login, for a reader who is not logged in (HTML)."),
            400: error("A filter that is not valid."),
            401: error("Asked for as JSON without a login."),
            503: LOGIN_UNAVAILABLE,
        },
        params=(
            Param("unowned", "query", _FLAG, description="Only identities nobody owns."),
            Param("agents", "query", _FLAG, description="Only AI agent accounts."),
            Param(
                "stale",
                "query",
                {"type": "integer", "minimum": 0, "maximum": _MAX_STALE_DAYS},
                description="Only identities not seen for this many days.",
            ),
            Param("repository", "query", {"type": "string", "pattern": _REPOSITORY.pattern}),
        ),
    )
)
def inventory_page() -> BaseResponse | str:
    g = gate()
    filters = _filters()
    wants_json = (
        request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html")
        == "application/json"
    )
    user = None
    if not g.settings.pages_public:
        readers().require_configured()
        user = current_user()
        if user is None:
            if wants_json:
                raise LoginRequired(
                    f"log in with GitHub to read the inventory: open {g.settings.public_url.rstrip('/')}/inventory "
                    "in a browser"
                )
            response = redirect("/login?next=/inventory", code=302)
            response.headers["Cache-Control"] = "no-store"
            return response
    decisions, ledger = read(g.store.iter_audit())
    rows = build_inventory(
        decisions,
        ledger,
        g.policies.current(),
        now=datetime.now(UTC),
        stale_days=filters.stale_days if filters.stale_days is not None else 90,
    )
    rows = [r for r in [*rows, *freeze_rows(g.freezes.active())] if filters.keep(r)]
    if user is not None:
        rows = [r for r in (_readable(r, user) for r in rows) if r is not None]
    if wants_json:
        answer = jsonify([r.as_json() for r in rows])
    else:
        answer = Response(render_template("inventory.html", rows=rows, filters=filters))
        answer.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"
        )
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["Referrer-Policy"] = "no-referrer"
    answer.headers["Cache-Control"] = "no-store"
    return answer


def _readable(row: Identity, user: GitHubUser) -> Identity | None:
    """The row as this reader may see it: only repositories they can read; None when none."""
    repositories = [r for r in {row.repository, *row.repositories} if r]
    visible = {r for r in repositories if readers().may_read(user, r)}
    if not visible:
        return None
    row.repositories = {r for r in row.repositories if r in visible}
    return row
