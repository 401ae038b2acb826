"""Audit helpers behind ``agent-gate audit verify`` and ``agent-gate audit export``.

The CLI prints ``ok: N records, head <hash>`` for a sound chain, or the report's ``problem`` (which
names the first broken record) and exits 1. docs/audit.md explains the chain to auditors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from app.store.base import AuditRecord, ChainReport, Store
from app.store.canonical import GENESIS, ChainVerifier, utc_iso

_FIELDS = ("seq", "time", "kind", "payload", "prev_hash", "hash")


def verify_chain(store: Store, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the whole hash chain; the report names the first broken record.

    ``anchor`` = (seq, hash) of a head kept elsewhere earlier (see :func:`parse_anchor`): catches a
    log whose tail was truncated or re-hashed since, which a chain alone cannot show.
    """
    return store.verify_audit(anchor=anchor)


def export_jsonl(store: Store, out: TextIO, since: datetime | None = None) -> int:
    """Write records as JSON lines (seq, time, kind, payload, prev_hash, hash); returns how many.

    With ``since`` (timezone-aware), the export starts at the first record at or after it and runs
    to the end of the chain: a contiguous piece that re-verifies from its first line's prev_hash.
    Non-ASCII is escaped, so one record is one line for every reader (U+2028 included).
    """
    count = 0
    for record in store.iter_audit(since):
        out.write(json.dumps(record_to_json(record), sort_keys=True, ensure_ascii=True) + "\n")
        count += 1
    return count


def record_to_json(record: AuditRecord) -> dict[str, Any]:
    """A record as exported: the hashed fields as they were hashed, plus its hash."""
    return {
        "seq": record.seq,
        "time": utc_iso(record.time),
        "kind": record.kind,
        "payload": record.payload,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def verify_jsonl(lines: Iterable[str], *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Re-verify an export. It may start mid-chain (``--since``): it then starts from its first line's
    ``seq`` and ``prev_hash``. Blank lines are ignored; a line that is not a record breaks the chain.
    """
    verifier: ChainVerifier | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _parse_line(line)
        except ValueError as exc:
            seq = verifier.next_seq if verifier else 1
            return (verifier or ChainVerifier()).unreadable(
                seq, f"line {number} is not an audit record ({exc})"
            )
        if verifier is None:
            verifier = ChainVerifier(next_seq=record.seq, prev_hash=record.prev_hash, anchor=anchor)
            if record.seq == 1:
                verifier.prev_hash = GENESIS  # the start of the chain must link to genesis
        broken = verifier.check(record)
        if broken is not None:
            return broken
    return (verifier or ChainVerifier(anchor=anchor)).result()


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as ``audit verify`` prints a head) into (seq, hash). Raises ValueError."""
    seq, sep, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if (
        not sep
        or not seq.strip().isdigit()
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise ValueError(f"expected SEQ:HASH such as 1832:5b1f...(64 hex digits), got {text!r}")
    return int(seq), digest


def _parse_line(line: str) -> AuditRecord:
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(raw, dict) or set(raw) != set(_FIELDS):
        raise ValueError(f"expected the fields {', '.join(_FIELDS)}")
    if not isinstance(raw["payload"], dict) or not isinstance(raw["seq"], int):
        raise ValueError("seq must be a number and payload an object")
    try:
        when = datetime.fromisoformat(raw["time"])
    except (TypeError, ValueError) as exc:
        raise ValueError("its time is not an ISO-8601 time") from exc
    return AuditRecord(
        seq=raw["seq"],
        time=when,
        kind=str(raw["kind"]),
        payload=raw["payload"],
        prev_hash=str(raw["prev_hash"]),
        hash=str(raw["hash"]),
    )
