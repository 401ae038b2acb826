"""``agent-gate dev token``: a GitHub-shaped OIDC token from the local dev issuer (``serve --dev`` only)."""

from __future__ import annotations

import argparse
from typing import Any

import app.cli.options as options
from app.errors import GateError


def register(sub: options.Subparsers) -> None:
    dsub = options.add_group(sub, "dev", help="development helpers")
    token = dsub.add_parser(
        "token",
        help="mint a GitHub-shaped OIDC token from the local dev issuer",
        description=(
            "Mint a token from the dev issuer (key in the data dir). Only a gate started with `serve --dev` "
            "trusts it. Defaults describe a human (octocat) on octo-org/octo-repo, matching policies/example.yml."
        ),
    )
    token.add_argument("--agent", action="store_true", help="act as the Copilot coding agent (actor Copilot)")
    token.add_argument("--actor", help="actor login")
    token.add_argument("--actor-id", help="actor numeric id")
    token.add_argument("--repository", help="owner/name")
    token.add_argument("--repository-id", help="repository numeric id")
    token.add_argument("--owner-id", help="repository_owner_id")
    token.add_argument("--ref", help="e.g. refs/heads/main")
    token.add_argument("--sha", help="commit sha")
    token.add_argument("--event", help="event_name, e.g. push")
    token.add_argument("--environment", help="environment claim")
    token.add_argument("--workflow-ref", help="job_workflow_ref")
    token.add_argument("--runner-environment", choices=["github-hosted", "self-hosted"])
    token.add_argument("--run-id", help="run_id")
    token.add_argument("--audience", help="aud (default: GATE_AUDIENCE or agent-gate)")
    token.add_argument("--ttl", type=int, default=300, help="lifetime in seconds (default 300)")
    token.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE", help="set any claim")
    token.set_defaults(func=cmd_dev_token)


def cmd_dev_token(args: argparse.Namespace) -> int:
    from app.tokens.devissuer import AGENT_PRESET, DevIssuer

    settings = options.load_settings()
    issuer = DevIssuer(settings.data_dir)
    issuer.ensure_key()
    claims: dict[str, Any] = dict(AGENT_PRESET) if args.agent else {}
    for option, claim in (
        ("actor", "actor"),
        ("actor_id", "actor_id"),
        ("repository", "repository"),
        ("repository_id", "repository_id"),
        ("owner_id", "repository_owner_id"),
        ("ref", "ref"),
        ("sha", "sha"),
        ("event", "event_name"),
        ("environment", "environment"),
        ("workflow_ref", "job_workflow_ref"),
        ("runner_environment", "runner_environment"),
        ("run_id", "run_id"),
    ):
        value = getattr(args, option)
        if value is not None:
            claims[claim] = value
    for item in args.claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise GateError(f"--claim expects NAME=VALUE, got {item!r}", code="bad-input")
        claims[name] = value
    if "repository" in claims and "repository_owner" not in claims:
        claims["repository_owner"] = str(claims["repository"]).split("/")[0]
    print(issuer.mint(audience=args.audience or settings.audience, ttl=args.ttl, **claims))
    return 0
