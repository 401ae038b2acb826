"""``agent-gate audit``: verify and export the tamper-evident audit log, show one decision's whole
record, and report what rules in audit mode would have denied."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

import app.cli.options as options
from app.errors import GateError


def register(sub: options.Subparsers) -> None:
    asub = options.add_group(sub, "audit", help="verify or export the tamper-evident audit log")
    verify = asub.add_parser(
        "verify",
        help="recompute the hash chain; name the first broken record",
        description="Recompute the audit hash chain of the store (or of an export with --file) and name the first "
        "broken record. --anchor SEQ:HASH, a head you recorded earlier, also detects a truncated tail.",
    )
    options.add_database(verify)
    verify.add_argument("--file", type=Path, help="verify a JSON-lines export instead of the store")
    verify.add_argument(
        "--anchor", metavar="SEQ:HASH", help="a head recorded earlier that must still be in the chain"
    )
    options.add_format(verify, "text", "json")
    verify.set_defaults(func=cmd_audit_verify)

    export = asub.add_parser(
        "export",
        help="write the audit log as JSON lines (the chain, or OCSF events for a SIEM)",
        description="Write the audit records as JSON lines: --format jsonl (default) the chain itself, which "
        "'audit verify --file' re-verifies; --format ocsf one OCSF 1.8.0 event per record (API Activity, "
        "Authorize Session, Entity Management; docs/audit.md), each naming its record's sequence and hash.",
    )
    options.add_database(export)
    options.add_since(export, "records")
    options.add_output(export)
    options.add_format(export, "jsonl", "ocsf")
    export.set_defaults(func=cmd_audit_export)

    show = asub.add_parser(
        "show",
        help="one decision's whole record, and whether it matches its audit entry",
        description="Who approved and why each approval counted, the rule and policy digest, the action and "
        "what its grants were used for (delegations, revocations), any break-glass, and whether the saved "
        "record matches its entry in the audit chain.",
    )
    show.add_argument("decision_id", metavar="DECISION_ID")
    options.add_database(show)
    options.add_format(show, "text", "json")
    show.set_defaults(func=cmd_audit_show)

    report = asub.add_parser(
        "report",
        help="what rules in audit mode would have denied, and how each reviewer reviews",
        description="Summarise the decisions answered as allows marked would_deny (mode: audit), by rule and "
        "repository, with their most common reasons: the evidence for switching a rule to mode: enforce. Then "
        "each reviewer's reviews and approvals, approval rate, and median and fastest time from the approved "
        "commit to the approval (review-quality signals: a rubber-stamping reviewer shows).",
    )
    options.add_database(report)
    options.add_since(report, "decisions")
    options.add_format(report, "text", "json")
    report.add_argument(
        "--flag-rate", type=_fraction, default=0.9, metavar="FRACTION",
        help="flag a reviewer who approved at least this share of their reviews (default 0.9) ...",
    )  # fmt: skip
    report.add_argument(
        "--flag-seconds", type=_positive, default=300, metavar="SECONDS",
        help="... with a median time from the commit to the approval under this (default 300) ...",
    )  # fmt: skip
    report.add_argument(
        "--flag-min-reviews", type=_positive, default=5, metavar="N",
        help="... over at least this many reviews (default 5)",
    )  # fmt: skip
    report.set_defaults(func=cmd_audit_report)


def _fraction(value: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not 0.0 <= parsed <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (e.g. 0.9), got {value!r}")
    return parsed


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


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
        report = verify_chain(options.existing_store(args.database), anchor=anchor)
    if args.format == "json":
        answer = {
            "ok": report.ok,
            "records": report.records,
            "head": {"seq": report.head[0], "hash": report.head[1]} if report.head else None,
            "first_bad_seq": report.first_bad_seq,
            "problem": report.problem,
        }
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
        return 0 if report.ok else 1
    if report.ok:
        head = f"head {report.head[0]}:{report.head[1]}" if report.head else "empty"
        print(f"ok: {report.records} records, chain intact, {head}")
        return 0
    print(f"BROKEN: {report.problem}", file=sys.stderr)
    return 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    from app.governance.ocsf import export_ocsf
    from app.settings import gate_version
    from app.store.audit import export_jsonl

    store = options.existing_store(args.database)

    def write(out: TextIO) -> int:
        if args.format == "ocsf":
            return export_ocsf(store.iter_audit(args.since), out, product_version=gate_version())
        return export_jsonl(store, out, args.since)

    out: TextIO
    if args.output:
        with args.output.open("w", encoding="utf-8") as out:
            count = write(out)
    else:
        count = write(sys.stdout)
    print(f"exported {count} records", file=sys.stderr)
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    """Exit 0 when the record matches its audit entry, 1 when it does not or there is no such decision."""
    from app.governance.decision_record import decision_record

    record = decision_record(options.existing_store(args.database), args.decision_id)
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


def cmd_audit_report(args: argparse.Namespace) -> int:
    from app.governance.history import decisions_only
    from app.governance.report import audit_mode_report
    from app.governance.review_quality import ReviewQuality, Thresholds

    store = options.existing_store(args.database)
    limits = Thresholds(rate=args.flag_rate, seconds=args.flag_seconds, min_reviews=args.flag_min_reviews)
    quality = ReviewQuality(limits)  # fed by the same pass over the chain as the audit-mode report
    report = audit_mode_report(quality.watch(decisions_only(store.iter_audit(args.since))), args.since)
    if args.format == "json":
        sys.stdout.write(json.dumps({**report.as_json(), "reviewers": quality.as_json()}, indent=2) + "\n")
    else:
        sys.stdout.write(report.text() + quality.text())
    return 0
