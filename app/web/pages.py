"""The decision page: ``GET /decisions/<decision_id>``, for reviewers following a check run's link.

Server-rendered HTML (no external assets, readable on a phone), or the same record as JSON with
``Accept: application/json``. It shows what the check run shows, from the same explanation model.
Decision ids carry 128 random bits, so the page is reachable only through its link.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from app.decide.decision import Decision
from app.decide.explain import explanation
from app.errors import NotFound
from app.governance.record import decision_record

bp = Blueprint("pages", __name__)

_DECISION_ID = re.compile(r"^dec_[A-Za-z0-9_-]{16,64}$")


@bp.get("/decisions/<decision_id>")
def decision_page(decision_id: str) -> Response | str:
    if not _DECISION_ID.fullmatch(decision_id):
        raise NotFound("no such decision; check the link from the check run or the job summary")
    record = current_app.extensions["agent_gate"].store.get_decision(decision_id)
    if record is None:
        raise NotFound("no such decision; check the link from the check run or the job summary")
    decision = Decision.model_validate(record)
    best = request.accept_mimetypes.best_match(["text/html", "application/json"], default="text/html")
    if best == "application/json":
        return jsonify(decision.model_dump(mode="json"))  # the API's shape; the whole record: audit show
    full = decision_record(current_app.extensions["agent_gate"].store, decision_id)
    response = Response(render_template("decision.html", e=explanation(decision), record=full))
    # The page is self-contained: no script, no external asset may load.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, max-age=60"
    return response
