"""The ``agent-gate`` command: serve, policy check, explain, audit verify/export, doctor, dev token."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app import cli_governance
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

    serve = sub.add_parser(
        "serve",
        help="run the gate under gunicorn",
        description=(
            "Run the gate under gunicorn with the app factory. Configuration comes from GATE_* variables "
            "(docs/configuration.md). --dev starts on embedded defaults: SQLite in ./var, the policies in "
            "./policies and a local dev issuer whose tokens `agent-gate dev token` mints."
        ),
    )
    serve.add_argument("--dev", action="store_true", help="development mode: trust the local dev issuer")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: CPU count)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run the webhook queue's workers in a process of their own",
        description=(
            "Run the durable webhook queue (merge checks, deployment protection rules) without serving HTTP. "
            "`agent-gate serve` already runs GATE_QUEUE_THREADS queue threads in each worker; run this "
            "instead (with GATE_QUEUE_THREADS=0 on the servers) to scale the queue apart. Several workers and "
            "replicas share the queue safely (leases)."
        ),
    )
    worker.add_argument("--threads", type=int, default=2, help="queue threads (default 2)")
    worker.add_argument(
        "--drain", action="store_true", help="run the jobs that are due now, then exit (for cron or a test)"
    )
    worker.set_defaults(func=cmd_worker)

    policy = sub.add_parser("policy", help="validate policies", description="Work with org policy files.")
    psub = policy.add_subparsers(title="policy commands", metavar="COMMAND")
    check = psub.add_parser(
        "check",
        help="validate policy files and warn on dangerous patterns",
        description="Validate policy files (or directories of them). Exit 0 when valid (warnings allowed), "
        "1 on errors, 2 when a path is missing.",
    )
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.set_defaults(func=cmd_policy_check)
    schema = psub.add_parser("schema", help="print the policy JSON Schema (policies/schema.json)")
    schema.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")
    schema.set_defaults(func=cmd_policy_schema)

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
    explain.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file or directory (default: GATE_POLICY_PATH or ./policies)",
    )
    explain.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    explain.set_defaults(func=cmd_explain)

    audit = sub.add_parser("audit", help="verify or export the tamper-evident audit log")
    asub = audit.add_subparsers(title="audit commands", metavar="COMMAND")
    verify = asub.add_parser(
        "verify",
        help="recompute the hash chain; name the first broken record",
        description="Recompute the audit hash chain of the store (or of an export with --file) and name the first "
        "broken record. --anchor SEQ:HASH, a head you recorded earlier, also detects a truncated tail.",
    )
    verify.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    verify.add_argument("--file", type=Path, help="verify a JSON-lines export instead of the store")
    verify.add_argument(
        "--anchor", metavar="SEQ:HASH", help="a head recorded earlier that must still be in the chain"
    )
    verify.set_defaults(func=cmd_audit_verify)
    export = asub.add_parser("export", help="write the audit log as JSON lines")
    export.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    export.add_argument("--since", type=_parse_time, help="only records at or after this ISO-8601 time")
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")
    export.set_defaults(func=cmd_audit_export)

    keys = sub.add_parser("keys", help="manage the gate's grant-signing keys")
    ksub = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    rotate = ksub.add_parser(
        "rotate",
        help="add a new grant-signing key",
        description="Add a new ES256 grant-signing key. New grants are signed with it; the old public key stays "
        "published at /.well-known/jwks.json until the last grant it signed expires.",
    )
    rotate.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    rotate.set_defaults(func=cmd_keys_rotate)

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

    db = sub.add_parser("db", help="manage the store's schema").add_subparsers(title="db commands")
    upgrade = db.add_parser(
        "upgrade", help="create or upgrade the schema (serve does it too); refuse a newer one"
    )
    upgrade.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    upgrade.set_defaults(func=cmd_db_upgrade)

    dev = sub.add_parser("dev", help="development helpers")
    dsub = dev.add_subparsers(title="dev commands", metavar="COMMAND")
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
    cli_governance.register(sub, asub, _open_store, _policy_path, _parse_time, _settings)
    return parser


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2026-11-23T10:00:00Z, got {value!r}"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _settings(**overrides: Any) -> Any:
    from app.settings import Settings

    return Settings.from_env(**overrides)


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.github.client import GitHubClient
    from app.github.doctor import diagnose

    if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", args.repository):
        print(f"agent-gate: expected OWNER/REPO, got {args.repository!r}", file=sys.stderr)
        return 2
    settings = _settings()
    if settings.github is None:
        raise ConfigError(
            "doctor reads the repository through the GitHub App: set GATE_GITHUB_APP_ID and its key"
        )
    report = diagnose(GitHubClient(settings.github), args.repository, app_id=settings.github.app_id)
    print("\n".join(report.lines()))
    return 1 if report.open else 0


EXAMPLE_POLICIES = Path(__file__).resolve().parents[1] / "data" / "policies"


def _policy_path(explicit: Path | None) -> Path:
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


def cmd_serve(args: argparse.Namespace) -> int:
    from app.server import run_gunicorn

    if args.dev:
        os.environ["GATE_DEV_MODE"] = "true"
        os.environ.setdefault("GATE_PUBLIC_URL", f"http://{args.host}:{args.port}")
        # Only dev mode may fall back to the shipped example; production names its policy explicitly.
        os.environ["GATE_POLICY_PATH"] = str(_policy_path(None))
    settings = _settings()
    if settings.dev_mode:
        from app.tokens.devissuer import DevIssuer

        DevIssuer(settings.data_dir).ensure_key()
        print(_dev_banner(args.host, args.port), file=sys.stderr)
    return run_gunicorn(settings, host=args.host, port=args.port, workers=args.workers)


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from app import create_app

    if not 1 <= args.threads <= 64:
        raise ConfigError(f"--threads: got {args.threads}, expected 1 to 64")
    app = create_app(_settings())
    queue = app.extensions["agent_gate_queue"]
    if args.drain:
        print(f"ran {queue.drain()} job(s)")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    queue.start(args.threads)
    print(f"agent-gate worker: {args.threads} queue thread(s) running; SIGTERM stops them", file=sys.stderr)
    stop.wait()
    queue.stop()
    return 0


def _dev_banner(host: str, port: int) -> str:
    url = f"http://{host}:{port}"
    return f"""
