"""The floor for HTTP benchmarks: a bare Flask + PyJWT endpoint that verifies the bearer token
(RS256, the dev issuer's key from ``GATE_DATA_DIR``) and answers 200. No policy, no store.

    gunicorn --workers 2 'bench.floor_app:create_app()'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
from flask import Flask, jsonify, request


def create_app() -> Flask:
    jwks = json.loads((Path(os.environ["GATE_DATA_DIR"]) / "dev-issuer-jwks.json").read_text())
    key = jwt.PyJWK(jwks["keys"][0]).key
    app = Flask(__name__)

    @app.post("/v1/decisions")
    def decide() -> object:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = jwt.decode(token, key, algorithms=["RS256"], audience="agent-gate")
        return jsonify({"allowed": True, "sub": claims.get("sub")})

    return app
