"""What a freeze stops at once (app/governance/freeze.py says what a freeze is).

When a freeze starts, :func:`sweep` revokes every live grant of an agent-driven workload in its
scope, with its GitHub token and its delegated children (the revocation path of
``POST /v1/grants/revoke``), and queues each held agent deployment in scope to be decided again:
the pipeline's ``frozen`` overlay denies it, and GitHub is told ``rejected`` with the freeze's
reason (a queued job, so a GitHub failure is retried rather than lost). It also queues one job that
finds the agent pull requests in scope whose merge check last passed (from the audit chain, over
the retention period) and evaluates each again, so their ``agent-gate / merge`` check fails.

A grant whose decision record is gone (past retention) cannot be attributed to a workload: it is
revoked too, and the audit event says how many were (fail closed).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from app.decide.decision import Subject
from app.errors import InvalidRequest
from app.events.deployments import decide_held
from app.events.merge_check import evaluate_again
from app.gate.core import Gate
from app.github.payloads import GhRepository, GhUser
from app.governance.freeze import ACTIVE, covers

log = logging.getLogger("agent_gate.freeze")

FREEZE_HELD_JOB = "freeze-held"  # the job kind that decides a held deployment again under a freeze
FREEZE_CHECKS_JOB = "freeze-merge-checks"  # the job kind that fails the passing agent merge checks


def _subject(g: Gate, decision_id: str | None) -> Subject | None:
    record = g.store.get_decision(decision_id) if decision_id else None
    return Subject.model_validate(record["subject"]) if record and "subject" in record else None


def sweep(g: Gate, freeze: dict[str, Any]) -> dict[str, Any]:
    """Revoke the live grants of agents in ``freeze``'s scope and queue its held agent deployments;
    returns (and audits, as ``freeze-swept``) what was done. Raises the store's errors."""
    now = int(g.clock())
    reason = f"freeze {freeze['id']}"
    if freeze["scope"] == "repository":
        live = g.store.find_grants("expires_at > ? AND repository_id = ?", (now, freeze["repository_id"]))
    else:
        live = g.store.find_grants("expires_at > ?", (now,))
    revoked: list[str] = []
    unattributed = 0
    for grant in live:
        subject = _subject(g, grant["decision_id"])
        if subject is None:
            unattributed += 1
        elif not covers(freeze, subject):
            continue
        revoked += g.grants.revoke(grant["jti"], reason)
    queued = 0
    repository = freeze["repository_id"] if freeze["scope"] == "repository" else None
    for held in g.store.find_deployment_gates(repository, state="pending"):
        if int(held["owner_id"]) != freeze["owner_id"]:
            continue
        subject = _subject(g, held.get("decision_id"))
        if subject is not None and not covers(freeze, subject):
            continue
        # The freeze's id in the body too: the queue runs one body once, whatever its job id.
        key = {"freeze": freeze["id"], **{k: held[k] for k in ("repository_id", "run_id", "environment")}}
        job_id = f"freeze:{freeze['id']}:{key['repository_id']}:{key['run_id']}:{key['environment']}"
        g.store.enqueue_job(job_id, FREEZE_HELD_JOB, freeze["id"], json.dumps(key).encode(), now=now)
        queued += 1
    if g.github is not None:
        body = json.dumps({"freeze": freeze["id"]}).encode()
        g.store.enqueue_job(
            f"freeze:{freeze['id']}:merge-checks", FREEZE_CHECKS_JOB, freeze["id"], body, now=now
        )
    if queued or g.github is not None:
        g.jobs_waiting.set()
    done = {
        "id": freeze["id"],
        "grants_revoked": sorted(revoked),
        "grants_unattributed": unattributed,
        "held_deployments_queued": queued,
    }
    g.store.append_audit("freeze-swept", done)
    log.info(
        "freeze %s: %d grant(s) revoked, %d held deployment(s) queued", freeze["id"], len(revoked), queued
    )
    return done


def decide_held_again(g: Gate, job_id: str, freeze_id: str, body: bytes) -> dict[str, Any]:
    """The job queued by :func:`sweep`: decide the held deployment again, if it still waits."""
    try:
        key = json.loads(body)
        repository_id, run_id, environment = (
            int(key["repository_id"]),
            int(key["run_id"]),
            str(key["environment"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest("the queued held deployment is not valid", code="invalid-job") from exc
    held = [
        h
        for h in g.store.find_deployment_gates(repository_id, run_id=run_id)
        if h["environment"] == environment
    ]
    if not held:
        return {"handled": False, "why": "the deployment was answered meanwhile"}
    return decide_held(g, held[0], delivery=job_id, why=f"freeze {freeze_id}")


def fail_merge_checks(g: Gate, job_id: str, freeze_id: str) -> dict[str, Any]:
    """The job queued by :func:`sweep`: evaluate again every agent pull request in the freeze's scope
    whose merge check last passed (the overlay fails it now). Nothing once the freeze is lifted."""
    found = g.store.find_freezes(id=freeze_id)
    if not found or found[0]["state"] != ACTIVE or g.github is None:
        return {"handled": False, "why": "the freeze is no longer active"}
    freeze = found[0]
    since = datetime.fromtimestamp(g.clock() - g.settings.retention_days * 86400, UTC)
    latest: dict[tuple[int, int], tuple[bool, Subject]] = {}
    for record in g.store.iter_audit(since=since):
        if record.kind != "merge-check":
            continue
        try:
            subject = Subject.model_validate(record.payload["subject"])
        except (KeyError, ValidationError):
            continue  # a record of another shape: not a check this sweep can redo
        if subject.pull_request is not None:
            latest[(subject.repository_id, subject.pull_request)] = (
                record.payload.get("allowed") is True,
                subject,
            )
    results = []
    for passed, s in latest.values():
        if passed and covers(freeze, s) and s.pull_request is not None:
            repo = GhRepository(
                id=s.repository_id, full_name=s.repository, owner=GhUser(login=s.owner, id=s.owner_id)
            )
            results.append(evaluate_again(g, repo, s.pull_request, job_id, f"freeze {freeze_id}"))
    return {"handled": bool(results), "results": results}
