"""The Quick start, for real: `agent-gate serve --dev` under gunicorn, tokens from `agent-gate dev token`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("quickstart")
    port = free_port()
    env = {**os.environ, "GATE_DATA_DIR": str(workdir / "var"), "GATE_POLICY_PATH": str(REPO / "policies")}
    env.pop("GATE_DEV_MODE", None)
    log = (workdir / "gate.log").open("w")  # a file, not a pipe nobody reads while the gate runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--dev", "--port", str(port), "--workers", "2"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a worker still booting
                time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail("the gate did not start: " + (workdir / "gate.log").read_text())
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert "DEVELOPMENT MODE" in (workdir / "gate.log").read_text()


def dev_token(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "dev", "token", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ask(url: str, token: str, body: dict[str, object]) -> requests.Response:
    return requests.post(
        f"{url}/v1/decisions", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.mark.slow
def test_quick_start_under_gunicorn(gate):
    url, env = gate
    agent = ask(url, dev_token(env, "--agent"), {"action": "read"})
    assert agent.status_code == 200 and agent.json()["subject"]["agent"] is True

    denied = ask(url, dev_token(env, "--agent"), {"action": "deploy", "environment": "production"})
    assert denied.status_code == 403
    body = denied.json()
    assert [r for r in body["reasons"] if not r["ok"]] and body["remedy"]

    human = ask(url, dev_token(env, "--environment", "staging"), {"action": "deploy"})
    assert human.status_code == 200, human.json()

    token = dev_token(env)
    assert ask(url, token, {"action": "read"}).status_code == 200
    replays = [ask(url, token, {"action": "read"}) for _ in range(4)]  # spread over both workers
    assert {r.status_code for r in replays} == {401}
    assert {r.json()["errors"][0]["code"] for r in replays} == {"replayed"}

    assert requests.get(f"{url}/readyz", timeout=30).json()["status"] == "ready"
    page = requests.get(body["details_url"], timeout=30)
    assert page.status_code == 200 and "Blocked" in page.text

    verify = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0 and "ok: " in verify.stdout
