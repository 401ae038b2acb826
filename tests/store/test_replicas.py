"""Several replicas for real: three `agent-gate serve` processes on one PostgreSQL database.

Every token is sent to two replicas at once: exactly one accepts it, the chain verifies, and the
allowed answers the clients saw equal the allowed decisions in the audit log. The database is reached
through a TCP proxy in this process, so "PostgreSQL stopped" is a cut of this test's connections only
(the server is shared with other test runs). One replica is killed with SIGKILL mid-flood.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from app.store.postgres import PostgresStore
from app.tokens.devissuer import AGENT_PRESET, DevIssuer
from tests import pg
from tests.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@dataclass
class Replicas:
    urls: list[str]
    procs: list[subprocess.Popen[bytes]]
    proxy: TcpProxy
    store_url: str  # direct, not through the proxy
    issuer: DevIssuer

    def token(self) -> str:
        return self.issuer.mint(audience="agent-gate", **AGENT_PRESET)

    def allowed_in_audit(self) -> int:
        store = PostgresStore(self.store_url)
        try:
            report = store.verify_audit()
            assert report.ok, report.problem
            return sum(1 for r in store.iter_audit() if r.kind == "decision" and r.payload.get("allowed"))
        finally:
            store.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def replicas(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    schema, store_url = pg.create_schema(pg_database)
    parts = urlsplit(store_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}"))
    workdir = tmp_path_factory.mktemp("replicas")
    env = {
        **os.environ,
        "GATE_DATA_DIR": str(workdir / "var"),  # the dev issuer's key, shared by the replicas
        "GATE_POLICY_PATH": str(REPO / "policies"),
        "GATE_DATABASE": proxied,
    }
    env.pop("GATE_DEV_MODE", None)
    DevIssuer(workdir / "var").ensure_key()
    ports = [_free_port() for _ in range(3)]
    procs = []
    logs = []
    for port in ports:
        log = (workdir / f"gate-{port}.log").open("w")  # a file, not a pipe nobody reads
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--dev", "--port", str(port), "--workers", "1"],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL takes master and worker
            )
        )
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url in urls:
            _wait_ready(url, 60, workdir)
        yield Replicas(urls, procs, proxy, store_url, DevIssuer(workdir / "var"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()
        proxy.close()
        pg.drop_schema(pg_database, schema)


def _wait_ready(url: str, seconds: float, workdir: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    logs = "".join(p.read_text() for p in workdir.glob("*.log")) if workdir else ""
    pytest.fail(f"{url} did not become ready: {logs[-3000:]}")


def _ask(url: str, token: str) -> int:
    try:
        return requests.post(
            f"{url}/v1/decisions",
            json={"action": "read"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).status_code
    except requests.RequestException:
        return 0  # no answer (a killed replica)


def _flood(replicas: Replicas, tokens: int, targets: list[int]) -> list[list[int]]:
    """Each token to two of ``targets`` at once; the statuses each token got."""
    minted = [replicas.token() for _ in range(tokens)]
    pairs = [(targets[i % len(targets)], targets[(i + 1) % len(targets)]) for i in range(tokens)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            [pool.submit(_ask, replicas.urls[a], tok), pool.submit(_ask, replicas.urls[b], tok)]
            for tok, (a, b) in zip(minted, pairs, strict=True)
        ]
        return [[f.result() for f in pair] for pair in futures]


def test_every_token_sent_to_two_replicas_is_accepted_exactly_once(replicas: Replicas) -> None:
    before = replicas.allowed_in_audit()
    answers = _flood(replicas, 45, [0, 1, 2])
    assert all(sorted(statuses) == [200, 401] for statuses in answers), answers
    assert replicas.allowed_in_audit() - before == 45, "one allowed record per allowed answer"


def test_the_database_gone_is_503_and_not_ready_until_it_is_back(replicas: Replicas) -> None:
    before = replicas.allowed_in_audit()
    replicas.proxy.cut()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda u: _ask(u, replicas.token()), replicas.urls * 2))
            ready = list(pool.map(lambda u: requests.get(f"{u}/readyz", timeout=30), replicas.urls))
        assert statuses == [503] * 6, "never an allow without its audit record"
        assert [(r.status_code, r.json()["status"]) for r in ready] == [(503, "not-ready")] * 3
        assert all(not r.json()["checks"]["store"]["ok"] for r in ready)
    finally:
        replicas.proxy.restore()
    for url in replicas.urls:  # service resumes by itself: no restart, no operator
        _wait_ready(url, 30)
    answers = _flood(replicas, 12, [0, 1, 2])
    assert all(sorted(statuses) == [200, 401] for statuses in answers), answers
    assert replicas.allowed_in_audit() - before == 12


def test_a_replica_killed_mid_flood_leaves_the_others_answering(replicas: Replicas) -> None:
    before = replicas.allowed_in_audit()
    with ThreadPoolExecutor(max_workers=1) as background:
        flood = background.submit(_flood, replicas, 40, [0, 1, 2])
        time.sleep(0.3)
        os.killpg(replicas.procs[2].pid, signal.SIGKILL)
        answers = flood.result(timeout=120)
    replicas.procs[2].wait(timeout=10)
    allowed = sum(s.count(200) for s in answers)
    assert all(s.count(200) <= 1 for s in answers), "never accepted twice"
    after = _flood(replicas, 12, [0, 1])  # the survivors keep answering
    assert all(sorted(statuses) == [200, 401] for statuses in after), after
    recorded = replicas.allowed_in_audit() - before
    # The killed replica may have committed a decision whose answer it never sent: a record without
    # an answer is possible, an answer without a record never.
    assert allowed + 12 <= recorded <= allowed + 12 + 8
