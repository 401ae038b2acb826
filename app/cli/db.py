"""``agent-gate db upgrade``: create or upgrade the store's schema, refusing a newer one."""

from __future__ import annotations

import argparse

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    db = options.add_group(sub, "db", help="manage the store's schema", metavar=None)
    upgrade = db.add_parser(
        "upgrade", help="create or upgrade the schema (serve does it too); refuse a newer one"
    )
    options.add_database(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from app.store.opener import upgrade_store

    print(upgrade_store(args.database or options.load_settings().database_url))
    return 0
