"""``GET /openapi.json``: every route of the gate described in OpenAPI 3.1, built from the pydantic models.

The bodies the endpoints parse and answer are the same models the document is built from, so the
document cannot drift from the code; a test compares its paths with the routes Flask registers.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from app.decide.decision import Decision, DecisionRequest
from app.governance.breakglass import BreakGlassRequest
from app.governance.freeze import FreezeRequest, LiftRequest
from app.settings import gate_version
from app.web.attestations import openapi_paths as attestation_paths
from app.web.grants import (
    DelegateBody,
    IntrospectBody,
    IntrospectionAnswer,
    RevocationAnswer,
    RevokeBody,
    RevokeForm,
)
from app.web.requests import GitHubTokenCredential, GrantCredential, IssuedCredentials
from app.web.spiffe import openapi_paths as spiffe_paths

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=name)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ErrorBody")}


_OBJECT = {"application/json": {"schema": {"type": "object"}}}

_UNAUTHORISED = _error("The credential was refused (and audited); the error code says which check failed.")
_INVALID = _error("The request body is invalid.")
_TOO_LARGE = _error("The body or the token is over the size limit.")
_NOT_JSON = _error("The body is not JSON (or, where accepted, form-encoded).")
_UNAVAILABLE = _error("Something the answer depends on is unavailable; nothing was allowed.")


def _form_or_json(json_model: str, form_model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": {"$ref": _REF.format(model=form_model)}},
            "application/json": {"schema": {"$ref": _REF.format(model=json_model)}},
        },
    }


class ErrorItem(BaseModel):
    code: str
    description: str


class ErrorBody(BaseModel):
    """The one error shape of every endpoint."""

    message: str
    errors: list[ErrorItem]


class DecisionAnswer(Decision):
    """A decision as ``POST /v1/decisions`` answers it: with credentials when allowed and asked for."""

    grant: GrantCredential | None = Field(None, description="When allowed and asked for (or required).")
    github_token: GitHubTokenCredential | None = Field(
        None, description="When the rule grants GitHub permissions."
    )


class Check(BaseModel):
    ok: bool
    message: str | None = None


class Readiness(BaseModel):
    """``/readyz``: each check and whether it holds. Policy owners are not shown. ``degraded``: the
    gate answers, but this replica's clock is off the database's by more than GATE_CLOCK_SKEW_MAX
    (``checks.clock.skew_seconds``)."""

    status: str = Field(pattern="^(ready|degraded|not-ready)$")
    version: str | None = Field(None, description="The gate's version.")
    checks: dict[str, dict[str, Any]]


class WebhookAnswer(BaseModel):
    status: str = Field(
        description="queued; duplicate for a redelivery already kept; same-body; coalesced into a job "
        "still waiting about the same subject; ignored or pong."
    )
    delivery: str


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (DecisionRequest, "validation"),
            (Decision, "serialization"),
            (DecisionAnswer, "serialization"),
            (ErrorBody, "serialization"),
            (IssuedCredentials, "serialization"),
            (IntrospectBody, "validation"),
            (IntrospectionAnswer, "serialization"),
            (RevokeBody, "validation"),
            (RevokeForm, "validation"),
            (RevocationAnswer, "serialization"),
            (DelegateBody, "validation"),
            (Readiness, "serialization"),
            (BreakGlassRequest, "validation"),
            (FreezeRequest, "validation"),
            (LiftRequest, "validation"),
            (WebhookAnswer, "serialization"),
        ],
        ref_template=_REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "agent-gate",
            "version": gate_version(),
            "description": "Governed, attributable, least-privilege actions for AI coding agents.",
        },
        "components": {"schemas": schemas["$defs"], "securitySchemes": _SECURITY},
        "paths": {
            **_decision_paths(),
            **_login_paths(),
            **_inventory_paths(),
            **_grant_paths(),
            **_person_run_paths(),
            **attestation_paths(),
            **spiffe_paths(),
            **_service_paths(),
        },
    }


_SECURITY: dict[str, Any] = {
    "githubOidc": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The job's GitHub Actions OIDC token, with the gate's audience. Each token is used once.",
    },
    "grant": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A live (unexpired, unrevoked) grant issued by this gate.",
    },
    "introspectionClient": {
        "type": "http",
        "scheme": "basic",
        "description": "A client configured in GATE_INTROSPECTION_CLIENTS (RFC 6749 section 2.3.1).",
    },
    "githubSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature-256",
        "description": "HMAC-SHA256 of the raw body with the GitHub App's webhook secret.",
    },
}


def _decision_paths() -> dict[str, Any]:
    decision = _json("DecisionAnswer")
    return {
        "/v1/decisions": {
            "post": {
                "summary": "Decide whether this workload may perform one action",
                "operationId": "createDecision",
                "security": [{"githubOidc": []}],
                "requestBody": {"required": True, "content": _json("DecisionRequest")},
                "responses": {
                    "200": {"description": "Allowed (with credentials when asked for).", "content": decision},
                    "403": {
                        "description": "Denied; the body says why and what would make it pass.",
                        "content": decision,
                    },
                    "400": _INVALID,
                    "401": _UNAUTHORISED,
                    "413": _TOO_LARGE,
                    "415": _NOT_JSON,
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/decisions/{decision_id}": {
            "get": {
                "summary": "The decision page a check run links to (HTML, or JSON with Accept: application/json)",
                "operationId": "getDecision",
                "parameters": [
                    {"name": "decision_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "The decision, to a reader allowed to see it.",
                        "content": {
                            "text/html": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"$ref": _REF.format(model="Decision")}},
                        },
                    },
                    "302": {"description": "To /login, for a reader who is not logged in (HTML)."},
                    "401": _error("Asked for as JSON without a login."),
                    "404": _error("No such decision, or not one the reader may see."),
                    "503": _error("The GitHub login is not configured, or GitHub could not confirm access."),
                },
            }
        },
        "/v1/github/webhook": {
            "post": {
                "summary": "The GitHub App's webhook deliveries",
                "operationId": "githubWebhook",
                "security": [{"githubSignature": []}],
                "parameters": [
                    {
                        "name": "X-GitHub-Event",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "X-GitHub-Delivery",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 100},
                    },
                ],
                "requestBody": {"required": True, "content": _OBJECT},
                "responses": {
                    "200": {
                        "description": "Processed, or a duplicate delivery.",
                        "content": _json("WebhookAnswer"),
                    },
                    "400": _error("Not JSON, or a payload without the fields the event needs."),
                    "401": _error("The signature is missing or wrong."),
                    "413": _TOO_LARGE,
                    "503": _error(
                        "Webhooks are not configured, a dependency is unavailable, or the queue holds its "
                        "bound of pending jobs (queue-full; the redelivery sweep asks GitHub for it again)."
                    ),
                },
            }
        },
    }


def _login_paths() -> dict[str, Any]:
    redirect = {"302": {"description": "To GitHub's authorisation page, or back to the decision page."}}
    return {
        "/login": {
            "get": {
                "summary": "Start the GitHub login of a decision page reader",
                "operationId": "login",
                "parameters": [
                    {"name": "next", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {**redirect, "503": _error("The GitHub login is not configured.")},
            }
        },
        "/login/callback": {
            "get": {
                "summary": "GitHub's redirect back after the reader authorised the App",
                "operationId": "loginCallback",
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                    for name in ("code", "state", "error")
                ],
                "responses": {
                    **redirect,
                    "200": {"description": "Logged in (no page to return to).", "content": _OBJECT},
                    "400": _INVALID,
                    "401": _error("The login was not started here, expired, or GitHub refused it."),
                    "503": _error("The GitHub login is not configured, or GitHub is unavailable."),
                },
            }
        },
        "/setup": {
            "get": {
                "summary": "Create the gate's GitHub App from its manifest (only before it has one)",
                "operationId": "setup",
                "parameters": [
                    {"name": "org", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "A form that posts the manifest to GitHub.",
                        "content": {"text/html": {}},
                    },
                    "400": _INVALID,
                    "404": _error("The gate has its App."),
                },
            }
        },
        "/setup/complete": {
            "get": {
                "summary": "GitHub's redirect back: the new App's credentials, shown once",
                "operationId": "setupComplete",
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                    for name in ("code", "state")
                ],
                "responses": {
                    "200": {"description": "The App's credentials.", "content": {"text/html": {}}},
                    "400": _INVALID,
                    "401": _error("Not started in this browser."),
                    "404": _error("The gate has its App."),
                    "503": _error("GitHub refused or could not be reached."),
                },
            }
        },
        "/logout": {
            "post": {
                "summary": "End the reader's session",
                "operationId": "logout",
                "responses": {"200": {"description": "Logged out.", "content": _OBJECT}},
            }
        },
    }


def _inventory_paths() -> dict[str, Any]:
    flag = {"type": "string", "enum": ["", "true", "1", "yes"]}
    return {
        "/inventory": {
            "get": {
                "summary": "The identities the gate has seen, with owners and flags (HTML, or JSON with Accept)",
                "operationId": "getInventory",
                "parameters": [
                    {"name": "unowned", "in": "query", "required": False, "schema": flag},
                    {"name": "agents", "in": "query", "required": False, "schema": flag},
                    {
                        "name": "stale",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {"name": "repository", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "The identities of repositories the reader may read.",
                        "content": {
                            "text/html": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                        },
                    },
                    "302": {"description": "To /login, for a reader who is not logged in (HTML)."},
                    "400": _error("A filter that is not valid."),
                    "401": _error("Asked for as JSON without a login."),
                    "503": _error("The GitHub login is not configured, or GitHub could not confirm access."),
                },
            }
        }
    }


def _grant_paths() -> dict[str, Any]:
    public_json = {"200": {"description": "The document.", "content": _OBJECT}}
    return {
        "/.well-known/jwks.json": {
            "get": {
                "summary": "The public keys that verify the gate's grants (RFC 7517)",
                "operationId": "jwks",
                "responses": public_json,
            }
        },
        "/.well-known/openid-configuration": {
            "get": {
                "summary": "Discovery: issuer, JWKS, introspection and revocation endpoints",
                "operationId": "discovery",
                "responses": public_json,
            }
        },
        "/v1/grants/introspect": {
            "post": {
                "summary": "RFC 7662 introspection of a grant",
                "operationId": "introspectGrant",
                "security": [{"grant": []}, {"githubOidc": []}, {"introspectionClient": []}],
                "requestBody": _form_or_json("IntrospectBody", "IntrospectBody"),
                "responses": {
                    "200": {
                        "description": "active: false for a dead grant or one the caller may not know of.",
                        "content": _json("IntrospectionAnswer"),
                    },
                    "400": _INVALID,
                    "401": _UNAUTHORISED,
                    "413": _TOO_LARGE,
                    "415": _NOT_JSON,
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/grants/revoke": {
            "post": {
                "summary": "RFC 7009 revocation of a grant, its GitHub token and its children",
                "operationId": "revokeGrant",
                "security": [{"grant": []}, {"githubOidc": []}],
                "requestBody": _form_or_json("RevokeBody", "RevokeForm"),
                "responses": {
                    "200": {
                        "description": "Revoked, or nothing to revoke.",
                        "content": _json("RevocationAnswer"),
                    },
                    "400": _INVALID,
                    "401": _UNAUTHORISED,
                    "404": _error("No grant with that jti."),
                    "413": _TOO_LARGE,
                    "415": _NOT_JSON,
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/grants/delegate": {
            "post": {
                "summary": "A narrower grant for the next agent of a chain",
                "operationId": "delegateGrant",
                "security": [{"grant": []}],
                "requestBody": {"required": True, "content": _json("DelegateBody")},
                "responses": {
                    "201": {"description": "The delegated grant.", "content": _json("IssuedCredentials")},
                    "400": _INVALID,
                    "401": _UNAUTHORISED,
                    "413": _TOO_LARGE,
                    "415": _NOT_JSON,
                    "503": _UNAVAILABLE,
                },
            }
        },
    }


def _person_run_post(
    summary: str, op: str, body: str | None, ok: tuple[str, str], param: str | None
) -> dict[str, Any]:
    """An act of a person's workflow_dispatch run (break-glass, freeze): its OIDC token, a JSON body."""
    errors = {
        "400": _INVALID,
        "401": _UNAUTHORISED,
        "403": _error("Not allowed: an agent or bot, a person the policy does not name, another repository "
                      "or organisation, or a widened scope (docs/governance.md)."),
        "404": _error("No such break-glass or freeze."),
        "413": _TOO_LARGE,
        "415": _NOT_JSON,
        "503": _UNAVAILABLE,
    }  # fmt: skip
    post: dict[str, Any] = {"summary": summary, "operationId": op, "security": [{"githubOidc": []}]}
    if param is not None:
        post["parameters"] = [{"name": param, "in": "path", "required": True, "schema": {"type": "string"}}]
    if body is not None:
        post["requestBody"] = {"required": True, "content": _json(body)}
    answer = {"application/json": {"schema": {"type": "object"}}}
    post["responses"] = {ok[0]: {"description": ok[1], "content": answer}, **errors}
    return {"post": post}


