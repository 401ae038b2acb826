"""``agent-gate explain``: the decision the gate would give, nothing recorded and nothing minted.

Offline (``--claims FILE``, with ``--evidence FILE`` for a what-if) it decides from files; live
(``--repo OWNER/REPO`` with ``--pr N`` or ``--run ID``) it gathers the evidence through the GitHub
App as the merge check or the deployment protection rule would. Exit 0 allowed, 3 denied.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import app.cli.options as options
from app.errors import GateError

# The remedy of an offline explain whose decision needed approvals it was not given.
OFFLINE_REMEDY = (
    "pass the approvals and provenance as --evidence FILE (docs/api.md#evidence), or simulate against "
    "GitHub with --repo OWNER/REPO --pr N (or --run ID)"
)


def register(sub: options.Subparsers) -> None:
    explain = sub.add_parser(
        "explain",
        help="decide offline from claims (and evidence) files, or live for a real PR or run",
        description=(
            "The decision the gate would give, from JSON files of token claims and evidence (offline), or for a "
            "real PR or run with its evidence read through the GitHub App (--repo). Nothing recorded or minted."
        ),
    )
    explain.add_argument("--claims", type=Path, help="JSON file with the OIDC token's claims (offline)")
    explain.add_argument("--action", required=True, help="the action to decide, e.g. deploy")
    explain.add_argument("--evidence", type=Path, help="JSON evidence file (docs/api.md#evidence)")
    explain.add_argument("--environment", help="the environment being deployed")
    explain.add_argument("--pull-request", type=int, help="the pull request number")
    explain.add_argument("--sha", help="the commit being acted on")
    options.add_policy(explain)
    options.add_format(explain, "text", "json", "markdown")
    explain.add_argument(
        "--repo", metavar="OWNER/REPO", help="live: the repository, read through the GitHub App"
    )
    explain.add_argument("--pr", type=int, metavar="N", help="live: the pull request to decide (e.g. merge)")
    explain.add_argument(
        "--run", type=int, metavar="ID", help="live: the workflow run to decide (e.g. deploy)"
    )
    explain.set_defaults(func=cmd_explain_either)


def cmd_explain_either(args: argparse.Namespace) -> int:
    if args.repo:
        return cmd_explain_live(args)
    if args.claims is None:
        raise GateError("explain needs --claims FILE (offline), or --repo OWNER/REPO with --pr or --run")
    return cmd_explain(args)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise GateError(f"cannot read the {what} file {path}: {exc.strerror}", code="bad-input") from exc
    except ValueError as exc:
        raise GateError(f"the {what} file {path} is not valid JSON: {exc}", code="bad-input") from exc


def cmd_explain(args: argparse.Namespace) -> int:
    """``explain --claims``: the decision pipeline with recording and minting off, on the given facts."""
    import time

    from pydantic import ValidationError

    from app.decide.decision import DecisionRequest
    from app.decide.explain import render
    from app.events.simulate import simulation
    from app.evidence.model import Evidence
    from app.evidence.offline import FixedEvidence
    from app.gate.question import Question
    from app.policy.loader import load_policies
    from app.tokens.identity import WorkloadIdentity

    claims = _read_json(args.claims, "claims")
    if not isinstance(claims, dict):
        raise GateError(f"the claims file {args.claims} must hold a JSON object", code="bad-input")
    identity = WorkloadIdentity.from_claims(claims)
    try:
        request = DecisionRequest(
            action=args.action, environment=args.environment, pull_request=args.pull_request, sha=args.sha
        )
        evidence = (
            Evidence.model_validate({"source": "file", **_read_json(args.evidence, "evidence")})
            if args.evidence
            else Evidence.none("no evidence file was given", remedy=OFFLINE_REMEDY)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GateError(f"invalid input: {problems}", code="bad-input") from exc
    pipeline = simulation(
        load_policies(options.policy_path(args.policy)),
        FixedEvidence(evidence),
        time.time,
        decision_id="explain",
    )
    decision = pipeline.decide(Question(identity, request, audit_kind="decision")).decision
    sys.stdout.write(render(decision, args.format))
    return 0 if decision.allowed else 3


def cmd_explain_live(args: argparse.Namespace) -> int:
    """``explain --repo``: gather through the App, decide, print; nothing recorded, nothing minted."""
    import time

    from app.decide.explain import render
    from app.errors import ConfigError
    from app.events.simulate import simulate
    from app.github.client import GitHubClient
    from app.policy.loader import load_policies

    if args.claims is not None or args.evidence is not None:
        raise GateError("--repo simulates live from GitHub's facts: leave out --claims and --evidence")
    github = options.load_settings().github
    if github is None:
        raise ConfigError(
            "explain --repo reads the pull request or run through the GitHub App: set GATE_GITHUB_APP_ID and "
            "its key, or explain offline with --claims FILE --evidence FILE"
        )
    decision = simulate(
        GitHubClient(github),
        load_policies(options.policy_path(args.policy)),
        repository=args.repo,
        action=args.action,
        pull_request=args.pr,
        run_id=args.run,
        environment=args.environment,
        clock=time.time,
    )
    sys.stdout.write(render(decision, args.format))
    return 0 if decision.allowed else 3
