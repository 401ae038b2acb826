"""The one gunicorn configuration: ``agent-gate serve``, the Dockerfile and the README's production
command (``gunicorn -c python:app.gunicorn_conf 'app:create_app()'``) all run the gate with it.

Environment overrides (docs/configuration.md): ``GATE_BIND`` (default ``0.0.0.0:8080``),
``GATE_WORKERS`` (default: the number of cores, at least 2), ``GATE_THREADS`` (default 16).

Why these settings:

- **Worker model: threads** (:class:`app.server.GateWorker`, gunicorn's gthread worker with a read
  deadline). A sync worker is held by one slow client for the whole of gunicorn's timeout: two
  clients trickling a body stalled both workers, ``/healthz`` included. Here a connection holds a
  thread only while it has bytes to read, and never more than ``REQUEST_READ_SECONDS`` to deliver
  its request line, headers and body; the other threads and ``/healthz`` keep answering. The cost:
  CPU-bound decisions see a worse p99 than with sync workers (docs/configuration.md), which the
  protection is worth. A reverse proxy in front should still buffer requests (nginx
  ``proxy_request_buffering on``, ``client_body_timeout``, ``client_header_timeout``).
- **Limits**: gunicorn's own header limits sit above the gate's (16 KiB Authorization), so the gate
  answers its own ``token-too-large``; anything gunicorn still refuses is answered in the gate's JSON
  error shape (413 for oversized headers), never gunicorn's HTML.
- **Store set-up before fork** happens in ``agent-gate serve`` (app/server.py), once in the master;
  each worker then starts its webhook queue threads (:class:`app.server.GateWorker`).
- **Metrics**: a fresh ``PROMETHEUS_MULTIPROC_DIR`` per start; a dead worker's files are released.
- **Logs**: JSON lines for gunicorn's error log and access log (:class:`app.server.JsonAccessLogger`),
  the same shape as the gate's own; the access log never shows a query string or a header.
- **Control socket off** (gunicorn >= 24 opens one in ``$HOME/.gunicorn`` by default; the image's
  user has no home, and nothing here uses it).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from typing import Any


def bind_default() -> str:
    return os.environ.get("GATE_BIND", "0.0.0.0:8080")  # a container listens on all interfaces


def workers_default() -> int:
    configured = os.environ.get("GATE_WORKERS", "").strip()
    return (
        int(configured)
        if configured.isdigit() and int(configured) > 0
        else max(2, multiprocessing.cpu_count())
    )


def threads_default() -> int:
    configured = os.environ.get("GATE_THREADS", "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else 16


def metrics_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


bind = [bind_default()]
workers = workers_default()
worker_class = "app.server.GateWorker"
threads = threads_default()
# The worker's heartbeat; a decision has its own deadline below this.
timeout = 30
graceful_timeout = 10
keepalive = 5
# Above the gate's own limits (16 KiB Authorization, 64 KiB body), so the gate's errors answer first.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 32 * 1024
# Built in each worker after the fork: every process opens its own store connections.
preload_app = False
control_socket_disable = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # heartbeat files, tmpfs

accesslog = "-"
errorlog = "-"
logger_class = "app.server.JsonAccessLogger"
loglevel = os.environ.get("GATE_LOG_LEVEL", "info").lower()


def on_starting(server: Any) -> None:
    """A fresh, empty directory for this run's multiprocess metrics, before any worker starts."""
    directory = metrics_dir()
    if directory is None:
        directory = tempfile.mkdtemp(prefix="agent-gate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    else:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # untyped upstream
