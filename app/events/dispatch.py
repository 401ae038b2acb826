"""From a queued webhook delivery to its handlers.

The webhook verified the signature and stored the body; here it is parsed into the event's typed
model (app/github/webhooks.py) and handed to every handler of its event. Handlers raise to have the
job retried (GitHub or the store failing) and raise ``InvalidRequest`` when the event can never be
handled (the job is given up).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from app.decide.decision import Decision
from app.errors import InvalidRequest
from app.events import deployments, merge_check, merge_group
from app.events.freeze import FREEZE_CHECKS_JOB, FREEZE_HELD_JOB, decide_held_again, fail_merge_checks
from app.gate.core import Gate
from app.gate.pipeline import CHECK_RUN_JOB
from app.github.webhooks import parse_event
from app.store.base import Job

log = logging.getLogger("agent_gate.webhook")

WEBHOOK = "webhook"  # the job kind of a verified GitHub delivery

Handler = Callable[[Gate, Any, str], dict[str, Any]]  # (gate, the event's typed model, delivery id)

HANDLERS: dict[str, tuple[Handler, ...]] = {
    "pull_request": (merge_check.on_pull_request,),
    "pull_request_review": (merge_check.on_pull_request_review, deployments.on_pull_request_review),
    "check_run": (merge_check.on_rerequested,),
    "check_suite": (merge_check.on_rerequested,),
    "deployment_protection_rule": (deployments.on_protection_rule,),
    "deployment_review": (deployments.on_deployment_review,),
    "merge_group": (merge_group.on_merge_group,),
}
# The events the App subscribes to (docs/github-app.md); "ping" is GitHub's hello when a hook is set.
EVENTS = frozenset(HANDLERS)


def handle_event(g: Gate, event: str, payload: object, delivery: str) -> dict[str, Any]:
    """Parse the payload into its typed event (``InvalidRequest``, ``invalid-payload``, when it does not
    fit: the job is given up) and run every handler of it; returns what was done (logged, and read
    by the tests). A handler's own failure is raised as it is: a GitHub or store failure is retried,
    and a bug is a crash of the job with its traceback in the log, never called a bad payload."""
    handlers = HANDLERS.get(event)
    typed = parse_event(event, payload) if handlers else None
    if not handlers or typed is None:
        return {"handled": False, "why": f"event {event!r} is not handled"}
    results = [handler(g, typed, delivery) for handler in handlers]
    if len(results) == 1:
        return results[0]
    return {"handled": any(r.get("handled") for r in results), "results": results}


def post_check_run(g: Gate, job: Job) -> None:
    """Post the check run of a decision made by ``POST /v1/decisions`` (queued by the gate's hook)."""
    if g.checks is None:
        raise InvalidRequest(
            "a check run was queued, but the GitHub App is not configured", code="github-not-configured"
        )
    try:
        decision = Decision.model_validate_json(job.body)
    except ValueError as exc:
        raise InvalidRequest("the queued decision is not valid", code="invalid-job") from exc
    g.checks.publish(decision)


def run_job(g: Gate) -> Callable[[Job], None]:
    """The queue worker's handler for this gate."""

    def handler(job: Job) -> None:
        if job.kind == CHECK_RUN_JOB:
            post_check_run(g, job)
            return
        if job.kind == FREEZE_HELD_JOB:
            log.info("freeze %s %s: %s", job.topic, job.id, decide_held_again(g, job.id, job.topic, job.body))
            return
        if job.kind == FREEZE_CHECKS_JOB:
            log.info("freeze %s %s: %s", job.topic, job.id, fail_merge_checks(g, job.id, job.topic))
            return
        if job.kind != WEBHOOK:
            raise InvalidRequest(f"unknown job kind {job.kind!r}", code="invalid-job")
        try:
            payload = json.loads(job.body)
        except ValueError as exc:
            raise InvalidRequest("the webhook body is not JSON", code="invalid-json") from exc
        if not isinstance(payload, dict):
            raise InvalidRequest("the webhook body is not a JSON object", code="invalid-json")
        result = handle_event(g, job.topic, payload, job.id)
        log.info("webhook %s %s: %s", job.topic, job.id, result)

    return handler
