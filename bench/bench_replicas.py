#!/usr/bin/env python3
"""Read decisions over HTTP: one replica on SQLite, one and two replicas on one PostgreSQL database,
against a floor (bare Flask + PyJWT verify) under the same gunicorn settings, in the same run.

The load generator is wrk (``apt-get install wrk``; a closed loop of C keep-alive connections, each
request with a fresh token from a file, through a Lua script) or, without wrk, client threads in this
process (which then compete with the servers for the same cores). Every set-up answers the same
number of requests; printed are requests per second, p50 and p99, each set-up's ratio to the floor,
and beside them what a decision cost the store: audit appends per durable commit (the group commit's
batch, from /metrics), GitHub calls per decision, and bytes stored per decision.

This machine has 2 cores shared by the load generator, every gunicorn worker and PostgreSQL: two
replicas cannot add CPU that is not there, so their ratio to one replica says what the shared
database costs rather than what a second host would add.

    .venv/bin/python bench/bench_replicas.py [--requests 4000] [--concurrency 8] [--workers 2] [--threads 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tokens.devissuer import AGENT_PRESET, DevIssuer  # noqa: E402
from bench.loadgen import Result, port, python_load, ready, start, wrk_load  # noqa: E402
from tests import pg  # noqa: E402

READ = {"action": "read"}


def scrape(urls: list[str]) -> dict[str, float]:
    """The sums over every replica's /metrics of the counters this benchmark prints."""
    totals = dict.fromkeys(("appends", "commits", "github", "decisions"), 0.0)
    names = {
        "agent_gate_audit_appends_total": "appends",
        "agent_gate_audit_commits_total": "commits",
        "agent_gate_github_calls_total": "github",
        "agent_gate_decisions_total": "decisions",
    }
    for url in urls:
        for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
            name = line.split("{")[0].split(" ")[0]
            if name in names:
                totals[names[name]] += float(line.rsplit(" ", 1)[1])
    return totals


def sqlite_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def pg_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers per replica (the gate's default here)"
    )
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (the gate's default)")
    parser.add_argument(
        "--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    args = parser.parse_args()
    runs: list[tuple[str, Result, str]] = []
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
            "GATE_THREADS": str(args.threads),
        }
        base_env.pop("GATE_DEV_MODE", None)
        serve = [sys.executable, "-m", "app.cli", "serve", "--dev", "--workers", str(args.workers)]

        def gate(n: int, env: dict[str, str]) -> list[str]:
            urls = []
            for _ in range(n):
                free = port()
                procs.append(start([*serve, "--port", str(free)], env, tmp))
                urls.append(f"http://127.0.0.1:{free}")
            for url in urls:
                ready(url, "/readyz")
            return urls

        def stop() -> None:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
            procs.clear()

        def mint() -> list[str]:
            return [
                issuer.mint(audience="agent-gate", **AGENT_PRESET)
                for _ in range(args.requests + args.concurrency)
            ]

        def load(urls: list[str]) -> Result:
            tokens = mint()
            if args.client == "wrk":
                return wrk_load(urls, tokens, args.concurrency, tmp, READ)[0]
            return python_load(urls, tokens[: args.requests], args.concurrency, READ)

        def measured(name: str, urls: list[str], size: Callable[[], int]) -> None:
            before = size()
            result = load(urls)
            grown = size() - before
            totals = scrape(urls)
            decisions = max(totals["decisions"], 1.0)
            runs.append(
                (
                    name,
                    result,
                    f"{totals['appends'] / max(totals['commits'], 1):6.2f} {totals['github'] / decisions:6.1f} "
                    f"{grown / decisions:8.0f}",
                )
            )

        try:
            free = port()
            procs.append(
                start(
                    [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--worker-class", "gthread",
                     "--threads", str(args.threads), "--keep-alive", "5", "--access-logfile", "-",
                     "--bind", f"127.0.0.1:{free}",
                     "bench.floor_app:create_app()"],
                    base_env,
                    ROOT,
                )
            )  # fmt: skip
            ready(f"http://127.0.0.1:{free}", "/v1/decisions")
            runs.append(("floor: Flask + PyJWT verify", load([f"http://127.0.0.1:{free}"]), ""))
            stop()
            db = tmp / "gate.db"
            sqlite_env = {**base_env, "GATE_DATABASE": f"sqlite:///{db}"}
            measured("gate, SQLite, 1 replica", gate(1, sqlite_env), lambda: sqlite_bytes(db))
            stop()
            pg_env = {**base_env, "GATE_DATABASE": database}
            measured("gate, PostgreSQL, 1 replica", gate(1, pg_env), lambda: pg_bytes(database))
            stop()
            measured("gate, PostgreSQL, 2 replicas", gate(2, pg_env), lambda: pg_bytes(database))
            stop()
        finally:
            stop()
            pg.drop_database(database)
    floor = runs[0][1][0]
    print(
        f"{args.requests} read decisions, c={args.concurrency}, {args.workers} worker(s) x {args.threads} "
        f"threads per replica, load from {args.client}, {os.cpu_count()} cores\n"
    )
    print(
        f"{'set-up':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8} "
        f"{'app/cmt':>7} {'GH/dec':>6} {'B/dec':>8}"
    )
    for name, (rps, p50, p99), extra in runs:
        print(f"{name:32} {rps:8.0f} {p50:8.2f} {p99:8.2f} {rps / floor:8.2f} {extra}")
    sqlite_rps, pg1, pg2 = runs[1][1][0], runs[2][1][0], runs[3][1][0]
    print(
        f"\nPostgreSQL / SQLite (1 replica): {pg1 / sqlite_rps:.2f}x; "
        f"2 replicas / 1 replica on PostgreSQL: {pg2 / pg1:.2f}x\n"
        "app/cmt: audit appends per durable commit (group commit); GH/dec: GitHub calls per decision; "
        "B/dec: bytes the store grew per decision"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