agent-gate is starting in DEVELOPMENT MODE on {url}
  It trusts the local dev issuer (key in ./var): never use --dev in production.
  Try it from another terminal:
    TOKEN=$(.venv/bin/agent-gate dev token --agent)
    curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{{"action": "read"}}' {url}/v1/decisions          # 200: agents may read
    TOKEN=$(.venv/bin/agent-gate dev token --agent)
    curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{{"action": "deploy", "environment": "production"}}' {url}/v1/decisions   # 403, with reasons
"""


def cmd_policy_check(args: argparse.Namespace) -> int:
    from app.policy.check import check_paths

    return check_paths(args.paths, sys.stdout)


def cmd_policy_schema(args: argparse.Namespace) -> int:
    from app.policy.check import policy_json_schema

    text = json.dumps(policy_json_schema(), indent=2) + "\n"
    if args.output:
        args.output.write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise GateError(f"cannot read the {what} file {path}: {exc.strerror}", code="bad-input") from exc
    except ValueError as exc:
        raise GateError(f"the {what} file {path} is not valid JSON: {exc}", code="bad-input") from exc


def cmd_explain(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.decide.decision import DecisionRequest
    from app.decide.engine import decide
    from app.decide.explain import render
    from app.evidence.model import Evidence
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
            else Evidence.none("no evidence file was given", remedy=cli_governance.OFFLINE_REMEDY)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GateError(f"invalid input: {problems}", code="bad-input") from exc
    policy_path = _policy_path(args.policy)
    decision = decide(
        identity,
        request,
        load_policies(policy_path),
        evidence,
        decision_id="explain",
        now=datetime.now(UTC),
    )
    sys.stdout.write(render(decision, args.format))
    return 0 if decision.allowed else 3


def _open_store(database: str | None) -> Any:
    from app.store.existing import open_existing_store  # never creates a store where none is

    return open_existing_store(database or _settings().database_url, given=database is not None)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.store.audit import parse_anchor, verify_chain, verify_jsonl

    try:
        anchor = parse_anchor(args.anchor) if args.anchor else None
    except ValueError as exc:
        raise GateError(f"--anchor: {exc}", code="bad-input") from exc
    if args.file:
        try:
            with args.file.open(encoding="utf-8") as lines:
                report = verify_jsonl(lines, anchor=anchor)
        except OSError as exc:
            raise GateError(f"cannot read {args.file}: {exc.strerror}", code="bad-input") from exc
    else:
        report = verify_chain(_open_store(args.database), anchor=anchor)
    if report.ok:
        head = f"head {report.head[0]}:{report.head[1]}" if report.head else "empty"
        print(f"ok: {report.records} records, chain intact, {head}")
        return 0
    print(f"BROKEN: {report.problem}", file=sys.stderr)
    return 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    from app.store.audit import export_jsonl

    store = _open_store(args.database)
    out: TextIO
    if args.output:
        with args.output.open("w", encoding="utf-8") as out:
            count = export_jsonl(store, out, args.since)
    else:
        count = export_jsonl(store, sys.stdout, args.since)
    print(f"exported {count} records", file=sys.stderr)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from app.store.opener import upgrade_store

    print(upgrade_store(args.database or _settings().database_url))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from app.credentials.grants import SigningKeys

    kid = SigningKeys(_open_store(args.database)).rotate()
    print(f"new grant-signing key {kid}; the previous key stays published until its grants expire")
    return 0


def cmd_dev_token(args: argparse.Namespace) -> int:
    from app.tokens.devissuer import AGENT_PRESET, DevIssuer

    settings = _settings()
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
