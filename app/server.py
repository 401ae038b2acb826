"""Run the gate under gunicorn with the one configuration in app/gunicorn_conf.py.

``agent-gate serve`` checks the policy and creates the store once in the master, then starts
gunicorn on the app factory. This module also holds what that configuration names: the worker
class that bounds slow clients (:class:`GateWorker`) and the JSON logger (:class:`JsonAccessLogger`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker

from app.observe.logs import JsonFormatter
from app.observe.memory import tune_malloc
from app.settings import Settings

_log = logging.getLogger("agent_gate.server")

# A connection has this long, from the moment a worker thread takes it, to deliver its request line,
# headers and body. A client trickling bytes is cut off then, and the thread goes back to the pool.
REQUEST_READ_SECONDS = float(os.environ.get("GATE_REQUEST_READ_TIMEOUT", "") or 10.0)
# Each write of the answer must progress within this long (a client that stops reading).
SEND_SECONDS = 10.0


class _DeadlineSocket(socket.socket):
    """A client socket whose reads share one deadline per request, and whose writes each time out."""

    read_deadline = math.inf

    @classmethod
    def adopt(cls, sock: socket.socket) -> _DeadlineSocket:
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def arm(self, seconds: float) -> None:
        self.read_deadline = time.monotonic() + seconds

    def _budget(self) -> None:
        remaining = self.read_deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the client did not deliver its request in time")
        self.settimeout(remaining)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._budget()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._budget()
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self.settimeout(SEND_SECONDS)
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(SEND_SECONDS)
        super().sendall(data, flags)


# How often a worker that could not build the gate tries again (on the next request after it).
REBUILD_SECONDS = 5.0


class Recovering:
    """The WSGI app of a worker whose gate could not be built (an unwritable store, a broken start-up).

    gunicorn stops the whole server when a worker fails to boot, and a SIGHUP, a crashed or a timed-out
    worker then takes the gate down for good. Instead the worker boots on this: ``/healthz`` says the
    process lives, everything else answers 503 in the error shape, and the gate is built again at most
    every ``REBUILD_SECONDS``; once that works every request goes to it.
    """

    def __init__(
        self, build: Any, error: BaseException, *, on_built: Any = None, clock: Any = time.monotonic
    ) -> None:
        self._build = build
        self._on_built = on_built
        self._clock = clock
        self._error = f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
        self._tried_at = clock()
        self._lock = threading.Lock()
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.app or self._rebuild()
        if app is not None:
            return app(environ, start_response)
        if environ.get("PATH_INFO") == "/healthz":
            return _json(start_response, 200, {"status": "ok", "degraded": True})
        message = (
            f"the gate could not start in this worker ({self._error}); it tries again every "
            f"{REBUILD_SECONDS:.0f} s, nothing was allowed"
        )
        body = {"message": message, "errors": [{"code": "gate-unavailable", "description": message}]}
        return _json(start_response, 503, body, retry_after=REBUILD_SECONDS)

    def _rebuild(self) -> Any:
        if self._clock() - self._tried_at < REBUILD_SECONDS or not self._lock.acquire(blocking=False):
            return None
        try:
            self._tried_at = self._clock()
            try:
                self.app = self._build()
            except Exception as exc:  # noqa: BLE001  # whatever stops the build, the worker stays up
                self._error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
                _log.warning("the gate still cannot start in this worker: %s", self._error)
            else:
                _log.warning("the gate started in this worker after an earlier failure")
                if self._on_built is not None:
                    self._on_built(self.app)
            return self.app
        finally:
            self._lock.release()


def start_queue(app: Any) -> None:
    """Run the webhook queue's threads in this worker process (``GATE_QUEUE_THREADS``, 0 for none),
    and the redelivery sweep's (one sweep at a time across workers and replicas: a store lease)."""
    queue = app.extensions.get("agent_gate_queue")
    threads = app.extensions["agent_gate"].settings.queue_threads
    if queue is not None and threads > 0:
        queue.start(threads)
    sweep = app.extensions.get("agent_gate_redelivery")
    if sweep is not None:
        sweep.start()


