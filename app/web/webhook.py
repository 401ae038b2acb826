"""``POST /v1/github/webhook``: the GitHub App's events, verified and queued durably.

The signature (``X-Hub-Signature-256``, HMAC-SHA256 over the raw body) is verified in constant time
before anything is parsed. The delivery is then stored in the queue and answered ``202`` at once
(GitHub gives a webhook 10 seconds); the queue's workers process it with retries
(``app.events``). A delivery already queued or done is answered ``200 duplicate``; one given up on
is queued again when GitHub redelivers it; the same body under another delivery id is not run
twice (GitHub signs the body only); one about the subject of a job still waiting is covered by it
(``200 coalesced``, app.events.coalesce). Past ``GATE_QUEUE_MAX_PENDING`` pending jobs the answer
is 503 ``queue-full``: GitHub records a failed delivery, and the redelivery sweep asks for it again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field

from app.errors import InvalidRequest, PayloadTooLarge, TokenError, Unavailable
from app.events.coalesce import subject_of
from app.events.dispatch import EVENTS, WEBHOOK
from app.observe.metrics import metrics
from app.store.base import FULL, QUEUED
from app.store.clock import shared_time
from app.web.requests import MAX_WEBHOOK_BYTES, gate, load_json
from app.web.spec import OBJECT, TOO_LARGE, Operation, Param, documented, error, json_answer

log = logging.getLogger("agent_gate.webhook")

bp = Blueprint("webhook", __name__)


class WebhookAnswer(BaseModel):
    status: str = Field(
        description="queued (202); duplicate for a redelivery already kept, same-body, coalesced into a job "
        "still waiting about the same subject, ignored or pong (200)."
    )
    delivery: str
    why: str | None = Field(None, description="Why an event was ignored.")


class SignatureError(TokenError):
    """A webhook whose signature is missing or wrong (401)."""


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256`` in constant time. Raises :class:`SignatureError`."""
    if not header:
        raise SignatureError(
            "the webhook has no X-Hub-Signature-256 header; set a webhook secret on the GitHub App",
            code="missing-signature",
        )
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError(
            "the webhook signature does not match; the App's webhook secret and GATE_WEBHOOK_SECRET differ",
            code="bad-signature",
        )


@bp.post("/v1/github/webhook")
@documented(
    Operation(
        "githubWebhook",
        "The GitHub App's webhook deliveries",
        {
            200: json_answer(
                "A delivery already kept or coalesced, a ping, or an event the gate does not handle.",
                WebhookAnswer,
            ),
            202: json_answer("Kept in the durable queue; it will be processed, with retries.", WebhookAnswer),
            400: error("Not JSON, or no valid X-GitHub-Delivery header."),
            401: error("The signature is missing or wrong."),
            413: TOO_LARGE,
            503: error(
                "Webhooks are not configured, the store is unavailable, or the queue holds its bound of "
                "pending jobs (queue-full; the redelivery sweep asks GitHub for it again)."
            ),
        },
        body=OBJECT,
        params=(
            Param("X-GitHub-Event", "header", required=True),
            Param(
                "X-GitHub-Delivery",
                "header",
                {"type": "string", "minLength": 1, "maxLength": 100},
                required=True,
            ),
        ),
        security=("githubSignature",),
    )
)
def github_webhook() -> tuple[Response, int]:
    g = gate()
    if g.settings.webhook_secret is None:
        raise Unavailable(
            "webhooks are not configured: set GATE_WEBHOOK_SECRET to the GitHub App's webhook secret",
            code="webhook-not-configured",
        )
    # The body was read whole (at most MAX_WEBHOOK_BYTES, this route's limit) before the view ran.
    request.max_content_length = MAX_WEBHOOK_BYTES
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge(f"the webhook body is {length} bytes; the limit is {MAX_WEBHOOK_BYTES}")
    raw = request.get_data(cache=False)
    verify_signature(
        g.settings.webhook_secret.get_secret_value().encode(), raw, request.headers.get("X-Hub-Signature-256")
    )
    delivery = request.headers.get("X-GitHub-Delivery", "")
    event = request.headers.get("X-GitHub-Event", "")
    if not delivery or len(delivery) > 100:
        raise InvalidRequest("the webhook has no valid X-GitHub-Delivery header", code="missing-delivery")
    if event == "ping":
        return jsonify({"status": "pong", "delivery": delivery}), 200
    if event not in EVENTS:
        return jsonify(
            {"status": "ignored", "delivery": delivery, "why": f"event {event!r} is not handled"}
        ), 200
    payload = load_json(raw, "the webhook body")
    if not isinstance(payload, dict):
        raise InvalidRequest("the webhook body is not a JSON object", code="invalid-json")
    # Stored durably before the answer: a 202 means the delivery will be processed (with retries),
    # and a failure to store it answers 503 so GitHub records a failed delivery, which the
    # redelivery sweep (app.events.redelivery) asks GitHub to send again.
    status = g.store.enqueue_job(
        delivery,
        WEBHOOK,
        event,
        raw,
        now=int(shared_time(g.store, g.clock)),
        subject=subject_of(event, payload),
        max_pending=g.settings.queue_max_pending,
    )
    metrics().webhook_deliveries.labels(status).inc()
    if status == FULL:
        raise Unavailable(
            f"the gate's webhook queue holds its bound of {g.settings.queue_max_pending} pending jobs "
            "(GATE_QUEUE_MAX_PENDING), so this delivery was not kept; the gate asks GitHub to redeliver it "
            "once the queue has drained",
            code="queue-full",
            retry_after=60,
        )
    if status == QUEUED:
        g.jobs_waiting.set()
    return jsonify({"status": status, "delivery": delivery}), 202 if status == QUEUED else 200
