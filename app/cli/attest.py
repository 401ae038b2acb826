"""``agent-gate attest verify``: check a decision attestation offline before acting on a commit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    asub = options.add_group(sub, "attest", help="verify signed decision attestations")
    verify = asub.add_parser(
        "verify",
        help="verify that the gate allowed an action on a commit",
        description="Verify a decision attestation (a DSSE envelope from GET /v1/decisions/{id}/attestation, "
        "or the action's 'attestation' output) against the gate's key set, offline. Exits 0 only when it is "
        "signed by a key of the set and shows an allowed decision of the action on the commit; 1 otherwise, "
        "saying which check failed (docs/attestations.md).",
    )
    verify.add_argument("envelope", metavar="ENVELOPE", help="the envelope's file, or - for standard input")
    verify.add_argument("--commit", required=True, metavar="SHA", help="the full commit sha about to be used")
    verify.add_argument("--action", default="deploy", help="the action it must allow (default: deploy)")
    verify.add_argument("--repository", metavar="OWNER/REPO", help="the repository it must be about")
    verify.add_argument(
        "--jwks",
        metavar="URL|FILE",
        help="the gate's key set: https://GATE/.well-known/jwks.json or a saved copy (default: the keys "
        "of the local gate's --database)",
    )
    verify.add_argument(
        "--accept-break-glass",
        action="store_true",
        help="also accept a decision allowed only by a break-glass override (refused by default)",
    )
    options.add_database(verify)
    verify.set_defaults(func=cmd_attest_verify)


def cmd_attest_verify(args: argparse.Namespace) -> int:
    from app.credentials.attestation_verify import AttestationRefused, Expected, load_jwks, verify
    from app.credentials.keys import AttestationKeys

    try:
        raw = sys.stdin.buffer.read() if args.envelope == "-" else Path(args.envelope).read_bytes()
    except OSError as exc:
        print(f"agent-gate: refused: cannot read {args.envelope} ({exc.strerror})", file=sys.stderr)
        return 1
    expected = Expected(
        commit=args.commit,
        action=args.action,
        repository=args.repository,
        accept_break_glass=args.accept_break_glass,
    )
    try:
        if args.jwks:
            jwks = load_jwks(args.jwks)
        else:
            jwks = AttestationKeys(options.existing_store(args.database)).jwks()
        verified = verify(raw, jwks, expected)
    except AttestationRefused as exc:
        print(f"agent-gate: refused ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    p = verified.predicate
    print(
        f"ok: decision {p.get('decisionId')} {p.get('verdict')} {p.get('action')} on "
        f"{verified.repository}@{verified.commit} (rule {p.get('rule')}, audit record "
        f"#{(p.get('audit') or {}).get('seq')}), signed by {verified.keyid}"
    )
    return 0
