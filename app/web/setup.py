"""``/setup``: create the gate's GitHub App in one step, with GitHub's manifest flow.

``GET /setup`` serves a form that posts the manifest (``app.github.manifest``: exactly the
permissions and events the gate uses, its URLs from ``GATE_PUBLIC_URL``) to GitHub; GitHub creates
the App and sends the browser back to ``GET /setup/complete?code=...``, where the gate converts the
code and shows the App's credentials once.

Both pages exist only while the gate has no App (``GATE_GITHUB_APP_ID`` unset). A ``state`` kept in
an HttpOnly cookie binds the completion to the browser that started it: a link carrying someone
else's code (an App they control) is refused, so an admin cannot be led to adopt it. The
credentials are shown to that browser only, with ``no-store``; the gate neither stores nor logs them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, render_template, request

from app.errors import InvalidRequest, NotFound, TokenError
from app.github.manifest import api_url_for, app_manifest, convert_manifest_code
from app.web.requests import gate
from app.web.spec import INVALID, Answer, Operation, Param, documented, error

bp = Blueprint("setup", __name__)

_COOKIE = "agent_gate_setup_state"
_ORG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _only_before_the_app_exists() -> None:
    if gate().settings.github is not None:
        raise NotFound("the gate has its GitHub App; /setup only serves the first set-up")


def _page(html: str, *, form_action: str = "'none'") -> Response:
    response = Response(html)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action {form_action}"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def reachability_warnings(public_url: str) -> list[str]:
    """Why GitHub could not use ``public_url`` (GATE_PUBLIC_URL) for the App it creates: shown on
    ``/setup`` before the App is created, since the App's webhook and callback URLs are made from it."""
    parts = urlsplit(public_url)
    host = (parts.hostname or "").lower()
    warnings: list[str] = []
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or host.endswith(".localhost") or (address is not None and address.is_loopback):
        warnings.append(
            f"GATE_PUBLIC_URL is {public_url}, a loopback address: GitHub cannot deliver webhooks to it, so no "
            "check would be posted and no held deployment answered"
        )
    elif address is not None and (address.is_private or address.is_link_local or address.is_unspecified):
        warnings.append(
            f"GATE_PUBLIC_URL is {public_url}, an address GitHub cannot reach from the internet: webhooks "
            "would not arrive (fine for GitHub Enterprise Server on the same network)"
        )
    if parts.scheme != "https":
        warnings.append(
            f"GATE_PUBLIC_URL is {public_url}, plain http: GitHub would send webhooks and reviewers would sign "
            "in without TLS; put the gate behind HTTPS (docs/setup-guide.md)"
        )
    return warnings


@bp.get("/setup")
@documented(
    Operation(
        "setup",
        "Create the gate's GitHub App from its manifest (only before it has one)",
        {
            200: Answer("A form that posts the manifest to GitHub.", {"text/html": {"type": "string"}}),
            400: INVALID,
            404: error("The gate has its App."),
        },
        params=(
            Param(
                "org",
                "query",
                {"type": "string", "pattern": _ORG.pattern},
                description="Create the App in this organisation (default: the admin's account).",
            ),
        ),
    )
)
def setup() -> Response:
    _only_before_the_app_exists()
    settings = gate().settings
    org = request.args.get("org", "")
    if org and not _ORG.fullmatch(org):
        raise InvalidRequest(f"org: got {org[:50]!r}, expected a GitHub organisation login")
    web = settings.github_web_url.rstrip("/")
    state = secrets.token_urlsafe(32)
    where = f"/organizations/{quote(org, safe='')}/settings/apps/new" if org else "/settings/apps/new"
    manifest = app_manifest(settings.public_url)
    response = _page(
        render_template(
            "setup.html",
            public_url=settings.public_url,
            manifest=manifest,
            manifest_json=json.dumps(manifest),
            action=f"{web}{where}?state={state}",
            org=org,
            warnings=reachability_warnings(settings.public_url),
        ),
        form_action=web,
    )
    response.set_cookie(
        _COOKIE,
        state,
        max_age=3600,
        path="/setup",
        httponly=True,
        samesite="Lax",
        secure=settings.public_url.startswith("https://"),
    )
    return response


@bp.get("/setup/complete")
@documented(
    Operation(
        "setupComplete",
        "GitHub's redirect back: the new App's credentials, shown once",
        {
            200: Answer("The App's credentials.", {"text/html": {"type": "string"}}),
            400: INVALID,
            401: error("Not started in this browser."),
            404: error("The gate has its App."),
            503: error("GitHub refused or could not be reached."),
        },
        params=tuple(Param(name, "query") for name in ("code", "state")),
    )
)
def complete() -> Response:
    _only_before_the_app_exists()
    started = request.cookies.get(_COOKIE, "")
    state, code = request.args.get("state", ""), request.args.get("code", "")
    if not started or not hmac.compare_digest(started.encode(), state.encode()):
        raise TokenError(
            "this App creation was not started in this browser: open /setup and create the App from there",
            code="setup-not-started",
        )
    if not _CODE.fullmatch(code):
        raise InvalidRequest("GitHub's redirect has no valid code")
    created = convert_manifest_code(api_url_for(gate().settings.github_web_url), code)
    response = _page(
        render_template(
            "setup_complete.html",
            app=created,
            webhook_secret=created.webhook_secret.get_secret_value(),
            client_secret=created.client_secret.get_secret_value(),
            pem=created.pem.get_secret_value(),
        )
    )
    response.delete_cookie(_COOKIE, path="/setup")
    return response
