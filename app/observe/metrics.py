"""Prometheus metrics, safe under gunicorn's worker processes.

Under ``agent-gate serve`` (app/gunicorn_conf.py) ``PROMETHEUS_MULTIPROC_DIR`` names a fresh
directory: each worker writes its values to files there and ``/metrics``, served by any worker,
adds up every worker's files (prometheus_client's multiprocess mode). Without it (tests, a plain
Flask server) the values live in this process.

The metrics are built on first use, not at import, so a process forked by gunicorn picks the
multiprocess value class even when the master imported prometheus_client before the directory was
set. Label values come from closed sets (catalog actions, error codes, installation ids), never from
free request input, so a caller cannot grow the series without bound.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "metrics", "render"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Decisions are fast unless they wait on GitHub; buckets span both (seconds).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


class Metrics:
    """Every metric the gate exports; one instance per process (:func:`metrics`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "agent_gate_decisions",
            "Decisions recorded, by action, permission class and outcome (allowed or denied).",
            ["action", "permission", "outcome"],
            registry=registry,
        )
        self.refusals = Counter(
            "agent_gate_refusals",
            "Requests answered with the gate's error shape, by error code (token refusals included).",
            ["code"],
            registry=registry,
        )
        self.decision_seconds = Histogram(
            "agent_gate_decision_seconds",
            "Time to answer POST /v1/decisions, refusals included (seconds).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.github_calls = Counter(
            "agent_gate_github_calls",
            "Calls to GitHub's API, by installation (or 'app') and HTTP status ('error' when unreachable).",
            ["installation", "status"],
            registry=registry,
        )
        self.github_rate_limit_remaining = Gauge(
            "agent_gate_github_rate_limit_remaining",
            "GitHub's x-ratelimit-remaining from the latest answer, by installation.",
            ["installation"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.jwks_fetches = Counter(
            "agent_gate_jwks_fetches",
            "Key-set fetches from OIDC issuers, by issuer and outcome (ok or failed).",
            ["issuer", "outcome"],
            registry=registry,
        )
        self.audit_commits = Counter(
            "agent_gate_audit_commits",
            "Durable commits of audit records (one per batch of appends that arrived together).",
            registry=registry,
        )
        self.audit_appends = Counter(
            "agent_gate_audit_appends",
            "Audit appends committed or failed; divided by agent_gate_audit_commits: the batch size.",
            registry=registry,
        )
        self.store_errors = Counter(
            "agent_gate_store_errors",
            "Store operations that failed, by the error code the gate answered.",
            ["code"],
            registry=registry,
        )

        self.clock_skew_seconds = Gauge(
            "agent_gate_clock_skew_seconds",
            "How far this replica's clock runs ahead of the database's (negative: behind), at the last check.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )

        self.webhook_deliveries = Counter(
            "agent_gate_webhook_deliveries",
            "Webhook deliveries kept or not, by what the queue answered (queued, duplicate, same-body, "
            "coalesced, queue-full).",
            ["status"],
            registry=registry,
        )
        self.redeliveries = Counter(
            "agent_gate_webhook_redeliveries",
            "Redeliveries the sweep asked GitHub for, by outcome (asked, failed, gave-up).",
            ["outcome"],
            registry=registry,
        )
        self.redelivery_sweeps = Counter(
            "agent_gate_webhook_redelivery_sweeps",
            "Redelivery sweeps, by outcome (done, skipped: another replica holds the lease or the queue "
            "is too full, failed).",
            ["outcome"],
            registry=registry,
        )

    def decision(self, action: str, permission: str | None, allowed: bool) -> None:
        # An action the catalog does not know has no permission class: label it "unknown" so a
        # caller's made-up action names never become series.
        known = permission is not None
        self.decisions.labels(
            action if known else "unknown", permission or "none", "allowed" if allowed else "denied"
        ).inc()


_lock = threading.Lock()
_current: tuple[int, Metrics] | None = None


def metrics() -> Metrics:
    """This process's metrics, built on first use (and again in a forked child)."""
    global _current
    pid = os.getpid()
    current = _current
    if current is not None and current[0] == pid:
        return current[1]
    with _lock:
        if _current is None or _current[0] != pid:
            # Chosen now, not at import: the multiprocess directory may have been set after.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # untyped upstream
            _current = (pid, Metrics(CollectorRegistry(auto_describe=True)))
        return _current[1]


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class _Scraped(Collector):
    """Gauges read at scrape time (the webhook queue lives in the store, shared by all workers)."""

    def __init__(self, probes: list[Callable[[], list[GaugeMetricFamily]]]) -> None:
        self._probes = probes

    def collect(self) -> list[GaugeMetricFamily]:
        families: list[GaugeMetricFamily] = []
        for probe in self._probes:
            families.extend(probe())
        return families


def render(probes: list[Callable[[], list[GaugeMetricFamily]]]) -> bytes:
    """The exposition text: every worker's values (or this process's) plus the scrape-time gauges."""
    registry = CollectorRegistry()
    if multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        registry = metrics().registry
    extra = CollectorRegistry()
    extra.register(_Scraped(probes))
    return generate_latest(registry) + generate_latest(extra)
