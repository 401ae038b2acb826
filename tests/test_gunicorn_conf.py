"""app/gunicorn_conf.py: the one configuration `agent-gate serve`, the Dockerfile and gunicorn use."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from app import gunicorn_conf
from app.server import _GateApplication, gunicorn_options


def test_serve_runs_gunicorn_with_the_shared_configuration():
    application = _GateApplication(gunicorn_options("127.0.0.1", 9999, None))
    cfg = application.cfg
    assert cfg.worker_class_str == "app.server.GateWorker"
    assert cfg.threads == gunicorn_conf.threads and cfg.workers == gunicorn_conf.workers
    assert cfg.control_socket_disable is True
    assert cfg.logger_class.__name__ == "JsonAccessLogger"
    assert cfg.limit_request_field_size > 16 * 1024  # above the gate's own Authorization limit
    assert cfg.bind == ["127.0.0.1:9999"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3), ("", None), ("0", None), ("many", None)],
    ids=["set", "unset", "zero", "junk"],
)
def test_worker_count_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("GATE_WORKERS", value)
    workers = gunicorn_conf.workers_default()
    assert workers == expected if expected else workers >= 2


def test_each_worker_starts_its_webhook_queue_threads(app):
    before = {t.name for t in threading.enumerate()}
    gunicorn_conf.post_worker_init(SimpleNamespace(wsgi=app))
    try:
        started = {t.name for t in threading.enumerate()} - before
        assert any(name.startswith("agent-gate-queue-") for name in started)
    finally:
        app.extensions["agent_gate_queue"].stop()
