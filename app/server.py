"""Run the gate under gunicorn, with the app factory, from ``agent-gate serve``.

Production may equally run ``gunicorn --workers 2 --bind 0.0.0.0:8080 'app:create_app()'``
(see the Dockerfile); this wrapper exists so the Quick start needs no extra command.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from gunicorn.app.base import BaseApplication

from app.settings import Settings


class _GateApplication(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Built in each worker (no preload): every process opens its own store connections.
        from app import create_app

        return create_app()


def _start_queue(worker: Any) -> None:
    """gunicorn's post_worker_init: run the webhook queue's threads in this worker process."""
    queue = worker.wsgi.extensions.get("agent_gate_queue")
    threads = worker.wsgi.extensions["agent_gate"].settings.queue_threads
    if queue is not None and threads > 0:
        queue.start(threads)


def gunicorn_options(host: str, port: int, workers: int | None) -> dict[str, Any]:
    return {
        "post_worker_init": _start_queue,
        "bind": f"{host}:{port}",
        # Decisions are CPU-bound or wait on GitHub; sync workers = cores (docs/configuration.md).
        "workers": workers or max(2, multiprocessing.cpu_count()),
        "worker_class": "sync",
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": "-",
        # The access log never shows headers, so the bearer token stays out of it.
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
    }


def run_gunicorn(settings: Settings, *, host: str, port: int, workers: int | None = None) -> int:
    # Validate the configuration and the policy once in the arbiter, so a broken start-up fails
    # with one clear message instead of N crashing workers.
    from app.policy.loader import load_policies

    load_policies(settings.policy_path)
    # Create or upgrade the store once here, before the workers fork, so they never race to set up a
    # fresh file, and a schema newer than this gate knows stops the start-up with one message.
    from app.store.opener import open_store

    open_store(settings.database_url, pool_size=1).close()
    _GateApplication(gunicorn_options(host, port, workers)).run()
    return 0
