"""One decision's whole record: who approved and why each approval counted, why access was granted
(rule, policy digest), what was attempted and what its grants were then used for (delegations,
revocations), any break-glass, and whether the saved record matches its entry in the audit chain.

The decision page reads a table the audit chain does not protect; this says whether that table
still agrees with the chain (``agent-gate audit verify`` vouches for the chain itself).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from app.governance.history import DECISION_KINDS
from app.store.base import Store

# The decision's audit entry is appended when it is decided; look this far before decided_at (clock
# skew between the engine's and the store's clocks) and at most this many records after.
_SKEW = timedelta(seconds=60)
_SCAN = 20_000
# Keys the audit entry carries on top of the decision (token hash, webhook delivery, request id).
_AUDIT_ONLY = frozenset({"token_sha256", "delivery", "trigger", "request_id"})


def decision_record(store: Store, decision_id: str) -> dict[str, Any] | None:
    """The decision with its audit entry, grants and break-glass; None when no such decision is saved.

    Grants, delegations and revocations are read from the audit chain after the decision (the grants
    table forgets revoked grants' details), within a bounded window of records.
    """
    saved = store.get_decision(decision_id)
    if saved is None:
        return None
    entry = None
    grants: dict[str, dict[str, Any]] = {}
    try:
        since: datetime | None = datetime.fromisoformat(str(saved.get("decided_at"))) - _SKEW
    except ValueError:
        since = None
    for record in islice(store.iter_audit(since), _SCAN):
        payload = record.payload
        if record.kind in DECISION_KINDS and payload.get("decision_id") == decision_id:
            entry = record
        elif record.kind == "grant-issued" and (
            payload.get("decision_id") == decision_id or payload.get("parent_jti") in grants
        ):
            grants[str(payload["jti"])] = {
                "jti": payload["jti"],
                "delegated_from": payload.get("parent_jti"),
                "audience": payload.get("audience"),
                "permission": payload.get("permission"),
                "issued_at": record.time.isoformat(),
                "expires_at": payload.get("expires_at"),
                "revoked": None,
            }
        elif record.kind == "grant-revoked" and payload.get("jti") in grants:
            grants[str(payload["jti"])]["revoked"] = {
                "at": record.time.isoformat(),
                "reason": payload.get("reason"),
            }
    return {
        "decision": saved,
        "integrity": _integrity(saved, entry),
        "grants": list(grants.values()),
        "break_glass": store.find_break_glass(id=saved["break_glass"]) if saved.get("break_glass") else [],
    }


def _integrity(saved: dict[str, Any], entry: Any) -> dict[str, Any]:
    if entry is None:
        return {"matches": False, "why": "no audit entry was found for this decision"}
    recorded = {k: v for k, v in entry.payload.items() if k not in _AUDIT_ONLY}
    differs = sorted(k for k in set(recorded) | set(saved) if recorded.get(k) != saved.get(k))
    return {
        "matches": not differs,
        "audit_seq": entry.seq,
        "audit_hash": entry.hash,
        "audit_kind": entry.kind,
        "why": "the saved record matches its audit entry"
        if not differs
        else f"the saved record differs from its audit entry in: {', '.join(differs)}",
    }
