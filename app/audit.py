"""Audit helpers behind ``agent-gate audit verify`` and ``agent-gate audit export``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TextIO

from app.store.base import ChainReport, Store


def verify_chain(store: Store) -> ChainReport:
    """Recompute the hash chain; the report names the first broken record."""
    return store.verify_audit()


def export_jsonl(store: Store, out: TextIO, since: datetime | None = None) -> int:
    """Write records as JSON lines (seq, time, kind, payload, prev_hash, hash); returns how many."""
    count = 0
    for record in store.iter_audit(since):
        out.write(
            json.dumps(
                {
                    "seq": record.seq,
                    "time": record.time.astimezone(UTC).isoformat(timespec="microseconds"),
                    "kind": record.kind,
                    "payload": record.payload,
                    "prev_hash": record.prev_hash,
                    "hash": record.hash,
                },
                sort_keys=True,
                ensure_ascii=False,
            )
            + "\n"
        )
        count += 1
    return count
