"""The governance commands of ``agent-gate``: ``inventory`` and ``audit report``.

Registered from :mod:`app.cli` (``register``), which hands over how it opens the store and finds
the policies, so both commands read exactly what the other commands read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.errors import GateError

OpenStore = Callable[[str | None], Any]
PolicyPath = Callable[[Path | None], Path]

# argparse's private type for subparsers; spelled out here once.
Subparsers = Any


# The remedy of an offline explain whose decision needed approvals it was not given.
OFFLINE_REMEDY = (
    "pass the approvals and provenance as --evidence FILE (docs/api.md#evidence), or simulate against "
    "GitHub with --repo OWNER/REPO --pr N (or --run ID)"
)


def register(
    sub: Subparsers,
    audit: Subparsers,
    open_store: OpenStore,
    policy_path: PolicyPath,
    parse_time: Any,
    settings: Callable[[], Any],
) -> None:
    """Add ``inventory`` to the top-level commands and ``report`` to ``audit``'s."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)"
        )
        parser.add_argument(
            "--policy", type=Path, help="policy file or directory (default: GATE_POLICY_PATH or ./policies)"
        )
        parser.add_argument("--format", choices=["table", "json", "csv"], default="table")

    inventory = sub.add_parser(
        "inventory",
        help="list the workload and agent identities the gate has seen, with owners",
        description=(
            "List every workload (repository, workflow and ref, environment) and AI agent account the gate "
            "has decided for, from the audit log: first and last seen, decisions asked, allowed, denied and "
            "would-deny (audit mode), grants held, owners (from the policy). Identities a policy names that "
            "never asked are listed as never-seen; identities no rule names are flagged unnamed."
        ),
    )
    common(inventory)
    inventory.add_argument("--unowned", action="store_true", help="only identities nobody owns")
    inventory.add_argument(
        "--stale",
        type=int,
        metavar="DAYS",
        help="only identities not seen for DAYS days (offboarding candidates)",
    )
    inventory.add_argument("--agents", action="store_true", help="only AI agent accounts")
    inventory.add_argument("--repository", metavar="OWNER/REPO", help="only identities of this repository")
    inventory.set_defaults(func=lambda args: cmd_inventory(args, open_store, policy_path))

    glass = sub.add_parser("break-glass", help="review emergency overrides")
    gsub = glass.add_subparsers(title="break-glass commands", metavar="COMMAND")
    listing = gsub.add_parser(
        "list",
        help="every break-glass, who invoked and confirmed it, why, and the decisions it allowed",
        description="List break-glass overrides for review: repository, action, who invoked and who "
        "confirmed it, the justification, its window and the decisions it allowed (POST /v1/break-glass; "
        "docs/governance.md#break-glass).",
    )
    listing.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    listing.add_argument("--since", type=parse_time, help="only those invoked at or after this ISO-8601 time")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(func=lambda args: cmd_break_glass_list(args, open_store))

    explain = sub.choices["explain"]
    offline = explain.get_default("func")
    explain.add_argument(
        "--repo", metavar="OWNER/REPO", help="live: the repository, read through the GitHub App"
    )
    explain.add_argument("--pr", type=int, metavar="N", help="live: the pull request to decide (e.g. merge)")
    explain.add_argument(
        "--run", type=int, metavar="ID", help="live: the workflow run to decide (e.g. deploy)"
    )

    def explain_either(args: argparse.Namespace) -> int:
        if args.repo:
            return cmd_explain_live(args, policy_path, settings)
        if args.claims is None:
            raise GateError("explain needs --claims FILE (offline), or --repo OWNER/REPO with --pr or --run")
        result: int = offline(args)
        return result

    explain.set_defaults(func=explain_either)

    show = audit.add_parser(
        "show",
        help="one decision's whole record, and whether it matches its audit entry",
        description="Who approved and why each approval counted, the rule and policy digest, the action and "
        "what its grants were used for (delegations, revocations), any break-glass, and whether the saved "
        "record matches its entry in the audit chain.",
    )
    show.add_argument("decision_id", metavar="DECISION_ID")
    show.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    show.add_argument("--format", choices=["text", "json"], default="text")
    show.set_defaults(func=lambda args: cmd_audit_show(args, open_store))

    report = audit.add_parser(
        "report",
        help="what rules in audit mode would have denied, by rule and repository",
        description="Summarise the decisions answered as allows marked would_deny (mode: audit), by rule and "
        "repository, with their most common reasons: the evidence for switching a rule to mode: enforce.",
    )
    report.add_argument("--database", help="store URL or path (default: GATE_DATABASE or var/agent-gate.db)")
    report.add_argument("--since", type=parse_time, help="only decisions at or after this ISO-8601 time")
    report.add_argument("--format", choices=["text", "json"], default="text")
    report.set_defaults(func=lambda args: cmd_audit_report(args, open_store))


def _load_policies(path: Path) -> Any:
    from app.policy.loader import load_policies

    return load_policies(path)


