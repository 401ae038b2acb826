"""Pydantic's validation errors, told as ``file:line: field: got X, expected Y``.

Each error's ``loc`` is walked down the document's :class:`~app.policy.source.Position` tree to
find the line of the offending key or value; parts that are not places in the document (the tags
of the language's unions, pydantic's ``[key]``) are skipped. The model types are walked the same
way to list the fields allowed where an unknown one was written, and to suggest the closest.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from app.errors import PolicyProblem
from app.policy.schema import PATTERN_MEANINGS, CrossProblem, Loc, Policy
from app.policy.source import Document, Position, not_text_hint

# The conditions of a rule: an empty list would match nothing, omitting one matches anything.
_CONDITIONS = frozenset({"refs", "environments", "events", "workflows", "runner_environments"})

_ALL_REPOSITORIES = "all-repositories"  # the tag of repositories: '*' (schema.Repositories)
# Errors where text was expected: a YAML boolean or number there gets the "write it in quotes" hint.
_TEXT_EXPECTED = frozenset({"string_type", "matcher_type", "repositories_type"})

_SIMPLE_EXPECTATIONS = {
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def locate(root: Position, loc: Loc, *, missing: bool = False) -> tuple[str, int, Position | None]:
    """The dotted field path, the line, and the position of the value at ``loc``.

    With ``missing``, the last part names a field that is absent: it joins the path and the line
    is that of the mapping it is missing from.
    """
    where = ""
    position: Position | None = root
    line = root.line
    for k, part in enumerate(loc):
        child = position.child(part) if position is not None else None
        last = k == len(loc) - 1
        if child is None and not (missing and last and isinstance(part, str)):
            continue  # a union's tag or pydantic's "[key]": not a place in the document
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where += f".{part}" if where else part
        position = child
        if child is not None:
            line = child.line
    return where, line, position


# -- the model types, walked along a loc -------------------------------------------------------


def _members(tp: Any, tag: str | None = None) -> list[tuple[str | None, Any]]:
    """The alternatives of a type, each with the tag pydantic puts in error locations."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *meta = get_args(tp)
        tags = [m.tag for m in meta if isinstance(m, Tag)]
        return _members(inner, tags[0] if tags else tag)
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [(tag, tp)]


def _step(types_here: Iterable[Any], part: str | int) -> tuple[list[Any], list[FieldInfo]]:
    members = [m for tp in types_here for m in _members(tp)]
    tagged = [tp for tag, tp in members if tag == part]
    if tagged:
        return tagged, []
    following: list[Any] = []
    infos: list[FieldInfo] = []
    for _, tp in members:
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            infos.append(tp.model_fields[str(part)])
            following.append(tp.model_fields[str(part)].annotation)
        elif get_origin(tp) is list and isinstance(part, int):
            following.append(get_args(tp)[0])
        elif get_origin(tp) is dict and isinstance(part, str):
            following.append(get_args(tp)[1])
    return following, infos


def fields_at(loc: Loc) -> list[str]:
    """The fields a mapping at ``loc`` may have (several models: all their fields, in order)."""
    current: list[Any] = [Policy]
    for part in loc:
        following, _ = _step(current, part)
        if following:
            current = following
    names: dict[str, None] = {}
    for tp in current:
        for _, member in _members(tp):
            if isinstance(member, type) and issubclass(member, BaseModel):
                names.update(dict.fromkeys(member.model_fields))
    return list(names)


def field_info(loc: Loc) -> FieldInfo | None:
    """The pydantic field at ``loc`` (its description says what is expected)."""
    current: list[Any] = [Policy]
    infos: list[FieldInfo] = []
    for part in loc:
        following, infos = _step(current, part)
        if following:
            current = following
    return infos[0] if infos else None


# -- messages ----------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_of(expected: str) -> str:
    values = re.findall(r"'([^']*)'", expected)
    if len(values) > 1:
        return "one of " + ", ".join(values)
    return expected


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _expected(err: ErrorDetails, field: str) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind in _SIMPLE_EXPECTATIONS:
        return _SIMPLE_EXPECTATIONS[kind]
    if kind in ("literal_error", "enum"):
        if _ALL_REPOSITORIES in err["loc"]:
            return (
                "expected '*' (every repository of the owner) or a list of {id, name} / {name_pattern: REGEX}"
            )
        return "expected " + _one_of(str(ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return "expected " + PATTERN_MEANINGS.get(pattern, f"text matching {pattern}")
    if kind == "string_too_short":
        return f"expected at least {_plural(int(ctx.get('min_length', 1)), 'character')}"
    if kind == "string_too_long":
        return f"expected at most {_plural(int(ctx.get('max_length', 0)), 'character')}"
    if kind == "too_short":
        message = f"expected at least {_plural(int(ctx.get('min_length', 1)), 'entry')}"
        if field.rsplit(".", 1)[-1] in _CONDITIONS:
            message += " (an empty list matches nothing; to match anything, remove the field)"
        return message
    if kind == "greater_than":
        return f"expected a number greater than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"expected a number of at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"expected a number of at most {ctx.get('le')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


# Words a workflow author brings from GitHub Actions or habit, and the policy field that means it.
# Spelling alone would not find them (``on`` is nothing like ``events``).
_SYNONYMS = {
    "on": "events",
    "event": "events",
    "branches": "refs",
    "branch": "refs",
    "ref": "refs",
    "environment": "environments",
    "repos": "repositories",
    "repository": "repositories",
    "workflow": "workflows",
    "action": "actions",
    "permissions": "github_permissions",
}


def _describe(err: ErrorDetails, field: str, position: Position | None) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "missing":
        info = field_info(loc)
        what = f" ({info.description.rstrip('.')})" if info is not None and info.description else ""
        return f"required field is missing{what}"
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed = fields_at(loc[:-1])
        close = (
            [_SYNONYMS[name]]
            if _SYNONYMS.get(name) in allowed
            else difflib.get_close_matches(name, allowed, n=1)
        )
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field {name!r}{suggestion}; expected one of {', '.join(allowed)}"
    expected = _expected(err, field)
    scalar = position.scalar if position is not None else None
    hint = not_text_hint(scalar) if kind in _TEXT_EXPECTED else None
    if hint and scalar is not None:
        return f"got {scalar.text}, {expected}: {hint}"
    return f"got {_shown(err.get('input'))}, {expected}"


def validation_problems(exc: ValidationError, document: Document, path: str) -> list[PolicyProblem]:
    """Every error of ``exc`` as a problem with its line, field, what was found and what was expected."""
    problems: dict[tuple[int, str, str], PolicyProblem] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        field, line, position = locate(document.root, loc, missing=err["type"] == "missing")
        message = _describe(err, field, position)
        problems.setdefault((line, field, message), PolicyProblem(path, line, field, message))
    return sorted(problems.values(), key=lambda p: (p.line or 0, p.field))


def cross_field_problems(found: list[CrossProblem], document: Document, path: str) -> list[PolicyProblem]:
    """Problems spanning fields (unknown actions, duplicate rule names...), each at its own line."""
    out: list[PolicyProblem] = []
    for problem in found:
        field, line, _ = locate(document.root, problem.loc)
        message = problem.message
        if problem.refers_to is not None:
            message += f" (line {locate(document.root, problem.refers_to)[1]})"
        out.append(PolicyProblem(path, line, field, message))
    return sorted(out, key=lambda p: (p.line or 0, p.field))
