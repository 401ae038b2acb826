#!/usr/bin/env python3
"""Read decisions over HTTP: one replica on SQLite, one and two replicas on one PostgreSQL database,
against a floor (bare Flask + PyJWT verify) under the same gunicorn settings, in the same run.

A closed-loop load generator in this process (C client threads, each request with a fresh token,
HTTP keep-alive) sends the same number of requests to each set-up; printed are requests per second,
p50 and p99, and each as a ratio to the floor. This machine has 2 cores shared by the client, every
gunicorn worker and PostgreSQL: two replicas cannot add CPU that is not there, so their ratio to one
replica says what the shared database costs rather than what a second host would add.

    .venv/bin/python bench/bench_replicas.py [--requests 2000] [--concurrency 8] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tokens.devissuer import AGENT_PRESET, DevIssuer  # noqa: E402
from tests import pg  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _ready(url: str, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + path, timeout=2).status_code in (200, 405):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def load(urls: list[str], tokens: list[str], concurrency: int) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 in ms; request i goes to urls[i % len(urls)]."""
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(len(tokens)))

    def client() -> None:
        session = requests.Session()
        session.trust_env = False
        mine = []
        for i in cursor:
            start = time.perf_counter()
            r = session.post(
                f"{urls[i % len(urls)]}/v1/decisions",
                json={"action": "read"},
                headers={"Authorization": f"Bearer {tokens[i]}"},
                timeout=30,
            )
            mine.append(time.perf_counter() - start)
            if r.status_code != 200:
                raise SystemExit(f"unexpected {r.status_code}: {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    latencies.sort()
    return (
        len(latencies) / elapsed,
        statistics.median(latencies) * 1e3,
        latencies[int(len(latencies) * 0.99)] * 1e3,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers per replica")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "var"
        issuer = DevIssuer(data)
        issuer.ensure_key()
        database = pg.create_database()
        procs: list[subprocess.Popen[bytes]] = []
        base_env = {
            **os.environ,
            "GATE_DATA_DIR": str(data),
            "GATE_POLICY_PATH": str(ROOT / "policies"),
            "GATE_LOG_LEVEL": "WARNING",
        }
        base_env.pop("GATE_DEV_MODE", None)
        serve = [sys.executable, "-m", "app.cli", "serve", "--dev", "--workers", str(args.workers)]

        def gate(n: int, env: dict[str, str]) -> list[str]:
            urls = []
            for _ in range(n):
                port = _port()
                procs.append(_start([*serve, "--port", str(port)], env, tmp))
                urls.append(f"http://127.0.0.1:{port}")
            for url in urls:
                _ready(url, "/readyz")
            return urls

        def stop() -> None:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                p.wait(30)
            procs.clear()

        runs: list[tuple[str, tuple[float, float, float]]] = []
        try:
            port = _port()
            procs.append(
                _start(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "--workers",
                        str(args.workers),
                        "--worker-class",
                        "sync",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "bench.floor_app:create_app()",
                    ],
                    base_env,
                    ROOT,
                )
            )
            _ready(f"http://127.0.0.1:{port}", "/v1/decisions")
            mint = lambda: [issuer.mint(audience="agent-gate", **AGENT_PRESET) for _ in range(args.requests)]  # noqa: E731
            runs.append(
                ("floor: Flask + PyJWT verify", load([f"http://127.0.0.1:{port}"], mint(), args.concurrency))
            )
            stop()
            sqlite_env = {**base_env, "GATE_DATABASE": f"sqlite:///{tmp / 'gate.db'}"}
            runs.append(("gate, SQLite, 1 replica", load(gate(1, sqlite_env), mint(), args.concurrency)))
            stop()
            pg_env = {**base_env, "GATE_DATABASE": database}
            runs.append(("gate, PostgreSQL, 1 replica", load(gate(1, pg_env), mint(), args.concurrency)))
            stop()
            runs.append(("gate, PostgreSQL, 2 replicas", load(gate(2, pg_env), mint(), args.concurrency)))
            stop()
        finally:
            stop()
            pg.drop_database(database)
    floor = runs[0][1][0]
    print(
        f"{args.requests} read decisions, c={args.concurrency}, {args.workers} sync worker(s) per replica\n"
    )
    print(f"{'set-up':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8}")
    for name, (rps, p50, p99) in runs:
        print(f"{name:32} {rps:8.0f} {p50:8.2f} {p99:8.2f} {rps / floor:8.2f}")
    sqlite_rps, pg1, pg2 = runs[1][1][0], runs[2][1][0], runs[3][1][0]
    print(
        f"\nPostgreSQL / SQLite (1 replica): {pg1 / sqlite_rps:.2f}x; 2 replicas / 1 replica on PostgreSQL: {pg2 / pg1:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
