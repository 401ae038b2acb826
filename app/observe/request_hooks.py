"""The Flask side of observability: the request id on every request and answer, the decision latency,
and the answer of ``GET /metrics`` (:func:`metrics_response`; the route is the HTTP face's,
app/web/decisions.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, Response, g, request
from prometheus_client.core import GaugeMetricFamily

from app.observe import deadline
from app.observe.logs import bind_request_id, request_id_from, reset_request_id
from app.observe.metrics import CONTENT_TYPE_LATEST, metrics, render

REQUEST_ID_HEADER = "X-Request-Id"
# The endpoint whose latency the decision histogram measures.
DECISION_ENDPOINT = "api.create_decision"

Probe = Callable[[], list[GaugeMetricFamily]]
_PROBES = "agent_gate_metric_probes"


def init_app(
    app: Flask, *, probes: list[Probe] | None = None, decision_deadline: float | None = None
) -> None:
    """Install the request-id hooks and the decision deadline on ``app``; keep the scrape-time
    ``probes`` for :func:`metrics_response`."""
    app.extensions[_PROBES] = list(probes or [])

    @app.before_request
    def _begin() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_token = bind_request_id(g.request_id)
        g.request_started = time.perf_counter()
        if decision_deadline is not None and request.endpoint == DECISION_ENDPOINT:
            g.deadline_token = deadline.bind(decision_deadline)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        if request.endpoint == DECISION_ENDPOINT and started is not None:
            metrics().decision_seconds.observe(time.perf_counter() - started)
        return response

    @app.teardown_request
    def _unbind(_exc: BaseException | None) -> None:
        bound = g.pop("deadline_token", None)
        if bound is not None:
            deadline.reset(bound)
        token = g.pop("request_id_token", None)
        if token is not None:
            reset_request_id(token)


def metrics_response(app: Flask) -> Response:
    """Prometheus' text format: every worker's values, and what ``app``'s probes read at scrape time."""
    answer = Response(render(app.extensions.get(_PROBES, [])), content_type=CONTENT_TYPE_LATEST)
    answer.headers["Cache-Control"] = "no-store"
    return answer