def _json(
    start_response: Any, status: int, body: dict[str, Any], *, retry_after: float | None = None
) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    if retry_after is not None:
        headers.append(("Retry-After", str(math.ceil(retry_after))))
    reason = {200: "OK", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", headers)
    return [data]


class GateWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's threaded worker with a read deadline per request, JSON answers for what gunicorn
    itself refuses (oversized headers answer the gate's 413, never gunicorn's HTML 431), and a boot
    that never fails (:class:`Recovering`)."""

    def load_wsgi(self) -> None:
        # Before the first request: large bodies go back to the system when freed (app/observe/memory.py).
        if tune_malloc():
            self.log.info(
                "worker %s: glibc malloc thresholds fixed (large buffers are returned when freed)", self.pid
            )
        try:
            self.wsgi = self.app.wsgi()
        except Exception as exc:  # noqa: BLE001  # a failed boot would stop the whole server
            self.log.error(
                "the gate could not start in worker %s: %s; answering 503 until it can", self.pid, exc
            )
            self.wsgi = Recovering(self.app.wsgi, exc, on_built=start_queue)
        else:
            start_queue(self.wsgi)

    def enqueue_req(self, conn: Any) -> None:
        if not isinstance(conn.sock, _DeadlineSocket):
            conn.sock = _DeadlineSocket.adopt(conn.sock)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        if isinstance(conn.sock, _DeadlineSocket):
            conn.sock.arm(REQUEST_READ_SECONDS)
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, LimitRequestHeaders | LimitRequestLine):
            self.log.warning("refused a request from %s: %s", (addr or ("",))[0], exc)
            _write_json_error(
                client,
                413,
                "headers-too-large",
                "the request line or headers are over the gate's limits (a GitHub OIDC token is about 1-2 KB)",
            )
            return
        if isinstance(exc, TimeoutError):
            self.log.info("closed a connection from %s: %s", (addr or ("",))[0], exc)
            _write_json_error(client, 408, "request-timeout", "the request was not delivered in time")
            return
        super().handle_error(req, client, addr, exc)


def _write_json_error(client: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"message": message, "errors": [{"code": code, "description": message}]}).encode()
    reason = {408: "Request Timeout", 413: "Content Too Large"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    try:
        client.settimeout(SEND_SECONDS)
        socket.socket.sendall(client, head + body)
    except OSError:
        pass  # the client is gone; nothing to tell it


class JsonAccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's error and access logs as JSON lines, in the shape of the gate's own logs.

    An access line names the method, the path without its query string, the status, the size, the
    duration and the request id; never a header or a query string, so no token reaches it.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.cfg.accesslog:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = {str(k).lower(): v for k, v in (resp.headers or [])}
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "message": f"{environ.get('REQUEST_METHOD', '-')} {environ.get('PATH_INFO', '-')} {status}",
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status) if str(status).isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "remote": environ.get("REMOTE_ADDR"),
        }
        request_id = headers.get("x-request-id")
        if request_id:
            entry["request_id"] = request_id
        try:
            self.access_log.info(json.dumps(entry, ensure_ascii=True))
        except Exception:  # noqa: BLE001  # logging must never break an answer
            self.error("could not write an access log line")


class _GateApplication(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        from app import gunicorn_conf

        for key, value in vars(gunicorn_conf).items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Built in each worker (no preload): every process opens its own store connections.
        from app import create_app

        return create_app()


def gunicorn_options(host: str, port: int, workers: int | None) -> dict[str, Any]:
    """What ``agent-gate serve`` adds to app/gunicorn_conf.py: where to listen, and how many workers."""
    options: dict[str, Any] = {"bind": [f"{host}:{port}"]}
    if workers:
        options["workers"] = workers
    return options


def run_gunicorn(settings: Settings, *, host: str, port: int, workers: int | None = None) -> int:
    # Validate the configuration and the policy once in the arbiter, so a broken start-up fails
    # with one clear message instead of N crashing workers.
    from app.errors import ConfigError, GateError
    from app.policy.loader import load_policies

    try:
        load_policies(settings.policy_path)
    except GateError as exc:
        # The image ships no policy: say what to mount, not only what is missing.
        raise ConfigError(
            f"{exc.message}. The gate does not start without a valid policy: put your org's policy files "
            f"at {settings.policy_path} (GATE_POLICY_PATH), e.g. mount them at /etc/agent-gate/policies "
            "in the container; `agent-gate serve --dev` runs the example policy"
        ) from exc
    # Create or upgrade the store once here, before the workers fork, so they never race to set up a
    # fresh file, and a schema newer than this gate knows stops the start-up with one message.
    from app.store.opener import open_store

    open_store(settings.database_url, pool_size=1).close()
    _GateApplication(gunicorn_options(host, port, workers)).run()
    return 0
