"""The gate under its real server (`agent-gate serve`, app/gunicorn_conf.py), probed with raw sockets:
slow clients, oversized headers and bodies, the access log, metrics across workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
READ_TIMEOUT = 2.0  # GATE_REQUEST_READ_TIMEOUT for this server: a short read deadline keeps the test fast

pytestmark = pytest.mark.slow


@dataclass
class Served:
    host: str
    port: int
    log: Path
    home: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("served")
    port = _free_port()
    env = {
        **os.environ,
        "HOME": str(workdir),
        "GATE_DATA_DIR": str(workdir / "var"),
        "GATE_POLICY_PATH": str(REPO / "policies"),
        "GATE_WORKERS": "2",
        "GATE_THREADS": "4",
        "GATE_REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
    }
    env.pop("GATE_DEV_MODE", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = workdir / "gate.log"
    with log_path.open("w") as log:  # a file, not a pipe nobody reads while the gate runs
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--dev", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            else:
                pytest.fail("the gate did not start: " + log_path.read_text())
            yield Served("127.0.0.1", port, log_path, workdir)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _raw(
    served: Served, data: bytes, *, timeout: float = 10.0
) -> tuple[int, dict[str, object] | None, bytes]:
    """Send ``data`` on a fresh connection; the status and the JSON body of the answer."""
    with socket.create_connection((served.host, served.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return status, parsed, head


def _trickle(served: Served, stop: threading.Event, outcome: list[int]) -> None:
    """An unauthenticated client that sends its headers, then one body byte every half second."""
    with socket.create_connection((served.host, served.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/decisions HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        try:
            while not stop.is_set():
                sock.sendall(b" ")
                if stop.wait(0.5):
                    break
                sock.setblocking(False)
                try:
                    answer = sock.recv(4096)
                except BlockingIOError:
                    answer = b""
                finally:
                    sock.setblocking(True)
                if answer:
                    outcome.append(int(answer.split(b" ", 2)[1]))
                    return
        except OSError:
            outcome.append(-1)  # the server closed the connection


def test_slow_clients_do_not_stall_the_gate(served: Served) -> None:
    # Three trickling clients: with sync workers, two were enough to stop /healthz until gunicorn's
    # 30 s timeout. Here each holds one of a worker's threads (4 in this test, 16 by default), and only
    # until the read deadline, however the connections are spread over the two workers.
    stop = threading.Event()
    outcomes: list[int] = []
    clients = [threading.Thread(target=_trickle, args=(served, stop, outcomes)) for _ in range(3)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - started < 1.0
            time.sleep(0.2)
        # Each trickler is cut off at the read deadline, answered in the gate's error shape.
        for client in clients:
            client.join(timeout=READ_TIMEOUT + 10)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=5)
    assert outcomes and all(code in {408, -1} for code in outcomes), outcomes
    assert 408 in outcomes


def test_oversized_headers_answer_the_gates_json_413(served: Served) -> None:
    status, body, head = _raw(
        served,
        b"GET /healthz HTTP/1.1\r\nHost: gate\r\nX-Padding: " + b"a" * (40 * 1024) + b"\r\n\r\n",
    )
    assert status == 413, head
    assert b"application/json" in head
    assert body is not None and body["errors"][0]["code"] == "headers-too-large"  # type: ignore[index]


def test_an_oversized_token_is_refused_by_the_gate_itself(served: Served) -> None:
    answer = requests.post(
        f"{served.url}/v1/decisions",
        json={"action": "read"},
        headers={"Authorization": "Bearer " + "a" * (20 * 1024)},
        timeout=10,
    )
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["code"] == "token-too-large"


def test_a_chunked_body_over_the_limit_is_refused_not_cut(served: Served) -> None:
    padding = b'{"action": "read"' + b" " * (64 * 1024) + b', "garbage": true}'
    chunks = b"".join(
        f"{len(padding[i : i + 8192]):x}\r\n".encode() + padding[i : i + 8192] + b"\r\n"
        for i in range(0, len(padding), 8192)
    )
    status, body, head = _raw(
        served,
        b"POST /v1/decisions HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert status == 413, head
    assert body is not None and body["errors"][0]["code"] == "payload-too-large"  # type: ignore[index]


def test_a_chunked_body_within_the_limit_is_read_whole(served: Served) -> None:
    payload = b'{"action": "read"}'
    status, body, head = _raw(
        served,
        b"POST /v1/decisions HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + f"{len(payload):x}\r\n".encode()
        + payload
        + b"\r\n0\r\n\r\n",
    )
    assert status == 401, head  # parsed whole; refused for its missing token, not for its body
    assert body is not None and body["errors"][0]["code"] == "missing-token"  # type: ignore[index]


def test_the_access_log_is_json_with_the_request_id_and_never_a_query_string(served: Served) -> None:
    secret = "eyJhbGciOiJSUzI1NiJ9.secret-token-in-the-query.sig"
    answer = requests.post(
        f"{served.url}/v1/decisions?access_token={secret}",
        json={"action": "read"},
        headers={"X-Request-Id": "trace-access-log"},
        timeout=10,
    )
    assert answer.headers["X-Request-Id"] == "trace-access-log"
    time.sleep(0.3)
    text = served.log.read_text()
    assert secret not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [
        e for e in lines if e.get("logger") == "gunicorn.access" and e.get("request_id") == "trace-access-log"
    ]
    assert len(access) == 1
    assert (
        access[0]["path"] == "/v1/decisions" and access[0]["status"] == 401 and access[0]["method"] == "POST"
    )


def test_metrics_add_up_every_worker(served: Served) -> None:
    for _ in range(6):  # spread over both workers
        requests.post(f"{served.url}/v1/decisions", json={"action": "read"}, timeout=10)
    text = requests.get(f"{served.url}/metrics", timeout=10).text
    refused = [
        line
        for line in text.splitlines()
        if line.startswith('agent_gate_refusals_total{code="missing-token"}')
    ]
    assert refused and float(refused[0].split()[-1]) >= 6


def test_no_control_socket_is_opened(served: Served) -> None:
    assert not (served.home / ".gunicorn").exists()


def test_every_worker_fixes_glibcs_malloc_thresholds_before_serving(served: Served) -> None:
    # What kept a worker's memory growing under floods of large bodies (app/observe/memory.py).
    lines = [line for line in served.log.read_text().splitlines() if "glibc malloc thresholds fixed" in line]
    assert len(lines) >= 2, served.log.read_text()[-2000:]
