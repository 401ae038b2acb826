"""``agent-gate sessions end-all``: end every login to the decision pages and the inventory, at once."""

from __future__ import annotations

import argparse
import time

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    gsub = options.add_group(sub, "sessions", help="end logins to the decision pages")
    end_all = gsub.add_parser(
        "end-all",
        help="end every page session now (a copied or stolen cookie stops working); readers log in again",
        description="End every session of the decision pages and /inventory on the server: each reader "
        "must log in with GitHub again (docs/security-model.md#who-sees-what).",
    )
    options.add_database(end_all)
    end_all.set_defaults(func=cmd_sessions_end_all)


def cmd_sessions_end_all(args: argparse.Namespace) -> int:
    ended = options.existing_store(args.database).end_all_sessions(now=int(time.time()))
    print(f"ended {ended} session(s); every reader must log in again")
    return 0
