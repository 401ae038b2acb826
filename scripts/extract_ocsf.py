"""Write tests/fixtures/ocsf/schema.json: the OCSF classes the audit export emits, compiled by ocsf-lib.

Usage: python scripts/extract_ocsf.py OCSF_SCHEMA_CHECKOUT [TARGET]

OCSF_SCHEMA_CHECKOUT is a working copy of github.com/ocsf/ocsf-schema at its 1.8.0 release (commit
3dcb905d, "v1.8.0 prep (#1592)"): ``git clone https://github.com/ocsf/ocsf-schema && git -C
ocsf-schema checkout 3dcb905d``. ocsf-lib (the [test] extra) compiles it the way the OCSF server
does (inheritance, profiles, dictionary types); this script keeps the classes in ``CLASSES``, every
object and type they reach, and drops descriptions, so the fixture stays small and the suite
validates each exported event against the published schema without network access
(tests/governance/ocsf_schema.py). Run it again, and commit the fixture, when the export moves to
another OCSF version or emits another class.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ocsf.compile import CompilationOptions
from ocsf.schema import to_dict
from ocsf.util import get_schema

VERSION = "1.8.0"
COMMIT = "3dcb905d26523ce4d5d0ba3c28c8507e2c859407"  # the release's commit: "v1.8.0 prep (#1592)"
CLASSES = ("api_activity", "authorize_session", "entity_management")
TARGET = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ocsf" / "schema.json"


def _strip(node: Any) -> Any:
    """The node without its prose (descriptions and notes): validation reads none of it."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in ("description", "notes", "references")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _reached(schema: dict[str, Any]) -> set[str]:
    """The objects the kept classes reach, through object-typed attributes, transitively."""
    objects = schema["objects"]
    todo = [attr["type"] for name in CLASSES for attr in schema["classes"][name]["attributes"].values()]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in objects:
            continue
        seen.add(name)
        todo += [attr["type"] for attr in objects[name]["attributes"].values()]
    return seen


def _declared(checkout: Path) -> dict[str, dict[str, Any]]:
    """Each event class file by name: the class as written, before compilation."""
    found: dict[str, dict[str, Any]] = {}
    for path in (checkout / "events").rglob("*.json"):
        declared = json.loads(path.read_text("utf-8"))
        found[declared["name"]] = declared
    return found


def _required(checkout: Path, name: str) -> dict[str, Any]:
    """What a class requires as its files declare it (the class, what it extends, the base event;
    the nearest declaration wins), and what each profile adds when an event applies it.

    The compiled schema marks profile attributes required whether or not an event applies the
    profile (ocsf-lib merges them in), so requirement is read from the declarations instead.
    """
    declared = _declared(checkout)
    chain: list[dict[str, Any]] = []
    current: str | None = name
    while current:
        chain.insert(0, declared[current])
        current = declared[current].get("extends")
    requirement: dict[str, str] = {}
    for level in chain:
        for attr, spec in level["attributes"].items():
            if attr != "$include" and spec.get("requirement"):
                requirement[attr] = spec["requirement"]
    profiles: dict[str, list[str]] = {}
    for path in sorted((checkout / "profiles").glob("*.json")):
        profile = json.loads(path.read_text("utf-8"))
        needed = [a for a, spec in profile["attributes"].items() if spec.get("requirement") == "required"]
        if needed:
            profiles[profile["name"]] = sorted(needed)
    return {"required": sorted(a for a, r in requirement.items() if r == "required"), "profiles": profiles}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    checkout = Path(argv[1])
    target = Path(argv[2]) if len(argv) == 3 else TARGET
    found = json.loads((checkout / "version.json").read_text("utf-8"))["version"]
    if found != VERSION:
        print(f"{checkout} is OCSF {found}; expected {VERSION} (check out commit 3dcb905d)", file=sys.stderr)
        return 1
    compiled = to_dict(get_schema(str(checkout), compile_options=CompilationOptions(extensions=[])))
    kept = _reached(compiled)
    fixture = {
        "source": {
            "repository": "https://github.com/ocsf/ocsf-schema",
            "version": VERSION,
            "commit": COMMIT,
            "compiled_by": f"ocsf-lib {version('ocsf-lib')}",
            "compiled_sha256": hashlib.sha256(json.dumps(compiled, sort_keys=True).encode()).hexdigest(),
        },
        "version": compiled["version"],
        "classes": {name: _strip(compiled["classes"][name]) for name in CLASSES},
        "requirements": {name: _required(checkout, name) for name in CLASSES},
        "objects": {name: _strip(compiled["objects"][name]) for name in sorted(kept)},
        "types": _strip(compiled["types"]),
        "base_event": _strip(compiled["base_event"]),
        "profiles": {},
        "extensions": {},
        "categories": {},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n", "utf-8")
    print(f"wrote {target}: {len(CLASSES)} classes, {len(kept)} objects of OCSF {VERSION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
