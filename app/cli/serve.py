"""``agent-gate serve`` (gunicorn on the app factory) and ``agent-gate worker`` (the webhook queue alone)."""

from __future__ import annotations

import argparse
import os
import sys

import app.cli.options as options
from app.errors import ConfigError


def register(sub: options.Subparsers) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gate under gunicorn",
        description=(
            "Run the gate under gunicorn with the app factory. Configuration comes from GATE_* variables "
            "(docs/configuration.md). --dev starts on embedded defaults: SQLite in ./var, the policies in "
            "./policies and a local dev issuer whose tokens `agent-gate dev token` mints."
        ),
    )
    serve.add_argument("--dev", action="store_true", help="development mode: trust the local dev issuer")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: CPU count)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run the webhook queue's workers in a process of their own",
        description=(
            "Run the durable webhook queue (merge checks, deployment protection rules) without serving HTTP. "
            "`agent-gate serve` already runs GATE_QUEUE_THREADS queue threads in each worker; run this "
            "instead (with GATE_QUEUE_THREADS=0 on the servers) to scale the queue apart. Several workers and "
            "replicas share the queue safely (leases)."
        ),
    )
    worker.add_argument("--threads", type=int, default=2, help="queue threads (default 2)")
    worker.add_argument(
        "--drain", action="store_true", help="run the jobs that are due now, then exit (for cron or a test)"
    )
    worker.set_defaults(func=cmd_worker)


def cmd_serve(args: argparse.Namespace) -> int:
    from app.server import run_gunicorn

    if args.dev:
        os.environ["GATE_DEV_MODE"] = "true"
        os.environ.setdefault("GATE_PUBLIC_URL", f"http://{args.host}:{args.port}")
        # Only dev mode may fall back to the shipped example; production names its policy explicitly.
        os.environ["GATE_POLICY_PATH"] = str(options.policy_path(None))
    settings = options.load_settings()
    if settings.dev_mode:
        from app.tokens.devissuer import DevIssuer

        DevIssuer(settings.data_dir).ensure_key()
        print(_dev_banner(args.host, args.port), file=sys.stderr)
    return run_gunicorn(settings, host=args.host, port=args.port, workers=args.workers)


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from app import create_app

    if not 1 <= args.threads <= 64:
        raise ConfigError(f"--threads: got {args.threads}, expected 1 to 64")
    app = create_app(options.load_settings())
    queue = app.extensions["agent_gate_queue"]
    if args.drain:
        print(f"ran {queue.drain()} job(s)")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    queue.start(args.threads)
    print(f"agent-gate worker: {args.threads} queue thread(s) running; SIGTERM stops them", file=sys.stderr)
    stop.wait()
    queue.stop()
    return 0


def _dev_banner(host: str, port: int) -> str:
    url = f"http://{host}:{port}"
    return f"""
agent-gate is starting in DEVELOPMENT MODE on {url}
  It trusts the local dev issuer (key in ./var): never use --dev in production.
  Try it from another terminal:
    TOKEN=$(.venv/bin/agent-gate dev token --agent)
    curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{{"action": "read"}}' {url}/v1/decisions          # 200: agents may read
    TOKEN=$(.venv/bin/agent-gate dev token --agent --environment production)
    curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{{"action": "deploy", "environment": "production"}}' {url}/v1/decisions   # 403: no approval
"""
