"""Canonical JSON and the audit record hash, shared by the store and by independent verifiers.

hash = sha256(canonical_json({"seq", "time", "kind", "payload", "prev_hash"})) where canonical JSON
has sorted keys, no whitespace, UTF-8, and ``time`` as ISO-8601 UTC with microseconds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(seq: int, time: datetime, kind: str, payload: dict[str, Any], prev_hash: str) -> str:
    body = {
        "seq": seq,
        "time": time.astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": kind,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()
