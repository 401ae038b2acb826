"""app/gunicorn_conf.py: the one configuration `agent-gate serve`, the Dockerfile and gunicorn use."""

from __future__ import annotations

import threading

import pytest

from app import gunicorn_conf
from app.server import REBUILD_SECONDS, Recovering, _GateApplication, gunicorn_options, start_queue


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
    start_queue(app)
    try:
        started = {t.name for t in threading.enumerate()} - before
        assert any(name.startswith("agent-gate-queue-") for name in started)
    finally:
        app.extensions["agent_gate_queue"].stop()


def _call(app, path="/v1/decisions"):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "POST"}, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


def test_a_worker_that_cannot_build_the_gate_answers_503_and_recovers_by_itself():
    now = [0.0]
    attempts = []
    built = []

    def build():
        attempts.append(now[0])
        if len(attempts) < 2:
            raise OSError("the store cannot be opened")
        return lambda environ, start_response: start_response("200 OK", []) or [b"gate"]

    app = Recovering(
        build, OSError("the store cannot be opened"), on_built=built.append, clock=lambda: now[0]
    )
    status, headers, body = _call(app)
    assert status == 503 and headers["Retry-After"] == str(int(REBUILD_SECONDS))
    assert b"gate-unavailable" in body and b"nothing was allowed" in body
    assert _call(app, "/healthz")[0] == 200  # the process lives: no restart loop
    now[0] += REBUILD_SECONDS
    assert _call(app)[0] == 503 and attempts == [REBUILD_SECONDS]  # tried again, still failing
    assert _call(app)[0] == 503 and len(attempts) == 1  # not again before the interval
    now[0] += REBUILD_SECONDS
    assert _call(app) == (200, {}, b"gate")
    assert len(built) == 1  # the queue threads start once the gate exists
