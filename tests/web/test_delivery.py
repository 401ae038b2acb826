"""An allowed decision is recorded before its answer is sent; an answer that then fails is audited.

Refusal cases first: the client gone before the server could write the answer (a real HTTP server
on loopback and a client that resets its connection while the decision is made), and credentials
that could not be issued after the decision was recorded. Then: an answer that was delivered
leaves no such record, nor does a denied one.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.decide.decision import Decision
from app.settings import Settings
from app.tokens.devissuer import DevIssuer
from tests.conftest import close_gate


def kinds(app: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(r.kind, r.payload) for r in app.extensions["agent_gate"].store.iter_audit()]


@pytest.fixture
def slow_gate(settings: Settings) -> Iterator[tuple[Any, int, Callable[..., str]]]:
    """A gate whose decisions take 0.5 s after they are recorded (a slow hook), served on loopback."""

    def slow(_decision: Decision) -> None:
        time.sleep(0.5)

    app = create_app(settings, hooks=[slow])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    issuer = DevIssuer(settings.data_dir)
    issuer.ensure_key()
    try:
        yield app, server.server_port, lambda **claims: issuer.mint(audience=settings.audience, **claims)
    finally:
        server.shutdown()
        thread.join(5)
        close_gate(app)


def _post(port: int, token: str, body: dict[str, Any], *, hang_up: bool) -> bytes:
    payload = json.dumps(body).encode()
    request = (
        f"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        if hang_up:
            time.sleep(0.2)  # the server has read the request and is deciding
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
            return b""
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def _wait_for(app: Any, kind: str, seconds: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [p for k, p in kinds(app) if k == kind]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_an_allowed_answer_the_client_was_gone_for_is_audited_as_not_delivered(slow_gate):
    app, port, mint = slow_gate
    _post(port, mint(), {"action": "read"}, hang_up=True)
    [lost] = _wait_for(app, "decision-not-delivered")
    [decided] = [p for k, p in kinds(app) if k == "decision"]
    assert decided["allowed"] is True
    assert (lost["decision_id"], lost["reason"]) == (decided["decision_id"], "client-gone")


def test_a_delivered_answer_and_a_denied_one_leave_no_such_record(slow_gate):
    app, port, mint = slow_gate
    answer = _post(port, mint(), {"action": "read"}, hang_up=False)
    assert answer.startswith(b"HTTP/1.1 200") and b'"allowed":true' in answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    _post(port, mint(), {"action": "no-such-action"}, hang_up=True)  # denied, then the client is gone
    time.sleep(1.0)
    assert [k for k, _ in kinds(app) if k == "decision-not-delivered"] == []


def test_an_allowed_decision_whose_credentials_fail_is_audited_as_not_delivered(
    app: Any, ask: Callable[..., Any], policy_file: Path
) -> None:
    from tests.conftest import TEST_POLICY
    from tests.governance.policies import write_policy

    write_policy(
        policy_file,
        TEST_POLICY.replace(
            '  - name: read-anything\n    actions: [read]\n    repositories: "*"\n',
            '  - name: read-anything\n    actions: [read]\n    repositories: "*"\n'
            "    github_permissions: {contents: read}\n    grant: {required: true}\n",
        ),
    )
    response = ask({"action": "read"})
    assert response.get_json()["errors"][0]["code"] == "github-not-configured"  # the rule needs the App
    records = kinds(app)
    [decided] = [p for k, p in records if k == "decision"]
    [lost] = [p for k, p in records if k == "decision-not-delivered"]
    assert decided["allowed"] is True
    assert (lost["decision_id"], lost["reason"]) == (decided["decision_id"], "github-not-configured")
