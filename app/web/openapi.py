"""``GET /openapi.json``: the API described in OpenAPI 3.1, built from the pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.decide.decision import Decision, DecisionRequest
from app.settings import gate_version

bp = Blueprint("openapi", __name__)


class ErrorItem(BaseModel):
    code: str
    description: str


class ErrorBody(BaseModel):
    """The one error shape of every endpoint."""

    message: str
    errors: list[ErrorItem]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(DecisionRequest, "validation"), (Decision, "serialization"), (ErrorBody, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    decision = {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "agent-gate",
            "version": gate_version(),
            "description": "Governed, attributable, least-privilege actions for AI coding agents.",
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "githubOidc": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The job's GitHub Actions OIDC token, with the gate's audience.",
                }
            },
        },
        "paths": {
            "/v1/decisions": {
                "post": {
                    "summary": "Decide whether this workload may perform one action",
                    "operationId": "createDecision",
                    "security": [{"githubOidc": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/DecisionRequest"}}
                        },
                    },
                    "responses": {
                        "200": {"description": "Allowed.", "content": decision},
                        "403": {
                            "description": "Denied; the body says why and what would make it pass.",
                            "content": decision,
                        },
                        "400": _error("The request body is invalid."),
                        "401": _error("The token was refused; the error code says which check failed."),
                        "413": _error("The body or the token is over the size limit."),
                        "415": _error("The body is not JSON."),
                        "503": _error(
                            "Something the decision depends on is unavailable; nothing was allowed."
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "healthz",
                    "responses": {"200": {"description": "The process is alive."}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: policy loaded, store writable, keys obtainable",
                    "operationId": "readyz",
                    "responses": {
                        "200": {"description": "Ready."},
                        "503": {"description": "Not ready; the body says which check failed."},
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document())
