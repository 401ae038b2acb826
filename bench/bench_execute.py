#!/usr/bin/env python3
"""What a warm execute decision costs over HTTP, against an octo-sts-like token exchange in the same run.

The execute decision: ``POST /v1/decisions`` {"action": "merge", "pull_request": 12} for a PR with
one approval, warm (installation, token and the approver's standing cached; the run, PR, commits and
reviews re-validated with ETags, answered 304), served by the gate under its production gunicorn
settings (app.server.GateWorker, the same workers and threads as ``agent-gate serve``), its evidence
gathered from a fake GitHub running in a process of its own (under gunicorn, with keep-alive). The floor: an octo-sts-like exchange,
a Flask endpoint under gunicorn (gthread, the same workers and threads) that verifies the same kind of
token with PyJWT and makes one GitHub POST (an installation token, with a cached App JWT) to the
same fake GitHub. Both are driven by the same load generator (bench/loadgen.py: wrk, or client
threads without it), each request with a fresh token, at 0 ms and at a simulated GitHub latency (the
fake answers that much later).

Printed: requests per second, p50 and p99 of each, the ratios (exchange p50 / decision p50 and
decision rate / exchange rate: the target is >= 0.5x) and the GitHub calls per decision as the
decisions report them (``github_api_calls``). The machine's cores are shared by the load
generator, the servers and the fake GitHub.

    .venv/bin/python bench/bench_execute.py [--requests 1500] [--concurrency 1] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
import requests  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from gunicorn.app.base import BaseApplication  # noqa: E402

from bench.loadgen import Result, port, python_load, ready, wrk_load  # noqa: E402
from tests.fake_github import APP_ID, ReviewSpec, create_fake_github  # noqa: E402
from tests.github.conftest import BOB, HEAD, app_key_pem, base_scenario, github_settings  # noqa: E402

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - name: merge
    actions: [merge]
    repositories: "*"
    approvals: {count: 1}
...
"""
MERGE = {"action": "merge", "pull_request": 12}


def octo_sts_like(data_dir: Path, github_url: str) -> Flask:
    """Verify the workload's token, then one GitHub POST: what a token exchange does at least."""
    jwks = json.loads((data_dir / "dev-issuer-jwks.json").read_text())
    key = jwt.PyJWK(jwks["keys"][0]).key
    now = int(time.time())
    app_jwt = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}, app_key_pem(), "RS256")
    session = requests.Session()
    app = Flask("octo_sts_like")

    @app.post("/exchange")
    def exchange() -> object:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = jwt.decode(token, key, algorithms=["RS256"], audience="agent-gate")
        answer = session.post(
            f"{github_url}/app/installations/77/access_tokens",
            json={"permissions": {"contents": "read"}},
            headers={"Authorization": f"Bearer {app_jwt}", "Accept": "application/vnd.github+json"},
            timeout=10,
        )
        answer.raise_for_status()
        return jsonify({"sub": claims.get("sub"), "expires_at": answer.json()["expires_at"]})

    return app


def the_gate(tmp: Path, github_url: str) -> Flask:
    from app import create_app
    from app.evidence.gather import GitHubEvidence
    from app.github.client import GitHubClient
    from app.settings import Settings

    settings = Settings(
        dev_mode=True,
        issuers=(),
        data_dir=tmp / "data",
        policy_path=tmp / "policies",
        public_url="http://gate.test",
        log_level="ERROR",
    )
    client = GitHubClient(github_settings(github_url), backoff=0)
    return create_app(settings, github=client, evidence=GitHubEvidence(client))


