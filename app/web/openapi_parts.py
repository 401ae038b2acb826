"""Parts of the OpenAPI document: the shared answer shapes, and the browser and break-glass routes.

``app.web.openapi`` assembles the document from these and from the API routes it describes itself.
"""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{model}"


def json_content(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=name)}}}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content("ErrorBody")}


OBJECT = {"application/json": {"schema": {"type": "object"}}}

UNAUTHORISED = error("The credential was refused (and audited); the error code says which check failed.")
INVALID = error("The request body is invalid.")
TOO_LARGE = error("The body or the token is over the size limit.")
NOT_JSON = error("The body is not JSON (or, where accepted, form-encoded).")
UNAVAILABLE = error("Something the answer depends on is unavailable; nothing was allowed.")


def form_or_json(json_model: str, form_model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": {"$ref": REF.format(model=form_model)}},
            "application/json": {"schema": {"$ref": REF.format(model=json_model)}},
        },
    }


def inventory_paths() -> dict[str, Any]:
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
                    "400": error("A filter that is not valid."),
                    "401": error("Asked for as JSON without a login."),
                    "503": error("The GitHub login is not configured, or GitHub could not confirm access."),
                },
            }
        }
    }


def login_paths() -> dict[str, Any]:
    redirect = {"302": {"description": "To GitHub's authorisation page, or back to the decision page."}}
    return {
        "/login": {
            "get": {
                "summary": "Start the GitHub login of a decision page reader",
                "operationId": "login",
                "parameters": [
                    {"name": "next", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {**redirect, "503": error("The GitHub login is not configured.")},
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
                    "200": {"description": "Logged in (no page to return to).", "content": OBJECT},
                    "400": INVALID,
                    "401": error("The login was not started here, expired, or GitHub refused it."),
                    "503": error("The GitHub login is not configured, or GitHub is unavailable."),
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
                    "400": INVALID,
                    "404": error("The gate has its App."),
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
                    "400": INVALID,
                    "401": error("Not started in this browser."),
                    "404": error("The gate has its App."),
                    "503": error("GitHub refused or could not be reached."),
                },
            }
        },
        "/logout": {
            "post": {
                "summary": "End the reader's session",
                "operationId": "logout",
                "responses": {"200": {"description": "Logged out.", "content": OBJECT}},
            }
        },
    }


def break_glass_paths() -> dict[str, Any]:
    answer = {"application/json": {"schema": {"type": "object"}}}
    errors = {
        "400": INVALID,
        "401": UNAUTHORISED,
        "403": error("Not allowed to invoke or confirm it (docs/governance.md)."),
        "404": error("Break-glass is not enabled, or no such break-glass."),
        "413": TOO_LARGE,
        "415": NOT_JSON,
        "503": UNAVAILABLE,
    }
    return {
        "/v1/break-glass": {
            "post": {
                "summary": "Invoke break-glass for one repository and action (a person's workflow_dispatch run)",
                "operationId": "invokeBreakGlass",
                "security": [{"githubOidc": []}],
                "requestBody": {"required": True, "content": json_content("BreakGlassRequest")},
                "responses": {"201": {"description": "Requested.", "content": answer}, **errors},
            }
        },
        "/v1/break-glass/{break_glass_id}/confirm": {
            "post": {
                "summary": "A second person confirms a break-glass",
                "operationId": "confirmBreakGlass",
                "security": [{"githubOidc": []}],
                "parameters": [
                    {"name": "break_glass_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "Confirmed.", "content": answer}, **errors},
            }
        },
    }
