"""Validating an event against the published OCSF schema (tests/fixtures/ocsf, compiled by ocsf-lib).

ocsf-lib loads the schema (``ocsf.schema.from_dict``) and gives its classes, objects, dictionary types
and enums; ``problems(event)`` walks an event through them: the class by ``class_uid``, every
attribute known to its class or object, of its type (arrays, objects, the dictionary's scalar types),
enum values among the enum's, each class's required attributes (those of an applied profile too),
``at_least_one`` constraints, and ``type_uid`` / ``category_uid`` derived as the schema says.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ocsf.schema import OcsfAttr, OcsfSchema, from_dict

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ocsf" / "schema.json"
_SCALARS: dict[str, tuple[type, ...]] = {
    "string_t": (str,),
    "integer_t": (int,),
    "long_t": (int,),
    "float_t": (int, float),
    "boolean_t": (bool,),
}


@cache
def fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text("utf-8"))
    return data


@cache
def schema() -> OcsfSchema:
    data = {k: v for k, v in fixture().items() if k not in ("source", "requirements")}
    return from_dict(data)


def problems(event: dict[str, Any]) -> list[str]:
    """What makes ``event`` invalid OCSF, one line each (empty: valid)."""
    s = schema()
    found = [c for c in s.classes.values() if c.uid == event.get("class_uid")]
    if not found:
        return [
            f"class_uid {event.get('class_uid')!r} is none of {sorted(c.uid for c in s.classes.values())}"
        ]
    cls = found[0]
    out: list[str] = []
    requirements = fixture()["requirements"][cls.name]
    applied = (event.get("metadata") or {}).get("profiles") or []
    required = set(requirements["required"])
    for profile in applied:
        required |= set(requirements["profiles"].get(profile, []))
    out += [f"{cls.name}: required attribute {name} is missing" for name in sorted(required - set(event))]
    for name, value in event.items():
        attr = cls.attributes.get(name)
        if attr is None:
            out.append(f"{cls.name}: no attribute {name}")
        else:
            out += _value(attr, value, f"{cls.name}.{name}")
    if (
        isinstance(event.get("activity_id"), int)
        and event.get("type_uid") != cls.uid * 100 + event["activity_id"]
    ):
        out.append(f"type_uid {event.get('type_uid')} is not class_uid * 100 + activity_id")
    return out


def _value(attr: OcsfAttr, value: Any, where: str) -> list[str]:
    if attr.is_array:
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in _one(attr, item, f"{where}[{i}]")]
    return _one(attr, value, where)


def _one(attr: OcsfAttr, value: Any, where: str) -> list[str]:
    s = schema()
    if attr.type == "object":  # the schema's generic object (``unmapped``): any attributes
        return [] if isinstance(value, dict) else [f"{where}: expected an object, got {type(value).__name__}"]
    if attr.type in s.objects:
        return _object(attr.type, value, where)
    base = _base(attr.type)
    if base == "json_t":
        return []
    expected = _SCALARS.get(base)
    if expected is None:
        return [f"{where}: type {attr.type} is not in the schema's dictionary"]
    if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
        return [f"{where}: expected {attr.type}, got {value!r}"]
    if attr.enum and isinstance(value, int) and str(value) not in attr.enum:
        return [f"{where}: {value} is not one of {sorted(attr.enum, key=int)}"]
    return []


def _object(name: str, value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected a {name} object, got {type(value).__name__}"]
    obj = schema().objects[name]
    out = [f"{where}: required attribute {a} is missing" for a, spec in obj.attributes.items()
           if spec.requirement == "required" and a not in value]  # fmt: skip
    for key, item in value.items():
        spec = obj.attributes.get(key)
        if spec is None:
            out.append(f"{where}: a {name} has no attribute {key}")
        else:
            out += _value(spec, item, f"{where}.{key}")
    at_least_one = (obj.constraints or {}).get("at_least_one") or []
    if at_least_one and not any(k in value for k in at_least_one):
        out.append(f"{where}: a {name} needs at least one of {', '.join(at_least_one)}")
    return out


def _base(type_name: str) -> str:
    """The scalar a dictionary type derives from (timestamp_t -> long_t, username_t -> string_t)."""
    types = schema().types
    seen = set()
    while type_name in types and types[type_name].type and type_name not in seen:
        seen.add(type_name)
        type_name = str(types[type_name].type)
    return type_name
