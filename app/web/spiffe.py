"""``GET /.well-known/spiffe-bundle.json``: the trust domain's SPIFFE bundle, under the opt-in SPIFFE
profile of grants (``GATE_SPIFFE_TRUST_DOMAIN``; app/credentials/spiffe.py). 404 when it is off."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from app.credentials.spiffe import BUNDLE_PATH, REFRESH_HINT, bundle
from app.errors import NotFound
from app.web.requests import gate

bp = Blueprint("spiffe", __name__)


@bp.get(BUNDLE_PATH)
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


def openapi_paths() -> dict[str, Any]:
    """This module's routes for /openapi.json (app/web/openapi.py)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return {
        BUNDLE_PATH: {
            "get": {
                "summary": "The SPIFFE bundle of the grants' trust domain: the grant keys with use jwt-svid",
                "operationId": "spiffeBundle",
                "responses": {
                    "200": {
                        "description": "spiffe_sequence, spiffe_refresh_hint and the keys (docs/grants.md#spiffe).",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "404": {
                        "description": "The SPIFFE profile is off (GATE_SPIFFE_TRUST_DOMAIN unset).",
                        **error,
                    },
                },
            }
        }
    }
