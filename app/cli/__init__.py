"""The ``agent-gate`` command: :func:`main`, and its parser built from a module per command group.

Each group's module adds its commands with ``register(subparsers)``; the options several groups
share (``--database``, ``--policy``, ``--format``, ``--since``, ``--output``) are written once in
:mod:`app.cli.options`. Command bodies import what they use lazily, to keep the command light.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import app.cli.options as options
from app.cli import (
    attest,
    audit,
    breakglass,
    db,
    dev,
    doctor,
    explain,
    freeze,
    inventory,
    keys,
    policy,
    protect,
    queue,
    serve,
    sessions,
)
from app.errors import GateError

EPILOG = "Documentation: README.md and docs/ (configuration, policy, API, GitHub App, governance, security)."


# The exit status of a command whose reader went away (`agent-gate audit export | head -1`): the
# shell's for a process ended by SIGPIPE, 128 + 13.
EXIT_CLOSED_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return result
    except BrokenPipeError:
        # The reader has all it wanted. Point stdout at /dev/null so the interpreter's last flush of
        # what is still buffered cannot fail again (and print "Exception ignored" on the way out).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_CLOSED_PIPE
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
    parser = options.Parser(
        prog="agent-gate",
        description="Governed, attributable, least-privilege actions for AI coding agents in GitHub Actions.",
        epilog=EPILOG,
    )
    from app.settings import gate_version

    parser.add_argument("--version", action="version", version=f"agent-gate {gate_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    # In the order `agent-gate --help` lists them.
    for group in (
        serve,
        policy,
        explain,
        audit,
        attest,
        keys,
        doctor,
        protect,
        db,
        dev,
        inventory,
        breakglass,
        queue,
        freeze,
        sessions,
    ):
        group.register(sub)
    return parser
