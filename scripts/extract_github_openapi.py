#!/usr/bin/env python3
"""Extract the schemas and examples agent-gate uses from GitHub's published OpenAPI description.

Source: the npm package @octokit/openapi (generated/api.github.com.deref.json, all $refs inlined).
OpenAPI 3.0's `nullable: true` is rewritten to JSON Schema's `type: [T, "null"]` so that jsonschema
validates what GitHub actually sends.
Usage:
    npm pack @octokit/openapi            # in a scratch directory
    tar xzf octokit-openapi-*.tgz
    python scripts/extract_github_openapi.py package/ tests/fixtures/github-openapi/extract.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = [
    "pulls/get",
    "pulls/list-commits",
    "pulls/list-reviews",
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
]
WEBHOOKS = [
    "pull-request-opened",
    "pull-request-synchronize",
    "pull-request-closed",
    "pull-request-review-submitted",
    "pull-request-review-dismissed",
]


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 marks nullable values with `nullable: true`; JSON Schema says `type: [T, "null"]`."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _json_content(node: dict[str, Any]) -> dict[str, Any] | None:
    content = node.get("content", {})
    return content.get("application/json") or next(iter(content.values()), None)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operations": {}, "webhooks": {}}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or op.get("operationId") not in OPERATIONS:
                continue
            entry: dict[str, Any] = {"method": method.upper(), "path": path, "responses": {}}
            body = op.get("requestBody")
            if body:
                media = _json_content(body)
                if media:
                    entry["request_schema"] = media.get("schema")
                    entry["request_examples"] = {k: v.get("value") for k, v in media.get("examples", {}).items()}
            for status, response in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                media = _json_content(response) or {}
                entry["responses"][status] = {
                    "schema": media.get("schema"),
                    "examples": {k: v.get("value") for k, v in media.get("examples", {}).items()},
                }
            out["operations"][op["operationId"]] = entry
    # Webhook payloads are the request bodies of the description's x-webhooks.
    for name, item in spec.get("x-webhooks", spec.get("webhooks", {})).items():
        if name in WEBHOOKS:
            media = _json_content(item.get("post", {}).get("requestBody", {})) or {}
            out["webhooks"][name] = {"schema": media.get("schema")}
    missing = sorted(set(OPERATIONS) - set(out["operations"])) + sorted(set(WEBHOOKS) - set(out["webhooks"]))
    if missing:
        raise SystemExit(f"not found in the description: {', '.join(missing)}")
    return out


def main(argv: list[str]) -> int:
    package, target = Path(argv[1]), Path(argv[2])
    version = json.loads((package / "package.json").read_text())["version"]
    spec = json.loads((package / "generated" / "api.github.com.deref.json").read_text())
    extracted = to_json_schema(extract(spec))
    extracted["source"] = {"package": "@octokit/openapi", "version": version,
                           "file": "generated/api.github.com.deref.json"}
    target.write_text(json.dumps(extracted, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target} ({target.stat().st_size} bytes) from @octokit/openapi {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
