"""What several ``agent-gate`` commands share: a command group, the ``--database``, ``--policy``,
``--format``, ``--since`` and ``--output`` options, each written once, and how their values are
resolved (the store that must already exist, the policy path, an ISO-8601 time, the GATE_* settings).

Nothing heavy is imported here at module level: every command pays for this module.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.base import Store

# What ``add_subparsers()`` returns; argparse's own type for it is private.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXAMPLE_POLICIES = Path(__file__).resolve().parents[1] / "data" / "policies"


# argparse's message for a word that is none of a command's or an option's choices.
_INVALID_CHOICE = re.compile(
    r"argument (?P<arg>\S+): invalid choice: '(?P<word>[^']*)' \(choose from (?P<choices>.*)\)$"
)


class Parser(argparse.ArgumentParser):
    """The ``agent-gate`` parser and, by inheritance, every command's: a mistyped command or choice is
    answered with the closest valid one (``did you mean 'verify'?``)."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.match(message)
        if match is not None:
            listed = match["choices"]  # 'a', 'b' up to Python 3.12.7; a, b after
            choices = re.findall(r"'([^']*)'", listed) if listed.startswith("'") else listed.split(", ")
            close = difflib.get_close_matches(match["word"], choices, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if match["arg"] in ("COMMAND", "{" + ",".join(choices) + "}"):
                message = f"no command {match['word']!r}{hint} (commands: {', '.join(choices)})"
            else:
                message = (
                    f"argument {match['arg']}: {match['word']!r} is not one of {', '.join(choices)}{hint}"
                )
        super().error(message)


def add_group(
    sub: Subparsers, name: str, *, help: str, description: str | None = None, metavar: str | None = "COMMAND"
) -> Subparsers:
    """A command group (``agent-gate NAME COMMAND``); its commands are added to what it returns.

    The group alone (``agent-gate audit``) prints its help, which lists every one of its commands,
    and exits 2 like a command line argparse refuses."""
    group = sub.add_parser(name, help=help, description=description)

    def show_help(_: argparse.Namespace) -> int:
        group.print_help()
        return 2

    group.set_defaults(func=show_help)
    return group.add_subparsers(title=f"{name} commands", metavar=metavar)


def add_database(parser: argparse.ArgumentParser) -> None:
    """``--database``: the store a command reads (see :func:`existing_store`)."""
    parser.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")


def add_policy(parser: argparse.ArgumentParser) -> None:
    """``--policy``: the policies a command reads (see :func:`policy_path`)."""
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file or directory (default: GATE_POLICY_PATH or ./policies)",
    )


def add_format(parser: argparse.ArgumentParser, default: str, *others: str) -> None:
    """``--format``: ``default`` or one of ``others``."""
    parser.add_argument("--format", choices=[default, *others], default=default)


def add_since(parser: argparse.ArgumentParser, what: str) -> None:
    """``--since TIME``: only ``what`` at or after it (a :func:`parse_time`)."""
    parser.add_argument("--since", type=parse_time, help=f"only {what} at or after this ISO-8601 time")


def add_output(parser: argparse.ArgumentParser) -> None:
    """``--output`` / ``-o``: a file to write instead of standard output."""
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")


def parse_time(value: str) -> datetime:
    """An ISO-8601 time; one without a zone is UTC. Raises ``ArgumentTypeError`` with an example."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2026-11-23T10:00:00Z, got {value!r}"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_settings(**overrides: Any) -> Settings:
    """The gate's settings from GATE_* variables (what ``serve`` would run with)."""
    from app.settings import Settings

    return Settings.from_env(**overrides)


def policy_path(explicit: Path | None) -> Path:
    """The policy path to use offline or in dev mode: --policy, GATE_POLICY_PATH, ./policies, or else the
    example policy shipped inside the package (so `pip install` outside a checkout still works)."""
    if explicit is not None:
        return explicit
    configured = os.environ.get("GATE_POLICY_PATH", "").strip()
    if configured:
        return Path(configured)
    if Path("policies").exists():
        return Path("policies")
    print(
        f"agent-gate: no ./policies here and GATE_POLICY_PATH is unset; using the example policy "
        f"shipped with the package ({EXAMPLE_POLICIES / 'example.yml'})",
        file=sys.stderr,
    )
    return EXAMPLE_POLICIES


def existing_store(database: str | None) -> Store:
    """The store named by ``--database`` (else GATE_DATABASE); raises ``GateError`` (``no-store``)
    rather than create one where none is."""
    from app.store.opener import open_existing_store  # never creates a store where none is

    return open_existing_store(database or load_settings().database_url, given=database is not None)
