"""``agent-gate break-glass list``: every emergency override, for review."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    gsub = options.add_group(sub, "break-glass", help="review emergency overrides")
    listing = gsub.add_parser(
        "list",
        help="every break-glass, who invoked and confirmed it, why, and the decisions it allowed",
        description="List break-glass overrides for review: repository, action, who invoked and who "
        "confirmed it, the justification, its window and the decisions it allowed (POST /v1/break-glass; "
        "docs/governance.md#break-glass).",
    )
    options.add_database(listing)
    options.add_since(listing, "those invoked")
    options.add_format(listing, "text", "json")
    listing.set_defaults(func=cmd_break_glass_list)


def cmd_break_glass_list(args: argparse.Namespace) -> int:
    from app.governance.breakglass import listed_state

    since = int(args.since.timestamp()) if args.since else None
    now = time.time()
    found = options.existing_store(args.database).find_break_glass(since=since)
    records = [{**r, "state": listed_state(r, now)} for r in found]
    if args.format == "json":
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return 0
    for r in records:
        start = datetime.fromtimestamp(r["created_at"], UTC).isoformat(timespec="minutes")
        end = datetime.fromtimestamp(r["expires_at"], UTC).isoformat(timespec="minutes")
        confirmer = f", confirmed by @{r['confirmer']}" if r.get("confirmer") else ""
        where = f" ({r['environment']})" if r.get("environment") else ""
        print(f"{r['id']} {r['state']} {r['action']} on {r['repository']}{where} {start}..{end}")
        print(f"  invoked by @{r['invoker']}{confirmer}: {r['justification']}")
        print(f"  allowed {len(r.get('uses') or [])} decision(s): {' '.join(r.get('uses') or []) or '-'}")
    print(f"{len(records)} break-glass record(s)")
    return 0
