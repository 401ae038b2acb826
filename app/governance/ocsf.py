"""The audit chain as OCSF 1.8.0 events, for a SIEM: ``agent-gate audit export --format ocsf``.

One event per audit record, in chain order, each carrying the record's sequence number and hash
(``metadata.sequence``, ``metadata.uid``) so an event in the SIEM can be traced back to the link
``agent-gate audit verify`` vouches for. Which class each record becomes (docs/audit.md):

- a decision, whatever asked (``decision``, ``merge-check``, ``merge-group``, ``deployment-protection``): **API
  Activity** (6003) with the Security Control profile: the action asked is ``api.operation``, the
  verdict is ``action_id`` (1 Allowed, 2 Denied) and ``disposition_id`` (1 Allowed, 2 Blocked,
  17 Logged for an allow that audit mode would have denied), the rule and policy digest are
  ``policy`` and ``authorizations``; read is activity 2 (Read), propose 1 (Create), execute 99
  (Other, "Execute"): merging and deploying are neither a create nor an update of an API object;
- ``grant-issued``: **Authorize Session** (3003), activity 1 (Assign Privileges): the grant's jti is
  the session's uid, its permission and audience are the privileges;
- ``grant-revoked``: **Entity Management** (3004), activity 11 (Deactivate) of the grant;
- ``break-glass-*``: Entity Management of the override (requested: Create, confirmed: Activate,
  used: Update), severity High;
- any other kind (token refusals, housekeeping, records a newer gate writes): API Activity 99
  (Other) with the record under ``unmapped``, so the export never drops or refuses a record.

Pure: records in, dictionaries out. The suite validates every class against the published schema
(tests/fixtures/ocsf, compiled by ocsf-lib).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from app.governance.history import DECISION_KINDS
from app.store.base import AuditRecord

OCSF_VERSION = "1.8.0"
PROFILES = ["security_control"]

_API_ACTIVITY, _AUTHORIZE_SESSION, _ENTITY_MANAGEMENT = 6003, 3003, 3004
_CATEGORY = {_API_ACTIVITY: 6, _AUTHORIZE_SESSION: 3, _ENTITY_MANAGEMENT: 3}
_INFORMATIONAL, _LOW, _HIGH = 1, 2, 4
_ACTIVITY_OF_PERMISSION = {"read": (2, "Read"), "propose": (1, "Create"), "execute": (99, "Execute")}
_BREAK_GLASS = {
    "break-glass-requested": (1, "Create"),
    "break-glass-confirmed": (10, "Activate"),
    "break-glass-used": (3, "Update"),
}

Event = dict[str, Any]


def export_ocsf(records: Iterable[AuditRecord], out: TextIO, *, product_version: str) -> int:
    """Write one OCSF event per record as JSON lines (ASCII, so one event is one line); how many."""
    count = 0
    for record in records:
        out.write(json.dumps(to_ocsf(record, product_version=product_version), ensure_ascii=True) + "\n")
        count += 1
    return count


def to_ocsf(record: AuditRecord, *, product_version: str) -> Event:
    """The OCSF event of one audit record (never raises for a record's content: unknown kinds and
    missing fields map to "Other" and absent attributes)."""
    payload = record.payload if isinstance(record.payload, dict) else {}
    if record.kind in DECISION_KINDS and isinstance(payload.get("decision_id"), str):
        mapper: Callable[[AuditRecord, dict[str, Any]], Event] = _decision
    elif record.kind == "grant-issued":
        mapper = _grant_issued
    elif record.kind == "grant-revoked":
        mapper = _grant_revoked
    elif record.kind in _BREAK_GLASS:
        mapper = _break_glass
    else:
        mapper = _other
    event = mapper(record, payload)
    event["metadata"] = _metadata(record, payload, product_version)
    event["time"] = _millis(record)
    event["unmapped"] = {**event.get("unmapped", {}), "audit": _link(record)}
    event["type_uid"] = event["class_uid"] * 100 + event["activity_id"]
    event["category_uid"] = _CATEGORY[event["class_uid"]]
    return event


def _decision(record: AuditRecord, d: dict[str, Any]) -> Event:
    found = d.get("subject")
    subject: dict[str, Any] = found if isinstance(found, dict) else {}
    activity_id, activity_name = _ACTIVITY_OF_PERMISSION.get(str(d.get("permission")), (99, "Other"))
    allowed = d.get("allowed") is True
    would_deny = d.get("would_deny") is True
    if allowed:
        disposition_id, disposition = (17, "Logged") if would_deny else (1, "Allowed")
    else:
        disposition_id, disposition = 2, "Blocked"
    rule = d.get("rule")
    policy = _compact({"name": str(rule) if rule else "no rule matched", "uid": d.get("policy_digest")})
    failing = [r for r in d.get("reasons") or [] if isinstance(r, dict) and not r.get("ok")]
    event: Event = {
        "class_uid": _API_ACTIVITY,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "severity_id": _LOW if (not allowed or would_deny) else _INFORMATIONAL,
        "status_id": 1 if allowed else 2,
        "status": "Success" if allowed else "Failure",
        "action_id": 1 if allowed else 2,
        "action": "Allowed" if allowed else "Denied",
        "disposition_id": disposition_id,
        "disposition": disposition,
        "message": _summary(d, subject, allowed, would_deny),
        "api": _compact(
            {
                "operation": str(d.get("action") or "unknown"),
                "service": {"name": "agent-gate"},
                "request": {"uid": d["request_id"]} if isinstance(d.get("request_id"), str) else None,
            }
        ),
        "actor": {"user": _user(subject), "app_name": "GitHub Actions"},
        "src_endpoint": _source(subject, record.kind),
        "resources": _resources(subject),
        "policy": policy,
        "authorizations": [{"decision": "allowed" if allowed else "denied", "policy": policy}],
        "unmapped": _compact(
            {
                "decision_id": d["decision_id"],
                "audit_kind": record.kind,
                "would_deny": would_deny,
                "agent": subject.get("agent"),
                "agent_signals": subject.get("agent_signals") or None,
                "approvals": d.get("approvals") or None,
                "break_glass": d.get("break_glass"),
                "details_url": d.get("details_url"),
            }
        ),
    }
    if failing:
        event["status_detail"] = "; ".join(str(r.get("message")) for r in failing)
    return event


def _grant_issued(record: AuditRecord, g: dict[str, Any]) -> Event:
    privileges = [str(p) for p in (g.get("permission"), g.get("audience")) if p]
    return {
        "class_uid": _AUTHORIZE_SESSION,
        "activity_id": 1,
        "activity_name": "Assign Privileges",
        "severity_id": _INFORMATIONAL,
        "status_id": 1,
        "status": "Success",
        "user": _workload(g),
        "privileges": privileges,
        "session": _compact(
            {
                "uid": g.get("jti"),
                "issuer": "agent-gate",
                "expiration_time": g["expires_at"] * 1000 if isinstance(g.get("expires_at"), int) else None,
            }
        ),
        "message": f"grant {g.get('jti')} issued for {g.get('audience')} (decision {g.get('decision_id')})",
        "unmapped": _compact({"decision_id": g.get("decision_id"), "parent_jti": g.get("parent_jti")}),
    }


def _grant_revoked(record: AuditRecord, g: dict[str, Any]) -> Event:
    return {
        "class_uid": _ENTITY_MANAGEMENT,
        "activity_id": 11,
        "activity_name": "Deactivate",
        "severity_id": _INFORMATIONAL,
        "status_id": 1,
        "status": "Success",
        "entity": _compact({"type": "grant", "uid": g.get("jti") or "unknown"}),
        "message": f"grant {g.get('jti')} revoked: {g.get('reason')}",
        "unmapped": _compact({"decision_id": g.get("decision_id"), "reason": g.get("reason")}),
    }


def _break_glass(record: AuditRecord, b: dict[str, Any]) -> Event:
    activity_id, activity_name = _BREAK_GLASS[record.kind]
    return {
        "class_uid": _ENTITY_MANAGEMENT,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "severity_id": _HIGH,
        "status_id": 1,
        "status": "Success",
        "entity": _compact({"type": "break-glass", "uid": b.get("id") or "unknown"}),
        "message": f"{record.kind.replace('-', ' ')}: {b.get('justification') or b.get('id')}",
        "unmapped": {"record": b},
    }


def _other(record: AuditRecord, payload: dict[str, Any]) -> Event:
    return {
        "class_uid": _API_ACTIVITY,
        "activity_id": 99,
        "activity_name": record.kind,
        "severity_id": _INFORMATIONAL,
        "api": {"operation": record.kind, "service": {"name": "agent-gate"}},
        "actor": {"app_name": "agent-gate"},
        "src_endpoint": {"name": "agent-gate"},
        "message": record.kind,
        "unmapped": {"record": payload},
    }


def _metadata(record: AuditRecord, payload: dict[str, Any], product_version: str) -> Event:
    return _compact(
        {
            "version": OCSF_VERSION,
            "profiles": PROFILES,
            "product": {"name": "agent-gate", "vendor_name": "agent-gate", "version": product_version},
            "log_name": "agent-gate audit",
            "event_code": record.kind,
            "uid": record.hash,
            "sequence": record.seq,
            "correlation_uid": payload.get("decision_id")
            if isinstance(payload.get("decision_id"), str)
            else None,
            "original_time": record.time.isoformat(),
        }
    )


def _user(subject: dict[str, Any]) -> Event:
    name, uid = subject.get("actor"), subject.get("actor_id")
    user = _compact(
        {"name": name if isinstance(name, str) else None, "uid": str(uid) if uid is not None else None}
    )
    return user or {"name": "unknown"}


def _workload(g: dict[str, Any]) -> Event:
    """A grant's holder: the run of the repository it was minted for (numeric ids, as recorded)."""
    repository, run = g.get("repository_id"), g.get("run_id")
    return {"uid": f"repository:{repository}/run:{run}", "type_id": 99, "type": "workload"}


