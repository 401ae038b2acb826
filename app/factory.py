"""The Flask application factory: ``create_app(settings=None, *, ...)``.

gunicorn runs it directly: ``gunicorn 'app:create_app()'``. Tests pass settings and fakes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client.core import GaugeMetricFamily
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app.credentials.grants import GrantService
from app.decide.decision import Decision
from app.errors import GateError
from app.events.dispatch import EVENTS, run_job
from app.events.redelivery import RedeliverySweep
from app.events.worker import QueueWorker
from app.evidence.gather import EvidenceSource, GitHubEvidence
from app.evidence.offline import NoEvidence
from app.gate.clock_watch import ClockWatch
from app.gate.core import Gate
from app.gate.housekeeping import Housekeeping
from app.gate.pipeline import DecisionHook, Pipeline, Recording
from app.gate.side_effects import SideEffects
from app.github.client import GitHubClient
from app.governance.breakglass import BreakGlass
from app.governance.freeze import Freezes
from app.observe import logs, request_hooks
from app.observe.metrics import metrics
from app.policy.registry import PolicyRegistry
from app.publish.checks import CheckRunPublisher
from app.settings import Settings
from app.store.base import Store
from app.store.opener import open_store
from app.store.refusals import RefusalAudit
from app.tokens.devissuer import DevIssuer
from app.tokens.verify import IssuerConfig, TokenVerifier
from app.web import login
from app.web.breakglass import bp as break_glass_bp
from app.web.decisions import bp as api_bp
from app.web.freeze import bp as freeze_bp
from app.web.grants import bp as grants_bp
from app.web.inventory import bp as inventory_bp
from app.web.openapi import bp as openapi_bp
from app.web.pages import bp as pages_bp
from app.web.requests import buffer_body
from app.web.setup import bp as setup_bp
from app.web.webhook import bp as webhook_bp

log = logging.getLogger("agent_gate")

# A changed policy file is adopted once it has been left alone this long (docs/policy.md).
POLICY_SETTLE_SECONDS = 1.0

_HTTP_CODES = {
    400: "invalid-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    500: "internal-error",
}


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    evidence: EvidenceSource | None = None,
    github: GitHubClient | None = None,
    verifier: TokenVerifier | None = None,
    policies: PolicyRegistry | None = None,
    clock: Callable[[], float] | None = None,
    hooks: list[DecisionHook] | None = None,
) -> Flask:
    """Build the gate. Collaborators not given are built from ``settings`` (default: the environment)."""
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    clock = clock or time.time

    if store is None:
        store = open_store(settings.database_url, pool_size=settings.database_pool_size)
    if policies is None:
        policies = PolicyRegistry(
            settings.policy_path,
            check_interval=settings.policy_check_interval,
            last_good=settings.data_dir / "policy-last-good",
            settle=POLICY_SETTLE_SECONDS,
        )
        # Never fails: an invalid policy leaves this worker on the last good version (or answering
        # 503) until the files are fixed. `agent-gate serve` refuses to start on an invalid one.
        policies.start()
    if verifier is None:
        verifier = TokenVerifier(
            issuer_configs(settings),
            settings.audience,
            replay=store,
            clock=clock,
            leeway=settings.leeway,
            max_age=settings.max_token_age,
            jwks_ttl=settings.jwks_ttl,
        )
    if github is None and settings.github is not None:
        github = GitHubClient(settings.github)
    if evidence is None:
        evidence = GitHubEvidence(github) if github is not None else NoEvidence()
    checks = CheckRunPublisher(github) if github is not None else None

    refusals = RefusalAudit(store, clock=clock)
    # The counts of refusals not yet written out reach the audit log when the worker exits.
    atexit.register(_flush_refusals, refusals)
    grants = GrantService(store, issuer=settings.public_url, github=github, clock=clock)
    break_glass = BreakGlass(store, policies.current, clock, github)
    clock_watch = ClockWatch(store, clock, settings.clock_skew_max)
    freezes = Freezes(store, policies.current, clock, github)
    recording = Recording(
        store=store,
        side_effects=SideEffects(store),
        grants=grants,
        housekeeping=Housekeeping(
            store, refusals, grants, clock, settings.retention_days, clock_watch=clock_watch
        ),
        hooks=[_count_decision, *(hooks or [])],
        checks=checks,  # check runs leave the request path: queued with the decision
        jobs_waiting=threading.Event(),
    )
    pipeline = Pipeline(
        policies=policies.current,
        evidence=evidence,
        clock=clock,
        recording=recording,
        break_glass=break_glass,
        freezes=freezes,
        public_url=settings.public_url,
    )
    gate = Gate(
        settings=settings,
        verifier=verifier,
        policies=policies,
        clock=clock,
        pipeline=pipeline,
        recording=recording,
        refusals=refusals,
        break_glass=break_glass,
        freezes=freezes,
        github=github,
        evidence_listeners=[grants.on_evidence_change],
        clock_watch=clock_watch,
    )

    app = Flask(__name__, static_folder=None)  # no static files: every route is documented
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider attribute
    app.extensions["agent_gate"] = gate
    # The webhook queue's worker; `agent-gate serve` starts its threads in each gunicorn worker.
    app.extensions["agent_gate_queue"] = QueueWorker(
        store=store, handler=run_job(gate), clock=clock, wakeup=gate.jobs_waiting
    )

    # The deliveries GitHub never resends, asked for again; started with the queue's threads.
    app.extensions["agent_gate_redelivery"] = (
        RedeliverySweep(
            store=store,
            github=github,
            clock=clock,
            events=EVENTS,
            interval=settings.redelivery_interval,
            window=settings.redelivery_window,
            per_sweep=settings.redelivery_max,
            queue_limit=settings.queue_max_pending,
        )
        if github is not None and settings.webhook_secret is not None
        else None
    )

    app.register_blueprint(api_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(inventory_bp)
    app.register_blueprint(webhook_bp)
    app.register_blueprint(grants_bp)
    app.register_blueprint(break_glass_bp)
    app.register_blueprint(freeze_bp)
    login.init_app(app, settings, github, session_key=grants.keys.sealing_key)
    app.register_blueprint(setup_bp)
    _register_error_handlers(app)
    request_hooks.init_app(
        app,
        probes=[_queue_probe(store, clock, settings.queue_max_pending)],
        decision_deadline=settings.decision_deadline,
    )
    app.before_request(buffer_body)  # after the request id is bound, so a refusal carries it
    for warning in settings.startup_warnings():
        log.warning(warning)
    if settings.dev_mode:
        log.warning(
            "DEVELOPMENT MODE: the gate trusts its local dev issuer (%s). Never run this in production.",
            "https://dev-issuer.agent-gate.invalid",
        )
    return app


def issuer_configs(settings: Settings) -> list[IssuerConfig]:
    configs = [
        IssuerConfig(url=i.url, jwks_url=i.jwks_url, jwks_file=i.jwks_file, label=i.url)
        for i in settings.issuers
    ]
    if settings.dev_mode:
        dev = DevIssuer(settings.data_dir)
        dev.ensure_key()
        configs.append(dev.issuer_config())
    return configs


def _flush_refusals(refusals: RefusalAudit) -> None:
    """At exit, write the refusals still being counted. Best effort: the store may be gone already,
    and so may the log's streams (one plain line on the process's stderr then, never a traceback)."""
    try:
        refusals.flush(everything=True)
    except GateError as exc:
        with contextlib.suppress(Exception):
            assert sys.__stderr__ is not None
            sys.__stderr__.write(
                f"agent-gate: the aggregated token refusals were not written at exit ({exc.code})\n"
            )


def _count_decision(decision: Decision) -> None:
    metrics().decision(decision.action, decision.permission, decision.allowed)


def _queue_probe(store: Store, clock: Callable[[], float], limit: int) -> request_hooks.Probe:
    """The webhook queue's depth and age, read from the store at each scrape."""

    def probe() -> list[GaugeMetricFamily]:
        try:
            stats = store.queue_stats(now=int(clock()))
        except GateError:
            return []  # the store's failure is counted in agent_gate_store_errors_total
        families = [
            GaugeMetricFamily(
                "agent_gate_webhook_queue_depth", "Webhook jobs waiting or running.", stats.depth
            ),
            GaugeMetricFamily(
                "agent_gate_webhook_queue_oldest_age_seconds",
                "Seconds since the oldest waiting or running webhook job was queued (0 when none).",
                stats.oldest_age or 0,
            ),
            GaugeMetricFamily("agent_gate_webhook_queue_dead", "Webhook jobs given up on.", stats.dead),
            GaugeMetricFamily(
                "agent_gate_webhook_queue_limit",
                "The bound of pending webhook jobs (GATE_QUEUE_MAX_PENDING); past it the webhook answers 503.",
                limit,
            ),
        ]
        return families

    return probe


