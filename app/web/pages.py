"""The decision page: ``GET /decisions/<decision_id>``, for reviewers following a check run's link.

Server-rendered HTML (no external assets, readable on a phone), or the same record as JSON with
``Accept: application/json``. It shows what the check run shows, from the same explanation model.

Decision pages name private repositories, actors, workflows and commits, so by default a reader
logs in with GitHub and sees a page only when GitHub gives them read access to its repository
(``app.web.login``); a page they may not read is answered exactly like one that does not exist.
``GATE_DECISION_PAGES=public`` shows pages to anyone with the link (decision ids carry 128 random
bits), for deployments that govern only public repositories.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from app.decide.decision import Decision
from app.decide.explain import explanation
from app.errors import NotFound
from app.governance.decision_record import decision_record
from app.web.login import LoginRequired, current_user, readers
from app.web.requests import gate
from app.web.spec import LOGIN_UNAVAILABLE, Answer, Operation, Param, documented, error, moved

bp = Blueprint("pages", __name__)

_DECISION_ID = re.compile(r"^dec_[A-Za-z0-9_-]{16,64}$")
_NOT_FOUND = "no such decision, or not one you may read; check the link from the check run or the job summary"


@bp.get("/decisions/<decision_id>")
@documented(
    Operation(
        "getDecision",
        "The decision page a check run links to (HTML, or JSON with Accept: application/json)",
        {
            200: Answer(
                "The decision, to a reader allowed to see it.",
                {"text/html": {"type": "string"}, "application/json": Decision},
            ),
            302: moved("To /login, for a reader who is not logged in (HTML)."),
            401: error("Asked for as JSON without a login."),
            404: error("No such decision, or not one the reader may see."),
            503: LOGIN_UNAVAILABLE,
        },
        params=(Param("decision_id", "path", {"type": "string"}, required=True),),
    )
)
def decision_page(decision_id: str) -> BaseResponse | str:
    if not _DECISION_ID.fullmatch(decision_id):
        raise NotFound(_NOT_FOUND)
    best = request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html")
    wants_json = best == "application/json"
    user = None
    if not gate().settings.pages_public:
        readers().require_configured()
        user = current_user()
        if user is None:
            if wants_json:
                raise LoginRequired(
                    f"log in with GitHub to read decisions: open {gate().settings.public_url.rstrip('/')}"
                    f"/decisions/{decision_id} in a browser"
                )
            response = redirect(f"/login?next={quote(request.path, safe='/')}", code=302)
            response.headers["Cache-Control"] = "no-store"
            return response
    record = gate().store.get_decision(decision_id)
    if record is None:
        raise NotFound(_NOT_FOUND)
    decision = Decision.model_validate(record)
    if user is not None and not readers().may_read(user, decision.subject.repository):
        raise NotFound(_NOT_FOUND)
    if wants_json:
        response = jsonify(decision.model_dump(mode="json"))  # the API's shape; the whole record: audit show
        response.headers["Cache-Control"] = "no-store"
        return response
    full = decision_record(gate().store, decision_id)
    response = Response(render_template("decision.html", e=explanation(decision), record=full))
    # The page is self-contained: no script, no external asset may load.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # A page behind a login is for its reader only; a public one may be kept briefly.
    response.headers["Cache-Control"] = "private, no-store" if user is not None else "private, max-age=60"
    return response