def cmd_inventory(args: argparse.Namespace, open_store: OpenStore, policy_path: PolicyPath) -> int:
    from app.governance.inventory import Filters, build_inventory, render_csv, render_table
    from app.governance.records import read

    if args.stale is not None and args.stale < 0:
        raise GateError(f"--stale: got {args.stale}, expected a number of days, 0 or more", code="bad-input")
    now = datetime.now(UTC)
    decisions, ledger = read(open_store(args.database).iter_audit())
    policies = _load_policies(policy_path(args.policy))
    rows = build_inventory(
        decisions, ledger, policies, now=now, stale_days=args.stale if args.stale is not None else 90
    )
    filters = Filters(
        unowned=args.unowned, stale_days=args.stale, agents=args.agents, repository=args.repository
    )
    rows = [r for r in rows if filters.keep(r)]
    if args.format == "json":
        sys.stdout.write(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(render_csv(rows))
    else:
        sys.stdout.write(render_table(rows))
    return 0


def cmd_audit_report(args: argparse.Namespace, open_store: OpenStore) -> int:
    from app.governance.records import decisions_only
    from app.governance.report import audit_mode_report

    report = audit_mode_report(decisions_only(open_store(args.database).iter_audit(args.since)), args.since)
    if args.format == "json":
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        sys.stdout.write(report.text())
    return 0


def cmd_break_glass_list(args: argparse.Namespace, open_store: OpenStore) -> int:
    since = int(args.since.timestamp()) if args.since else None
    records = open_store(args.database).find_break_glass(since=since)
    if args.format == "json":
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return 0
    for r in records:
        start = datetime.fromtimestamp(r["created_at"], UTC).isoformat(timespec="minutes")
        end = datetime.fromtimestamp(r["expires_at"], UTC).isoformat(timespec="minutes")
        confirmer = f", confirmed by @{r['confirmer']}" if r.get("confirmer") else ""
        print(f"{r['id']} {r['state']} {r['action']} on {r['repository']} {start}..{end}")
        print(f"  invoked by @{r['invoker']}{confirmer}: {r['justification']}")
        print(f"  allowed {len(r.get('uses') or [])} decision(s): {' '.join(r.get('uses') or []) or '-'}")
    print(f"{len(records)} break-glass record(s)")
    return 0


def cmd_explain_live(args: argparse.Namespace, policy_path: PolicyPath, settings: Callable[[], Any]) -> int:
    """``explain --repo``: gather through the App, decide, print; nothing recorded, nothing minted."""
    import time

    from app.decide.explain import render
    from app.errors import ConfigError
    from app.events.simulate import simulate
    from app.github.client import GitHubClient

    if args.claims is not None or args.evidence is not None:
        raise GateError("--repo simulates live from GitHub's facts: leave out --claims and --evidence")
    github = settings().github
    if github is None:
        raise ConfigError(
            "explain --repo reads the pull request or run through the GitHub App: set GATE_GITHUB_APP_ID and "
            "its key, or explain offline with --claims FILE --evidence FILE"
        )
    decision = simulate(
        GitHubClient(github),
        _load_policies(policy_path(args.policy)),
        repository=args.repo,
        action=args.action,
        pull_request=args.pr,
        run_id=args.run,
        environment=args.environment,
        clock=time.time,
    )
    sys.stdout.write(render(decision, args.format))
    return 0 if decision.allowed else 3


def cmd_audit_show(args: argparse.Namespace, open_store: OpenStore) -> int:
    """Exit 0 when the record matches its audit entry, 1 when it does not or there is no such decision."""
    from app.governance.record import decision_record

    record = decision_record(open_store(args.database), args.decision_id)
    if record is None:
        raise GateError(f"no decision {args.decision_id} in the store", code="not-found")
    if args.format == "json":
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return 0 if record["integrity"]["matches"] else 1
    d = record["decision"]
    subject = d.get("subject") or {}
    verdict = (
        "would deny (audit mode)" if d.get("would_deny") else ("allowed" if d.get("allowed") else "denied")
    )
    print(f"{d['decision_id']}: {d.get('action')} {verdict}, {d.get('decided_at')}")
    print(f"  what: {d.get('action')} on {subject.get('repository')} at {str(subject.get('sha'))[:12]}"
          f" by @{subject.get('actor')}{' (agent-driven)' if subject.get('agent') else ''}")  # fmt: skip
    print(f"  why: rule {d.get('rule') or '(none)'}, policy {d.get('policy_digest')}")
    for reason in d.get("reasons") or []:
        print(f"    {'ok ' if reason.get('ok') else 'NO '} {reason.get('code')}: {reason.get('message')}")
    print("  who approved:" + ("" if d.get("approvals") else " nobody"))
    for a in d.get("approvals") or []:
        print(f"    @{a.get('login')} ({a.get('source')}, {a.get('state')}): "
              f"{'counted' if a.get('counted') else 'not counted'}: {a.get('why')}")  # fmt: skip
    print("  grants:" + ("" if record["grants"] else " none issued"))
    for g in record["grants"]:
        via = f", delegated from {g['delegated_from']}" if g["delegated_from"] else ""
        end = f"revoked {g['revoked']['at']}: {g['revoked']['reason']}" if g["revoked"] else "not revoked"
        print(f"    {g['jti']} for {g['audience']}{via}; {end}")
    for bg in record["break_glass"]:
        print(f"  break-glass {bg['id']} by @{bg['invoker']}: {bg['justification']}")
    integrity = record["integrity"]
    print(f"  record: {'ok' if integrity['matches'] else 'MISMATCH'}: {integrity['why']}")
    return 0 if integrity["matches"] else 1