def _person_run_paths() -> dict[str, Any]:
    return {
        "/v1/break-glass": _person_run_post(
            "Invoke break-glass for one repository and action, optionally one environment (a person's "
            "workflow_dispatch run)",
            "invokeBreakGlass", "BreakGlassRequest", ("201", "Requested."), None,
        ),
        "/v1/break-glass/{break_glass_id}/confirm": _person_run_post(
            "A second person confirms a break-glass", "confirmBreakGlass", None, ("200", "Confirmed."),
            "break_glass_id",
        ),
        "/v1/freeze": _person_run_post(
            "Freeze every agent of the organisation, a repository or an agent kind: their grants revoked, "
            "no grant or execute decision until lifted (a person's workflow_dispatch run)",
            "startFreeze", "FreezeRequest", ("201", "Frozen; says how many grants were revoked."), None,
        ),
        "/v1/freeze/{freeze_id}/lift": _person_run_post(
            "A person the policy names lifts a freeze", "liftFreeze", "LiftRequest", ("200", "Lifted."),
            "freeze_id",
        ),
    }  # fmt: skip


def _service_paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "responses": {"200": {"description": "The process is alive.", "content": _OBJECT}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: policy loaded, store writable, keys obtainable",
                "operationId": "readyz",
                "responses": {
                    "200": {"description": "Ready.", "content": _json("Readiness")},
                    "503": {
                        "description": "Not ready; the body says which check failed.",
                        "content": _json("Readiness"),
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (decisions, refusals, latency, GitHub calls, queue, store errors)",
                "operationId": "metrics",
                "responses": {
                    "200": {"description": "The text exposition format.", "content": {"text/plain": {}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1.", "content": _OBJECT}},
            }
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document())
