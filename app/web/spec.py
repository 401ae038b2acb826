"""What a route takes and answers, declared on its view: ``/openapi.json`` is built from these.

Each view carries an :class:`Operation` (``@documented(...)``, under the route's own decorator):
its body model, its parameters, and every status it answers with what it answers. The document
(app/web/openapi.py) walks the routes Flask registered and reads the operation of each, so a route
without one cannot be built into the document, and a declaration sits beside the code that keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

_View = TypeVar("_View", bound=Callable[..., Any])

ATTRIBUTE = "openapi_operation"


class ErrorItem(BaseModel):
    code: str
    description: str


class ErrorBody(BaseModel):
    """The one error shape of every endpoint."""

    message: str
    errors: list[ErrorItem]


@dataclass(frozen=True)
class Answer:
    """One status of an operation: what it means, and the body of each media type it may carry
    (a model, a JSON Schema, or ``None``: no body)."""

    description: str
    content: Mapping[str, type[BaseModel] | dict[str, Any] | None] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # header -> what it says


def json_answer(description: str, body: type[BaseModel] | dict[str, Any], **headers: str) -> Answer:
    return Answer(description, {"application/json": body}, headers)


def error(description: str) -> Answer:
    """An answer in the error shape (``ErrorBody``)."""
    return Answer(description, {"application/json": ErrorBody})


def moved(description: str) -> Answer:
    """A redirect (3xx) to where the reader goes next."""
    return Answer(description, headers={"Location": "where to go next"})


OBJECT: dict[str, Any] = {"type": "object"}

# The refusals several endpoints share, with what they mean.
UNAUTHORISED = error("The credential was refused (and audited); the error code says which check failed.")
INVALID = error("The request body or a parameter is invalid.")
TOO_LARGE = error("The body or the token is over the size limit.")
NOT_JSON = error("The body is not JSON (or, where accepted, form-encoded).")
UNAVAILABLE = error("Something the answer depends on is unavailable; nothing was allowed.")
LOGIN_UNAVAILABLE = error("The GitHub login is not configured, or GitHub could not confirm access.")


@dataclass(frozen=True)
class Param:
    """A query, header or path parameter, with the JSON Schema of what the view accepts."""

    name: str
    where: Literal["query", "header", "path"]
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers. ``body``: a model (JSON) or a JSON Schema; ``form``: the
    model of a form-encoded alternative; ``security``: the schemes of which one is required."""

    operation_id: str
    summary: str
    answers: Mapping[int, Answer]
    body: type[BaseModel] | dict[str, Any] | None = None
    form: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    security: tuple[str, ...] = ()


def documented(operation: Operation) -> Callable[[_View], _View]:
    """Declare ``operation`` on the view it decorates (put it under ``@bp.get``/``@bp.post``)."""

    def mark(view: _View) -> _View:
        setattr(view, ATTRIBUTE, operation)
        return view

    return mark


def operation_of(view: Callable[..., Any]) -> Operation | None:
    found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None
