#!/usr/bin/env python3
"""What the store costs per read decision, on SQLite and on PostgreSQL, measured in the same run.

For each backend: an in-process gate (Flask test client, the dev issuer, a fresh token per request)
answers N read decisions; printed are the median and p99 time per decision, the statements and
commits the store ran per decision, and the bytes the store grew per decision (SQLite: the file after
a WAL checkpoint; PostgreSQL: the tables and indexes of the gate's schema). Then the audit chain's
serialisation on PostgreSQL: appends per second from 1 and from 4 threads (the advisory lock makes
them queue; the ratio is the lock's cost).

    .venv/bin/python bench/bench_store.py [--n 1000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from app import create_app
from app.settings import Settings
from app.store.base import Store
from app.store.postgres import PostgresStore
from app.store.sqlite import SQLiteStore
from app.tokens.devissuer import AGENT_PRESET, DevIssuer
from tests import pg
from tests.builders import POLICY_TEXT


def _pg_counters(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _pg_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _sqlite_bytes(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


def run(name: str, make_store: Any, tmp: Path, n: int, counters: Any, size: Any) -> None:
    """``make_store`` opens a store; each is closed before counters are read (PostgreSQL reports a
    session's statistics when it ends)."""
    issuer = DevIssuer(tmp)
    settings = Settings(dev_mode=True, issuers=(), data_dir=tmp, policy_path=tmp / "p", log_level="ERROR")
    tokens = [issuer.mint(audience="agent-gate", **AGENT_PRESET) for _ in range(n + 50)]

    def ask(client: Any, token: str) -> None:
        answer = client.post(
            "/v1/decisions", json={"action": "read"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.get_json()

    warm = make_store()
    client = create_app(settings, store=warm).test_client()
    for token in tokens[:50]:  # keys loaded, tables created, first pages allocated
        ask(client, token)
    warm.close()
    bytes0 = size()
    statements0, commits0 = counters()
    store = make_store()
    client = create_app(settings, store=store).test_client()
    samples = []
    for token in tokens[50:]:
        start = time.perf_counter()
        ask(client, token)
        samples.append(time.perf_counter() - start)
    store.close()
    time.sleep(0.5)  # the server has processed the sessions' ends
    statements1, commits1 = counters()
    grown = size() - bytes0
    samples.sort()
    print(
        f"{name:11} median {statistics.median(samples) * 1e3:6.2f} ms  p99 {samples[int(len(samples) * 0.99)] * 1e3:6.2f} ms  "
        f"{(statements1 - statements0) / n:5.1f} {counters.unit}/decision  "
        f"{(commits1 - commits0) / n:4.1f} commits/decision  {grown / n:7.0f} bytes/decision"
    )


def audit_throughput(url: str, threads: int, seconds: float = 2.0) -> float:
    stores = [PostgresStore(url) for _ in range(threads)]
    done = [0] * threads
    stop = time.monotonic() + seconds

    def append(i: int) -> None:
        while time.monotonic() < stop:
            stores[i].record_decision(f"d-{i}-{done[i]}", {"allowed": True}, "decision", {"i": done[i]})
            done[i] += 1

    workers = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for s in stores:
        s.close()
    return sum(done) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="decisions per backend")
    args = parser.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "p").mkdir()
        (tmp / "p" / "o.yml").write_text(POLICY_TEXT)

        db = tmp / "gate.db"
        traced: list[int] = [0, 0]

        def trace(statement: str) -> None:
            traced[0] += 1
            # A statement outside BEGIN ... COMMIT commits by itself (autocommit).
            traced[1] += statement.startswith("COMMIT") or (
                statement.startswith(("INSERT", "UPDATE", "DELETE")) and not in_tx[0]
            )
            if statement.startswith("BEGIN"):
                in_tx[0] = True
            elif statement.startswith(("COMMIT", "ROLLBACK")):
                in_tx[0] = False

        in_tx = [False]

        def sqlite_store() -> Store:
            store = SQLiteStore(db)
            store._db.get().set_trace_callback(trace)
            return store

        def sqlite_counters() -> tuple[int, int]:
            return traced[0], traced[1]

        sqlite_counters.unit = "statements"  # type: ignore[attr-defined]
        run("SQLite", sqlite_store, tmp, n, sqlite_counters, lambda: _sqlite_bytes(db))

        url = pg.create_database()
        try:

            def pg_counters() -> tuple[int, int]:
                commits, rows = _pg_counters(url)
                return rows, commits

            pg_counters.unit = "rows written"  # type: ignore[attr-defined]
            run("PostgreSQL", lambda: PostgresStore(url), tmp, n, pg_counters, lambda: _pg_bytes(url))
            one = audit_throughput(url, 1)
            four = audit_throughput(url, 4)
            print(
                f"\nPostgreSQL decision records (audit + page, one transaction): {one:6.0f}/s from 1 thread, "
                f"{four:6.0f}/s from 4 threads ({four / one:.2f}x: the audit lock serialises appends)"
            )
        finally:
            pg.drop_database(url)
    print(
        "\n(SQLite: statements and commits seen by the connection's trace callback; PostgreSQL: rows "
        "written and commits from pg_stat_database, including this script's two statistics queries.)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
