"""``GET /.well-known/spiffe-bundle.json``: the trust domain's SPIFFE bundle, under the opt-in SPIFFE
profile of grants (``GATE_SPIFFE_TRUST_DOMAIN``; app/credentials/spiffe.py). 404 when it is off."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.credentials.spiffe import BUNDLE_PATH, REFRESH_HINT, bundle
from app.errors import NotFound
from app.web.requests import gate
from app.web.spec import OBJECT, Operation, documented, error, json_answer

bp = Blueprint("spiffe", __name__)


@bp.get(BUNDLE_PATH)
@documented(
    Operation(
        "spiffeBundle",
        "The SPIFFE bundle of the grants' trust domain: the grant keys with use jwt-svid",
        {
            200: json_answer(
                "spiffe_sequence, spiffe_refresh_hint and the keys (docs/grants.md#spiffe).", OBJECT
            ),
            404: error("The SPIFFE profile is off (GATE_SPIFFE_TRUST_DOMAIN unset)."),
        },
    )
)
def spiffe_bundle() -> Response:
    g = gate()
    if g.settings.spiffe_trust_domain is None:
        raise NotFound(
            "this gate has no SPIFFE trust domain: set GATE_SPIFFE_TRUST_DOMAIN to serve grants as JWT-SVIDs "
            "(docs/grants.md#spiffe)",
            code="spiffe-not-configured",
        )
    response = jsonify(bundle(g.grants.keys))
    # A bundle may be cached as long as its refresh hint says (SPIFFE Trust Domain and Bundle, 4.1.2).
    response.headers["Cache-Control"] = f"public, max-age={REFRESH_HINT}"
    return response
