"""The Quick start, for real: `agent-gate serve --dev` under gunicorn, tokens from `agent-gate dev token`,
and the requests README's Quick start shows, read from README itself with the status each comment says."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
# In README's Quick start: a token minted, then the request sent with it and the status it answers.
_TOKEN = re.compile(r"^TOKEN=\$\(\.venv/bin/agent-gate dev token(?P<args>[^)]*)\)$", re.M)
_REQUEST = re.compile(r"-d '(?P<body>[^']*)' http://127\.0\.0\.1:8080/v1/decisions\s+# (?P<status>\d{3})")


def quick_start() -> str:
    """The shell block of README's Quick start that talks to the running gate."""
    section = (REPO / "README.md").read_text("utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return next(b for b in blocks if "/v1/decisions" in b)


def quick_start_requests() -> list[tuple[list[str], dict[str, object], int]]:
    """(dev token arguments, request body, status) for each request of the Quick start, in order."""
    text = quick_start()
    tokens = list(_TOKEN.finditer(text))
    found = []
    for request in _REQUEST.finditer(text):
        minted = [t for t in tokens if t.end() < request.start()][-1]
        found.append((shlex.split(minted["args"]), json.loads(request["body"]), int(request["status"])))
    return found


def test_the_quick_start_is_read_whole():
    assert [(args, body["action"], status) for args, body, status in quick_start_requests()] == [
        (["--agent"], "read", 200),
        (["--agent", "--environment", "production"], "deploy", 403),
        (["--environment", "staging"], "deploy", 200),
    ]


def test_the_dev_banner_shows_the_quick_starts_tokens():
    from app.cli.serve import _dev_banner

    banner = _dev_banner("127.0.0.1", 8080)
    minted = [line.strip() for line in banner.splitlines() if "dev token" in line]
    assert minted and all(line in quick_start() for line in minted)


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
    answers = [ask(url, dev_token(env, *args), body) for args, body, _ in quick_start_requests()]
    assert [a.status_code for a in answers] == [status for _, _, status in quick_start_requests()], [
        a.json() for a in answers
    ]
    agent, denied, _human = answers
    assert agent.json()["subject"]["agent"] is True
    # The agent's deploy is refused by the production rule's approval requirement, nothing else:
    # its token is the production environment's, so every other condition of the rule holds.
    body = denied.json()
    assert body["rule"] == "deploy-production", body
    assert [r["code"] for r in body["reasons"] if not r["ok"]] == ["approvals"], body["reasons"]
    assert body["remedy"]

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
