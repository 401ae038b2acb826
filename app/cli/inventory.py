"""``agent-gate inventory``: the workload and agent identities the gate has seen, with their owners."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import app.cli.options as options
from app.errors import GateError


def register(sub: options.Subparsers) -> None:
    inventory = sub.add_parser(
        "inventory",
        help="list the workload and agent identities the gate has seen, with owners",
        description=(
            "List every workload (repository, workflow and ref, environment) and AI agent account the gate "
            "has decided for, from the audit log: first and last seen, decisions asked, allowed, denied and "
            "would-deny (audit mode), grants held, owners (from the policy). Identities a policy names that "
            "never asked are listed as never-seen; identities no rule names are flagged unnamed."
        ),
    )
    options.add_database(inventory)
    options.add_policy(inventory)
    options.add_format(inventory, "table", "json", "csv")
    inventory.add_argument("--unowned", action="store_true", help="only identities nobody owns")
    inventory.add_argument(
        "--stale",
        type=int,
        metavar="DAYS",
        help="only identities not seen for DAYS days (offboarding candidates)",
    )
    inventory.add_argument("--agents", action="store_true", help="only AI agent accounts")
    inventory.add_argument("--repository", metavar="OWNER/REPO", help="only identities of this repository")
    inventory.set_defaults(func=cmd_inventory)


def cmd_inventory(args: argparse.Namespace) -> int:
    from app.governance.history import read
    from app.governance.inventory import Filters, build_inventory, freeze_rows, render_csv, render_table
    from app.policy.loader import load_policies

    if args.stale is not None and args.stale < 0:
        raise GateError(f"--stale: got {args.stale}, expected a number of days, 0 or more", code="bad-input")
    now = datetime.now(UTC)
    store = options.existing_store(args.database)
    decisions, ledger = read(store.iter_audit())
    policies = load_policies(options.policy_path(args.policy))
    rows = build_inventory(
        decisions, ledger, policies, now=now, stale_days=args.stale if args.stale is not None else 90
    )
    filters = Filters(
        unowned=args.unowned, stale_days=args.stale, agents=args.agents, repository=args.repository
    )
    rows = [r for r in [*rows, *freeze_rows(store.find_freezes(state="active"))] if filters.keep(r)]
    if args.format == "json":
        sys.stdout.write(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(render_csv(rows))
    else:
        sys.stdout.write(render_table(rows))
    return 0