class Served(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """A gunicorn server for an app built by ``factory`` in each worker, with ``options``."""

    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory, self._options = factory, options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return self._factory()


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _serve(factory: Callable[[], Flask], options: dict[str, Any]) -> None:
    _quiet()
    Served(factory, options).run()


def _fake(latency: float, bind: str) -> None:
    """The fake GitHub under gunicorn (one gthread worker: one process holds the scenario's state),
    with keep-alive, as GitHub's API has: Flask's development server would take a new connection per
    call and measure itself rather than the gate."""
    scenario = base_scenario()
    scenario.prs[12].reviews = [ReviewSpec(BOB, "APPROVED", HEAD)]
    scenario.delay = latency
    scenario.validate = (
        False  # the suite checks the answers against GitHub's schemas; here it would be the cost
    )
    options = {"bind": bind, "workers": 1, "worker_class": "gthread", "threads": 32, "keepalive": 30}
    _serve(lambda: create_fake_github(scenario), options)


@contextlib.contextmanager
def running(target: Callable[..., None], *args: Any) -> Iterator[multiprocessing.Process]:
    proc = multiprocessing.get_context("fork").Process(target=target, args=args)
    proc.start()
    try:
        yield proc
    finally:
        proc.terminate()
        proc.join(30)


def measure(latency: float, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from app.tokens.devissuer import DevIssuer

    (tmp / "policies").mkdir(exist_ok=True)
    (tmp / "policies" / "octo.yml").write_text(POLICY)
    issuer = DevIssuer(tmp / "data")
    issuer.ensure_key()
    app_key_pem()  # made once, here: every process forked below shares the App's key
    server = {
        "workers": args.workers,
        "threads": args.threads,
        "keepalive": 5,
        "accesslog": "-",
        "timeout": 30,
    }
    fake_port = port()
    github_url = f"http://127.0.0.1:{fake_port}"
    with running(_fake, latency, f"127.0.0.1:{fake_port}"):
        ready(github_url, "/app", ok=(200, 401, 403, 404))  # any answer says it listens
        gate_port, exchange_port = port(), port()
        gate_url, exchange_url = f"http://127.0.0.1:{gate_port}", f"http://127.0.0.1:{exchange_port}"
        gate_options = {
            **server,
            "bind": f"127.0.0.1:{gate_port}",
            "worker_class": "app.server.GateWorker",
            "logger_class": "app.server.JsonAccessLogger",
        }
        exchange_options = {**server, "bind": f"127.0.0.1:{exchange_port}", "worker_class": "gthread"}
        with (
            running(_serve, lambda: the_gate(tmp, github_url), gate_options),
            running(_serve, lambda: octo_sts_like(tmp / "data", github_url), exchange_options),
        ):
            ready(gate_url, "/readyz")
            ready(exchange_url, "/exchange")
            n = args.requests if latency == 0 else max(100, args.requests // 8)

            def mint(count: int) -> list[str]:
                return [issuer.mint(audience="agent-gate", sha=HEAD) for _ in range(count)]

            for token in mint(8 * args.workers):  # warm every worker: installation, token, standing, ETags
                answer = requests.post(f"{gate_url}/v1/decisions", json=MERGE, headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
                assert answer.status_code == 200 and answer.json()["allowed"], answer.text[:300]
                requests.post(f"{exchange_url}/exchange", headers={"Authorization": f"Bearer {mint(1)[0]}"}, timeout=30).raise_for_status()  # fmt: skip

            def load(
                url: str, path: str, body: dict[str, Any], count_calls: bool
            ) -> tuple[Result, float | None]:
                tokens = mint(n + args.concurrency)
                if args.client == "wrk":
                    return wrk_load(
                        [url], tokens, args.concurrency, tmp, body, path=path, count_calls=count_calls
                    )
                return python_load([url], tokens[:n], args.concurrency, body, path=path), None

            decision, calls = load(gate_url, "/v1/decisions", MERGE, True)
            exchange, _ = load(exchange_url, "/exchange", {}, False)
    return {"decision": decision, "exchange": exchange, "calls": calls, "n": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per measurement at 0 ms")
    parser.add_argument("--concurrency", type=int, default=1, help="1: latency side by side; 8: throughput")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the simulated GitHub latency")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the gate's default here)")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (the gate's default)")
    parser.add_argument(
        "--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    args = parser.parse_args()
    rows = []
    for latency in (0.0, args.latency_ms / 1000):
        with tempfile.TemporaryDirectory(prefix="agent-gate-bench-execute-") as tmpdir:
            rows.append((latency, measure(latency, args, Path(tmpdir))))
    print(
        f"warm merge decisions over HTTP, c={args.concurrency}, {args.workers} worker(s) x {args.threads} "
        f"threads, load from {args.client}, {os.cpu_count()} cores; floor: an octo-sts-like exchange "
        "(verify + one GitHub POST) to the same fake GitHub, same run\n"
    )
    print(
        f"{'GitHub latency':>14} {'n':>5} {'execute req/s':>14} {'p50':>8} {'p99':>8} {'exchange req/s':>15} "
        f"{'p50':>8} {'p99':>8} {'p50 ratio':>10} {'rate ratio':>11} {'calls/dec':>10}"
    )
    for latency, r in rows:
        (d_rate, d_p50, d_p99), (e_rate, e_p50, e_p99) = r["decision"], r["exchange"]
        calls = f"{r['calls']:.1f}" if r["calls"] is not None else "n/a"
        print(
            f"{latency * 1000:11.0f} ms {r['n']:5d} {d_rate:14.0f} {d_p50:8.2f} {d_p99:8.2f} {e_rate:15.0f} "
            f"{e_p50:8.2f} {e_p99:8.2f} {e_p50 / d_p50:9.2f}x {d_rate / e_rate:10.2f}x {calls:>10}"
        )
    print(
        "\n(p50 ratio = exchange p50 / execute p50, rate ratio = execute req/s / exchange req/s; the target"
        "\n is >= 0.5x. calls/dec: GitHub calls per decision on the request path, as the answers report them;"
        "\n check runs are posted by the queue, off the request path.)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
