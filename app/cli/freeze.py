"""``agent-gate freeze list``: every freeze of agents, active or lifted, for review."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    gsub = options.add_group(sub, "freeze", help="review freezes of agents (the kill-switch)")
    listing = gsub.add_parser(
        "list",
        help="every freeze, its scope, who started and who lifted it, and why",
        description="List freezes of agents for review: scope (organisation, repository or agent kind), "
        "state, who started it and why, who lifted it and why (POST /v1/freeze; docs/governance.md#freeze).",
    )
    options.add_database(listing)
    options.add_since(listing, "those started")
    listing.add_argument("--active", action="store_true", help="only the freezes in force now")
    options.add_format(listing, "text", "json")
    listing.set_defaults(func=cmd_freeze_list)


def _when(at: int | None) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="minutes") if at is not None else "-"


def cmd_freeze_list(args: argparse.Namespace) -> int:
    from app.governance.freeze import ACTIVE, describe

    since = int(args.since.timestamp()) if args.since else None
    records = options.existing_store(args.database).find_freezes(
        since=since, state=ACTIVE if args.active else None
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return 0
    for r in records:
        print(f"{r['id']} {r['state']} {describe(r)} since {_when(r['created_at'])}")
        print(f"  started by @{r['invoker']} (from {r['asked_from']}): {r['justification']}")
        if r.get("lifter"):
            print(f"  lifted by @{r['lifter']} at {_when(r.get('lifted_at'))}: {r['lift_justification']}")
    print(f"{len(records)} freeze(s)")
    return 0
