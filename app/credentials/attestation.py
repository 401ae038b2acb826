"""Signed decision attestations: a recorded decision about a commit as an in-toto Statement (v1) in
a DSSE envelope, signed with the gate's attestation key (app/credentials/keys.py).

The statement's subject is the repository and the commit (``digest: {"gitCommit": sha}``); its
predicate (:data:`PREDICATE_TYPE`, documented in docs/attestations.md with the JSON Schema
docs/schemas/decision-attestation-v1.json) says what an auditor asks: the action and verdict, the
workload, the agent signals, each approval and why it counted or not, the rule and policy digest,
break-glass or audit mode, and the decision's audit record (sequence number and hash), so the
attestation can be checked against the tamper-evident chain.

The envelope is securesystemslib's DSSE implementation (the in-toto and TUF projects' signing
library): its pre-authentication encoding binds the payload type to the payload, and its ``keyid``
is the ``kid`` of a key at ``/.well-known/jwks.json``. The statement itself is plain JSON built
here: in-toto's own Python bindings carry it as a protobuf ``Struct``, which turns every integer
(run ids, audit sequence numbers) into a float; the suite checks our statements with those bindings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar

from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from app.credentials.keys import AttestationKeys
from app.decide.decision import Decision
from app.errors import GateError, NotFound
from app.governance.decision_record import decision_record
from app.settings import gate_version
from app.store.base import Store

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://github.com/acme/agent-gate/blob/main/docs/attestations.md#decision-v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"  # DSSE payloadType of an in-toto statement
MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"  # the envelope as an HTTP answer
SCHEME = "ecdsa-sha2-nistp256"  # securesystemslib's name for ES256's signature (DER-encoded)

_COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
# Which road made the decision, from its audit record's kind (app/tokens/identity.py Origin).
_ORIGIN = {
    "decision": "oidc-token",
    "merge-check": "pull-request-check",
    "deployment-protection": "held-deployment",
    "merge-group": "merge-group",
}


class NotAttestable(GateError):
    """The decision exists, but the gate will not sign it (409): what it would sign is in doubt."""

    status: ClassVar[int] = 409
    default_code: ClassVar[str] = "not-attestable"


def verdict_of(decision: Decision) -> str:
    """``allowed``, ``denied``, or how an allow came about when it was not the rule's own."""
    if not decision.allowed:
        return "denied"
    if decision.would_deny:
        return "allowed-audit-mode"
    if decision.break_glass:
        return "allowed-break-glass"
    return "allowed"


def predicate(decision: Decision, audit: dict[str, Any], *, gate_url: str) -> dict[str, Any]:
    """The decision predicate (v1): lowerCamelCase field names, as the in-toto framework asks."""
    s = decision.subject
    return {
        "decisionId": decision.decision_id,
        "decidedAt": decision.decided_at.isoformat(),
        "action": decision.action,
        "permission": decision.permission,
        "verdict": verdict_of(decision),
        "auditMode": {"wouldDeny": decision.would_deny},
        "breakGlass": {"id": decision.break_glass} if decision.break_glass else None,
        "rule": decision.rule,
        "policyDigest": decision.policy_digest,
        "reasons": [
            {"code": r.code, "ok": r.ok, "checked": r.checked, "message": r.message} for r in decision.reasons
        ],
        "remedy": decision.remedy,
        "workload": {
            "origin": _ORIGIN.get(str(audit["audit_kind"]), str(audit["audit_kind"])),
            "repository": s.repository,
            "repositoryId": s.repository_id,
            "owner": s.owner,
            "ownerId": s.owner_id,
            "actor": s.actor,
            "actorId": s.actor_id,
            "triggeringActor": s.triggering_actor,
            "workflow": s.workflow,
            "workflowSha": s.workflow_sha,
            "ref": s.ref,
            "event": s.event,
            "runId": s.run_id,
            "runAttempt": s.run_attempt,
            "environment": s.environment,
            "runnerEnvironment": s.runner_environment,
            "pullRequest": s.pull_request,
        },
        "agent": {
            "involved": s.agent,
            "signals": [{"name": sig.name, "detail": sig.detail} for sig in s.agent_signals],
        },
        "approvals": [
            {
                "source": a.source,
                "login": a.login,
                "id": a.id,
                "state": a.state,
                "commit": a.commit,
                "counted": a.counted,
                "code": a.code,
                "why": a.why,
                # Review-quality signals (OWASP AISVS C14.8.3): when, and how soon after the commit.
                "submittedAt": a.submitted_at.isoformat() if a.submitted_at else None,
                "afterCommitSeconds": a.after_commit_seconds,
            }
            for a in decision.approvals
        ],
        "evidenceSource": decision.evidence_source,
        "audit": {
            "seq": int(audit["audit_seq"]),
            "hash": str(audit["audit_hash"]),
            "kind": audit["audit_kind"],
        },
        "gate": {"url": gate_url, "version": gate_version()},
        "detailsUrl": decision.details_url,
    }


def statement(decision: Decision, audit: dict[str, Any], *, gate_url: str) -> dict[str, Any]:
    """The in-toto Statement v1 about the decision's commit. Raises NotAttestable for no commit."""
    sha = decision.subject.sha
    if not _COMMIT.fullmatch(sha):
        raise NotAttestable(
            f"decision {decision.decision_id} is about no commit (its sha is {sha!r}): only decisions "
            "about a commit have an attestation",
            code="no-commit",
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": decision.subject.repository,
                "digest": {"gitCommit": sha},
                "annotations": {"repositoryId": decision.subject.repository_id},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate(decision, audit, gate_url=gate_url),
    }


def sign(payload: dict[str, Any], keys: AttestationKeys) -> dict[str, Any]:
    """The statement in a DSSE envelope signed with the current attestation key (its kid as keyid)."""
    kid, private = keys.current()
    signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid=kid, scheme=SCHEME))
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    envelope = Envelope(payload=body, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    signed: dict[str, Any] = envelope.to_dict()
    return signed


class Attestations:
    """Signs the attestation of a recorded decision, on request (nothing is kept: it is rebuilt from
    the decision's record and audit entry each time, and signed with the current key)."""

    def __init__(self, store: Store, *, gate_url: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.gate_url = gate_url.rstrip("/")
        self.keys = AttestationKeys(store, clock)

    def decision(self, decision_id: str, not_found: str) -> Decision:
        """The saved decision; NotFound (with the caller's message) when there is none."""
        record = self.store.get_decision(decision_id)
        if record is None:
            raise NotFound(not_found)
        return Decision.model_validate(record)

    def envelope(self, decision: Decision) -> dict[str, Any]:
        """The signed envelope. Raises NotAttestable when the decision is about no commit, or when
        its saved record does not match its audit entry (the gate signs only what its chain holds)."""
        full = decision_record(self.store, decision.decision_id)
        integrity = full["integrity"] if full is not None else {"matches": False, "why": "it is gone"}
        if not integrity.get("matches"):
            raise NotAttestable(
                f"decision {decision.decision_id} cannot be attested: {integrity['why']}; run "
                "`agent-gate audit verify` and `agent-gate audit show` on the gate",
                code="record-mismatch",
            )
        return sign(statement(decision, integrity, gate_url=self.gate_url), self.keys)