def _source(subject: dict[str, Any], kind: str) -> Event:
    run = subject.get("run_id")
    if kind == "merge-check" or run is None:
        return {"name": "GitHub webhook"}
    return _compact({"name": subject.get("workflow") or "GitHub Actions", "uid": f"run:{run}"})


def _resources(subject: dict[str, Any]) -> list[Event]:
    out: list[Event] = []
    if subject.get("repository") or subject.get("repository_id") is not None:
        repository = subject.get("repository_id")
        out.append(
            _compact(
                {
                    "type": "repository",
                    "name": subject.get("repository"),
                    "uid": str(repository) if repository is not None else None,
                }
            )
        )
    if isinstance(subject.get("sha"), str):
        out.append(_compact({"type": "git commit", "uid": subject["sha"], "name": subject.get("ref")}))
    if isinstance(subject.get("environment"), str):
        out.append({"type": "environment", "name": subject["environment"]})
    return out


def _summary(d: dict[str, Any], subject: dict[str, Any], allowed: bool, would_deny: bool) -> str:
    verdict = "would deny (audit mode)" if would_deny else ("allowed" if allowed else "denied")
    return f"{d.get('action')} on {subject.get('repository')} by {subject.get('actor')}: {verdict}"


def _link(record: AuditRecord) -> Event:
    return {"seq": record.seq, "kind": record.kind, "hash": record.hash, "prev_hash": record.prev_hash}


def _millis(record: AuditRecord) -> int:
    return int(record.time.timestamp() * 1000)


def _compact(d: dict[str, Any]) -> Event:
    """``d`` without its None values: OCSF leaves an unknown attribute out rather than null."""
    return {k: v for k, v in d.items() if v is not None}
