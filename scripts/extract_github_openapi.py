#!/usr/bin/env python3
"""Extract the schemas and examples agent-gate uses from GitHub's published OpenAPI description.

Source: the npm package ``@octokit/openapi``, file ``generated/api.github.com.json`` (GitHub's own
description of api.github.com, OpenAPI 3.0, with ``$ref`` to ``#/components/...``).

The extract keeps exactly the operations and webhooks the gate calls or receives, and makes it
usable by ``jsonschema``:

- every ``$ref`` to a component schema is resolved in place (a recursive one would be bundled
  into the schema's ``$defs``; none of these has one), so each schema validates on its own
  (``jsonschema.validate(payload, schema)``) and can be read field by field;
- ``$ref`` to examples, responses and request bodies are resolved in place;
- OpenAPI 3.0's ``nullable: true`` becomes JSON Schema's ``type: [T, "null"]``;
- annotations (``description``, ``example``, ``title``, ``x-*``) are dropped: they are most of the
  size and change no validation.

Usage (see tests/fixtures/github-openapi/README.md for the recorded provenance)::

    npm pack @octokit/openapi@23.0.2           # in a scratch directory
    tar xzf octokit-openapi-23.0.2.tgz
    python scripts/extract_github_openapi.py package tests/fixtures/github-openapi/extract.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from npm_package import read_package_file  # scripts/, beside this script

OPERATIONS = (
    "pulls/get",
    "pulls/list-commits",
    "pulls/list-reviews",
    "pulls/list-files",
    "repos/list-pull-requests-associated-with-commit",
    "actions/get-workflow-run",
    "actions/get-reviews-for-run",
    "repos/get-collaborator-permission-level",
    "teams/get-membership-for-user-in-org",
    "apps/get-repo-installation",
    "apps/create-installation-access-token",
    "apps/revoke-installation-access-token",
    "checks/create",
    "checks/update",
    "checks/list-for-ref",
    "actions/review-custom-gates-for-run",
    "repos/get",
    "repos/get-all-environments",
    "repos/list-custom-deployment-rule-integrations",
    "repos/get-all-deployment-protection-rules",
    "repos/get-branch-rules",
    "repos/get-content",
    "users/get-authenticated",
    "apps/create-from-manifest",
    "repos/compare-commits",
    "apps/get-authenticated",
    "apps/list-webhook-deliveries",
    "apps/redeliver-webhook-delivery",
    # agent-gate protect: the writes that make a repository defer to the gate, and --org's listing
    "repos/get-repo-rulesets",
    "repos/get-repo-ruleset",
    "repos/create-repo-ruleset",
    "repos/update-repo-ruleset",
    "repos/create-deployment-protection-rule",
    "repos/create-or-update-environment",
    "apps/get-org-installation",
    "apps/list-repos-accessible-to-installation",
)
WEBHOOKS = (
    "pull-request-opened",
    "pull-request-synchronize",
    "pull-request-closed",
    "pull-request-review-submitted",
    "pull-request-review-dismissed",
    "pull-request-labeled",
    "pull-request-unlabeled",
    "pull-request-edited",
    "check-run-rerequested",
    "check-suite-rerequested",
    "deployment-protection-rule-requested",
    "deployment-review-approved",
    "deployment-review-rejected",
    "deployment-review-requested",
    "pull-request-reopened",
    "pull-request-ready-for-review",
    "pull-request-review-edited",
    "merge-group-checks-requested",
    "merge-group-destroyed",
)
SOURCE_FILE = "generated/api.github.com.json"
_SCHEMA_REF = "#/components/schemas/"
_ANNOTATIONS = frozenset({"description", "example", "examples", "title", "externalDocs", "deprecated"})
# Keywords whose value is a map of name -> schema, a single schema, or a list of schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs"})
_SCHEMA_ONE = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames"})
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


class _Spec:
    """GitHub's description, with helpers to resolve references and bundle schemas."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components: dict[str, Any] = spec["components"]

    def resolve(self, node: Any) -> Any:
        """Follow a non-schema ``$ref`` (examples, responses, request bodies) to its target."""
        while isinstance(node, dict) and "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#/components/"):
                raise SystemExit(f"unexpected reference {ref}")
            kind, name = ref.removeprefix("#/components/").split("/", 1)
            node = self.components[kind][name]
        return node

    def schema(self, node: Any) -> Any:
        """A schema converted to JSON Schema; component references point into ``#/$defs/``."""
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise SystemExit(f"not a schema: {node!r:.80}")
        if "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith(_SCHEMA_REF):
                raise SystemExit(f"unexpected schema reference {ref}")
            return {"$ref": "#/$defs/" + ref.removeprefix(_SCHEMA_REF)}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS or key.startswith("x-") or key in {"nullable", "discriminator"}:
                continue
            if key in _SCHEMA_MAPS:
                out[key] = {name: self.schema(sub) for name, sub in value.items()}
            elif key in _SCHEMA_ONE:
                out[key] = self.schema(value)
            elif key in _SCHEMA_LIST:
                out[key] = [self.schema(sub) for sub in value]
            elif key in {"exclusiveMinimum", "exclusiveMaximum"} and isinstance(value, bool):
                raise SystemExit("OpenAPI 3.0 boolean exclusiveMinimum/Maximum found: convert it first")
            else:
                out[key] = value
        if node.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
                if "enum" in out and None not in out["enum"]:
                    out["enum"] = [*out["enum"], None]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out

    def bundle(self, node: Any) -> Any:
        """A self-contained JSON Schema: component references inlined (dereferenced), except a
        recursive one, which points into ``$defs`` instead (none of the extracted schemas has one)."""
        defs: dict[str, Any] = {}

        def inline(schema: Any, stack: tuple[str, ...]) -> Any:
            if isinstance(schema, list):
                return [inline(s, stack) for s in schema]
            if not isinstance(schema, dict):
                return schema
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and len(schema) == 1:
                name = ref.removeprefix("#/$defs/")
                converted = self.schema(self.components["schemas"][name])
                if name in stack:
                    defs[name] = converted  # recursion: keep a reference, resolved through $defs
                    return schema
                return inline(converted, (*stack, name))
            return {key: inline(value, stack) for key, value in schema.items()}

        root = inline(self.schema(node), ())
        for name in list(defs):
            defs[name] = inline(defs[name], (name,))
        if defs:
            if not isinstance(root, dict):
                raise SystemExit("a boolean schema with references")
            root["$defs"] = dict(sorted(defs.items()))
        return root

    def media(self, node: dict[str, Any]) -> dict[str, Any] | None:
        content = self.resolve(node).get("content", {})
        found = content.get("application/json") or next(iter(content.values()), None)
        return found if isinstance(found, dict) else None

    def examples(self, media: dict[str, Any]) -> dict[str, Any]:
        return {name: self.resolve(ex).get("value") for name, ex in media.get("examples", {}).items()}


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The operations and webhooks agent-gate uses, each with bundled schemas and examples."""
    s = _Spec(spec)
    operations: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or op.get("operationId") not in OPERATIONS:
                continue
            entry: dict[str, Any] = {"method": method.upper(), "path": path, "responses": {}}
            if "requestBody" in op and (media := s.media(op["requestBody"])) is not None:
                entry["request_schema"] = s.bundle(media["schema"])
                entry["request_examples"] = s.examples(media)
            for status, response in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                media = s.media(response)
                entry["responses"][status] = (
                    {"schema": s.bundle(media["schema"]), "examples": s.examples(media)}
                    if media is not None and "schema" in media
                    else {"schema": None, "examples": {}}
                )
            operations[op["operationId"]] = entry
    webhooks: dict[str, Any] = {}
    for name, item in spec.get("x-webhooks", spec.get("webhooks", {})).items():
        if name in WEBHOOKS and (media := s.media(item["post"]["requestBody"])) is not None:
            webhooks[name] = {"schema": s.bundle(media["schema"]), "examples": s.examples(media)}
    missing = sorted(set(OPERATIONS) - operations.keys()) + sorted(set(WEBHOOKS) - webhooks.keys())
    if missing:
        raise SystemExit(f"not found in the description: {', '.join(missing)}")
    return {
        "operations": dict(sorted(operations.items())),
        "webhooks": dict(sorted(webhooks.items())),
    }


def main(argv: list[str]) -> int:
    read = read_package_file(argv, SOURCE_FILE, __doc__)
    if read is None:
        return 2
    source, target = read
    raw = source.raw
    extracted = extract(json.loads(raw))
    extracted["source"] = {
        **source.provenance(),
        "openapi_info_version": json.loads(raw)["info"]["version"],
        "command": "python scripts/extract_github_openapi.py package tests/fixtures/github-openapi/extract.json",
    }
    # One value per line (diffable), without indentation (half the size).
    target.write_text(json.dumps(extracted, indent=0, sort_keys=True) + "\n")
    size = target.stat().st_size
    print(f"wrote {target} ({size:,} bytes) from {source.name} {source.version} ({SOURCE_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
