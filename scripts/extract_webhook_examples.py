#!/usr/bin/env python3
"""Keep the webhook payload examples agent-gate's tests parse, from ``@octokit/webhooks-examples``.

GitHub's OpenAPI description (tests/fixtures/github-openapi) has the webhooks' schemas but an
example of only one of the payloads the gate models; the octokit package has examples of real
deliveries for nearly every event and action. The extract keeps the first example of each action
the gate acts on (``KEPT``), unchanged, so the tests parse payloads GitHub really sent.

Usage (see tests/fixtures/github-webhooks/README.md for the recorded provenance)::

    npm pack @octokit/webhooks-examples@7.6.1   # in a scratch directory
    tar xzf octokit-webhooks-examples-7.6.1.tgz
    python scripts/extract_webhook_examples.py package tests/fixtures/github-webhooks/examples.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from npm_package import read_package_file  # scripts/, beside this script

# The events and actions the gate acts on (app/events/), as octokit names them.
KEPT = {
    "pull_request": (
        "opened",
        "synchronize",
        "reopened",
        "ready_for_review",
        "labeled",
        "unlabeled",
        "closed",
        "edited",
    ),
    "pull_request_review": ("submitted", "edited", "dismissed"),
    "check_run": ("rerequested",),
    "check_suite": ("rerequested",),
    "deployment_protection_rule": ("requested",),
    "deployment_review": ("approved", "rejected", "requested"),
    "merge_group": ("checks_requested", "destroyed"),
}
SOURCE_FILE = "api.github.com/index.json"


def extract(index: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{event: {action: example}}``: the first example of each kept action the package has."""
    kept: dict[str, dict[str, Any]] = {}
    for definition in index:
        actions = KEPT.get(definition["name"], ())
        for example in definition.get("examples", []):
            if example.get("action") in actions:
                kept.setdefault(definition["name"], {}).setdefault(example["action"], example)
    return kept


def main(argv: list[str]) -> int:
    read = read_package_file(argv, SOURCE_FILE, __doc__)
    if read is None:
        return 2
    source, target = read
    examples = extract(json.loads(source.raw))
    missing = [f"{e}.{a}" for e, actions in KEPT.items() for a in actions if a not in examples.get(e, {})]
    out = {
        "source": {
            **source.provenance(),
            "not_in_package": missing,
            "command": "python scripts/extract_webhook_examples.py package "
            "tests/fixtures/github-webhooks/examples.json",
        },
        "examples": examples,
    }
    # One value per line (diffable), without indentation, as the OpenAPI extract.
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
    print(f"wrote {target} ({target.stat().st_size:,} bytes); not in the package: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
