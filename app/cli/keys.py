"""``agent-gate keys rotate``: a new grant-signing key, the old one still published."""

from __future__ import annotations

import argparse
import json

import app.cli.options as options


def register(sub: options.Subparsers) -> None:
    ksub = options.add_group(sub, "keys", help="manage the gate's grant-signing keys")
    rotate = ksub.add_parser(
        "rotate",
        help="add a new grant-signing key",
        description="Add a new ES256 grant-signing key. New grants are signed with it; the old public key stays "
        "published at /.well-known/jwks.json until the last grant it signed expires.",
    )
    rotate.add_argument(
        "--attestation",
        action="store_true",
        help="rotate the key that signs decision attestations instead; the old one stays published",
    )
    options.add_database(rotate)
    options.add_format(rotate, "text", "json")
    rotate.set_defaults(func=cmd_keys_rotate)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from app.credentials.keys import AttestationKeys, SigningKeys

    store = options.existing_store(args.database)
    attestation = bool(args.attestation)
    kid = (AttestationKeys(store) if attestation else SigningKeys(store)).rotate()
    if args.format == "json":
        print(json.dumps({"kid": kid, "purpose": "attestation" if attestation else "grant"}))
    elif attestation:
        print(
            f"new attestation-signing key {kid}; the previous ones stay published (attestations outlive them)"
        )
    else:
        print(f"new grant-signing key {kid}; the previous key stays published until its grants expire")
    return 0
