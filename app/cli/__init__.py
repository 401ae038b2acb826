"""The ``agent-gate`` command: :func:`main`, and its parser built from a module per command group.

Each group's module adds its commands with ``register(subparsers)``; the options several groups
share (``--database``, ``--policy``, ``--format``, ``--since``, ``--output``) are written once in
:mod:`app.cli.options`. Command bodies import what they use lazily, to keep the command light.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from app.cli import audit, breakglass, db, dev, explain, inventory, keys, options, policy, serve
from app.cli.options import Subparsers
from app.errors import ConfigError, GateError

EPILOG = "Documentation: README.md and docs/ (configuration, policy, API, GitHub App, governance, security)."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        return result
    except GateError as exc:
        print(f"agent-gate: {exc.message}", file=sys.stderr)
        for detail in exc.details[1:] if len(exc.details) > 1 else []:
            print(f"  {detail.description}", file=sys.stderr)
        if len(exc.details) > 1:
            print(f"  {exc.details[0].description}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-gate",
        description="Governed, attributable, least-privilege actions for AI coding agents in GitHub Actions.",
        epilog=EPILOG,
    )
    from app.settings import gate_version

    parser.add_argument("--version", action="version", version=f"agent-gate {gate_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    # In the order `agent-gate --help` lists them.
    for group in (serve, policy, explain, audit, keys):
        group.register(sub)
    _register_doctor(sub)
    for group in (db, dev, inventory, breakglass):
        group.register(sub)
    return parser


def _register_doctor(sub: Subparsers) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check through the GitHub App that a repository really defers to the gate",
        description=(
            "Read a repository through the GitHub App (GATE_GITHUB_APP_ID and its key) and print one line per "
            "finding: environments targeted by workflows without the agent-gate deployment protection rule, a "
            "default branch whose rulesets don't require `agent-gate / merge` from the App, jobs with an OIDC "
            "identity outside a gated environment. Exit 0 when nothing is open, 1 otherwise (docs/github-app.md)."
        ),
    )
    doctor.add_argument("repository", metavar="OWNER/REPO")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.github.client import GitHubClient
    from app.github.doctor import diagnose

    if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", args.repository):
        print(f"agent-gate: expected OWNER/REPO, got {args.repository!r}", file=sys.stderr)
        return 2
    settings = options.load_settings()
    if settings.github is None:
        raise ConfigError(
            "doctor reads the repository through the GitHub App: set GATE_GITHUB_APP_ID and its key"
        )
    report = diagnose(GitHubClient(settings.github), args.repository, app_id=settings.github.app_id)
    print("\n".join(report.lines()))
    return 1 if report.open else 0
