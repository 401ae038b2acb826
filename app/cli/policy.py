"""``agent-gate policy check`` (validate and lint policy files) and ``agent-gate policy schema``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    psub = options.add_group(
        sub, "policy", help="validate policies", description="Work with org policy files."
    )
    check = psub.add_parser(
        "check",
        help="validate policy files and warn on dangerous patterns",
        description="Validate policy files (or directories of them). Exit 0 when valid (warnings allowed), "
        "1 on errors, 2 when a path is missing. --format json prints one object (docs/policy.md); "
        "--format github prints an ::error or ::warning annotation per problem, for a workflow step.",
    )
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    options.add_format(check, "text", "json", "github")
    check.set_defaults(func=cmd_policy_check)
    schema = psub.add_parser("schema", help="print the policy JSON Schema (policies/schema.json)")
    options.add_output(schema)
    schema.set_defaults(func=cmd_policy_schema)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from app.policy.validate import check_paths

    return check_paths(args.paths, sys.stdout, args.format)


def cmd_policy_schema(args: argparse.Namespace) -> int:
    from app.policy.validate import policy_json_schema

    text = json.dumps(policy_json_schema(), indent=2) + "\n"
    if args.output:
        args.output.write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return 0