# Paths a program calls: they answer JSON whatever the Accept header says.
_MACHINE_PATHS = ("/v1/", "/.well-known/", "/metrics", "/healthz", "/readyz", "/openapi")


def _wants_html() -> bool:
    """A browser on a page path: its Accept header prefers HTML to JSON (a script's does not)."""
    if request.path.startswith(_MACHINE_PATHS):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "text/html"
        and request.accept_mimetypes["text/html"] > request.accept_mimetypes["application/json"]
    )


def _error_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    if _wants_html():
        # The same error for a person in a browser: the message and code, no script, nothing loaded.
        error = body["errors"][0] if body.get("errors") else {"code": "error"}
        page = render_template(
            "error.html", status=status, title=HTTP_STATUS_CODES.get(status, "Error"),
            message=body.get("message", ""), code=error.get("code", "error"),
        )  # fmt: skip
        response = Response(page, status=status, mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
    else:
        response = jsonify(body)
        response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(GateError)
    def _gate_error(exc: GateError) -> Response:
        metrics().refusals.labels(exc.code).inc()
        if exc.status >= 500:
            log.warning("%s (%s): %s", exc.code, exc.status, exc.message)
        return _error_response(exc.to_dict(), exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status >= 500:
            # An unexpected exception: log its type, never answer with it.
            original = getattr(exc, "original_exception", None)
            log.error(
                "internal error: %s", type(original).__name__ if original else exc.name, exc_info=original
            )
            message = "the gate hit an internal error; the request was not allowed. Retry, and report it if it persists"
        else:
            message = exc.description or exc.name
        code = _HTTP_CODES.get(status, "http-error")
        metrics().refusals.labels(code).inc()
        # Keep the headers the exception carries (405's Allow, 401's WWW-Authenticate...).
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return _error_response(
            {"message": message, "errors": [{"code": code, "description": message}]}, status, headers
        )
