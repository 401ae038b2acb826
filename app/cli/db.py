"""``agent-gate db upgrade``: create or upgrade the store's schema, refusing a newer one."""

from __future__ import annotations

import argparse
import json

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    db = options.add_group(sub, "db", help="manage the store's schema", metavar=None)
    upgrade = db.add_parser(
        "upgrade", help="create or upgrade the schema (serve does it too); refuse a newer one"
    )
    options.add_database(upgrade)
    options.add_format(upgrade, "text", "json")
    upgrade.set_defaults(func=cmd_db_upgrade)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from app.store.opener import upgrade_store

    before, after = upgrade_store(args.database or options.load_settings().database_url)
    if args.format == "json":
        print(json.dumps({"before": before, "after": after}))
    else:
        print(
            f"schema version {after} (up to date)"
            if before == after
            else f"schema version {before} -> {after}"
        )
    return 0
