"""``GET /openapi.json``: every route of the gate described in OpenAPI 3.1, built from the routes.

The document walks the routes Flask registered and reads, from each view, the operation declared
beside it (``@documented``, app/web/spec.py): the body model it parses, its parameters, every status
it answers and with what. The body schemas are the pydantic models the views validate with and answer
from. A route without a declaration cannot be built into the document (:class:`Undocumented`), so
the document cannot drift from the routes; tests/web/test_openapi.py has schemathesis check the
gate's answers against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from app.settings import gate_version
from app.web.spec import OBJECT, Answer, Operation, Param, documented, json_answer, operation_of

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"
_EXTENSION = "agent_gate_openapi"
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_ARGUMENT = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")

SECURITY: dict[str, Any] = {
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


class Undocumented(LookupError):
    """A registered route whose view declares no operation: a programming error, caught by the tests."""


def openapi_path(rule: str) -> str:
    """Flask's ``/decisions/<decision_id>`` as OpenAPI's ``/decisions/{decision_id}``."""
    return _ARGUMENT.sub(r"{\1}", rule)


def operations(app: Flask) -> Iterator[tuple[Rule, str, Operation]]:
    """Every (rule, method, operation) of ``app``; raises :class:`Undocumented` naming each route
    whose view declares none."""
    found, missing = [], []
    for rule in app.url_map.iter_rules():
        operation = operation_of(app.view_functions[rule.endpoint])
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            if operation is None:
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
            else:
                found.append((rule, method.lower(), operation))
    if missing:
        raise Undocumented(
            "routes whose view declares no operation (@documented, app/web/spec.py): " + ", ".join(missing)
        )
    yield from sorted(found, key=lambda item: (item[0].rule, item[1]))


def openapi_document(app: Flask) -> dict[str, Any]:
    """The document of ``app``'s routes, built once per app."""
    cached: dict[str, Any] | None = app.extensions.get(_EXTENSION)
    if cached is None:
        cached = app.extensions[_EXTENSION] = _build(list(operations(app)))
    return cached


def _models(ops: list[tuple[Rule, str, Operation]]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for _, _, op in ops:
        for body in (op.body, op.form):
            if isinstance(body, type):
                wanted[(body, "validation")] = None
        for answer in op.answers.values():
            for schema in answer.content.values():
                if isinstance(schema, type):
                    wanted[(schema, "serialization")] = None
    return list(wanted)


def _build(ops: list[tuple[Rule, str, Operation]]) -> dict[str, Any]:
    refs, schemas = models_json_schema(_models(ops), ref_template=_REF)

    def schema(body: type[BaseModel] | dict[str, Any], mode: Literal["validation", "serialization"]) -> Any:
        return dict(refs[(body, mode)]) if isinstance(body, type) else body

    paths: dict[str, dict[str, Any]] = {}
    for rule, method, op in ops:
        rendered: dict[str, Any] = {"summary": op.summary, "operationId": op.operation_id}
        if op.security:
            rendered["security"] = [{name: []} for name in op.security]
        declared = {p.name for p in op.params}
        params = [
            *op.params,
            *(Param(a, "path", required=True) for a in sorted(rule.arguments) if a not in declared),
        ]
        if params:
            rendered["parameters"] = [_param(p) for p in params]
        if op.body is not None:
            content = {"application/json": {"schema": schema(op.body, "validation")}}
            if op.form is not None:
                content = {
                    "application/x-www-form-urlencoded": {"schema": schema(op.form, "validation")},
                    **content,
                }
            rendered["requestBody"] = {"required": True, "content": content}
        rendered["responses"] = {
            str(status): _answer(answer, schema) for status, answer in sorted(op.answers.items())
        }
        paths.setdefault(openapi_path(rule.rule), {})[method] = rendered
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "agent-gate",
            "version": gate_version(),
            "description": "Governed, attributable, least-privilege actions for AI coding agents.",
        },
        "components": {"schemas": schemas.get("$defs", {}), "securitySchemes": SECURITY},
        "paths": dict(sorted(paths.items())),
    }


def _param(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "schema": param.schema,
    }
    if param.description:
        out["description"] = param.description
    return out


def _answer(answer: Answer, schema: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.content:
        out["content"] = {
            media: ({} if body is None else {"schema": schema(body, "serialization")})
            for media, body in answer.content.items()
        }
    if answer.headers:
        out["headers"] = {
            name: {"description": what, "schema": {"type": "string"}} for name, what in answer.headers.items()
        }
    return out


@bp.get("/openapi.json")
@documented(
    Operation(
        "openapi",
        "This document",
        {200: json_answer("OpenAPI 3.1, built from the routes themselves.", OBJECT)},
    )
)
def openapi_json() -> Response:
    return jsonify(openapi_document(current_app))
