"""Fault drills against the real server: a broken policy and a SIGHUP or a dead worker must not take
the gate down (issue 12, section 7)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.test_server_edges import _free_port

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _wait(url: str, *, until: float = 30.0) -> requests.Response:
    deadline = time.monotonic() + until
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_broken_policy_then_sighup_and_a_killed_worker_leave_the_gate_deciding(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "GATE_DATA_DIR": str(tmp_path / "var"),
        "GATE_POLICY_PATH": str(policies),
        "GATE_WORKERS": "2",
        "GATE_THREADS": "2",
        "GATE_POLICY_CHECK_INTERVAL": "0",
    }
    env.pop("GATE_DEV_MODE", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    def ask_read() -> int:
        token = subprocess.run(
            [sys.executable, "-m", "app.cli", "dev", "token"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        answer = requests.post(
            f"{url}/v1/decisions",
            json={"action": "read"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return answer.status_code

    with (tmp_path / "gate.log").open("w") as log:
        master = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--dev", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert _wait(f"{url}/healthz").status_code == 200
            assert ask_read() == 200
            # A half-done edit: the policy on disk no longer validates.
            (policies / "example.yml").write_text("version: 1\nowner: {login: octo-org, id: nope}\n")
            master.send_signal(signal.SIGHUP)  # what the docs recommend after an edit: new workers
            time.sleep(3)
            assert master.poll() is None, "the master must not exit"
            assert ask_read() == 200, "new workers decide with the last good policy"
            ready = _wait(f"{url}/readyz").json()
            assert "reload_error" in ready["checks"]["policy"] or "keeping" in str(ready)
            # A worker dies: its replacement boots on the last good policy too.
            workers = subprocess.run(
                ["pgrep", "-P", str(master.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            assert workers
            os.kill(int(workers[0]), signal.SIGKILL)
            time.sleep(2)
            assert master.poll() is None
            assert ask_read() == 200
            # Fixed on disk: adopted without a restart.
            shutil.copy(REPO / "policies" / "example.yml", policies / "example.yml")
            time.sleep(1.5)  # adopted once the file has been left alone for a second
            ready = _wait(f"{url}/readyz").json()
            assert ready["status"] == "ready" and "reload_error" not in ready["checks"]["policy"]
        finally:
            master.terminate()
            try:
                master.wait(timeout=15)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
