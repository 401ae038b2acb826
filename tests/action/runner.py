"""A simulated GitHub Actions runner: runs action.yml's composite steps exactly as written.

It parses action/action.yml, evaluates the `${{ inputs.* }}` expressions of each step's `env:`
(the only expressions the action uses there), and runs each `run:` with that env under its `shell`,
with the runner's files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH) and a loopback
token endpoint standing in for ACTIONS_ID_TOKEN_REQUEST_URL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app.devissuer import DevIssuer

ACTION_DIR = Path(__file__).resolve().parents[2] / "action"
EXPRESSION = re.compile(r"\$\{\{\s*inputs\.([a-z-]+)\s*\}\}")


@dataclass
class StepResult:
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


class TokenEndpoint:
    """Stands in for the runner's OIDC token service: checks the bearer and the audience."""

    def __init__(self, issuer: DevIssuer, bearer: str, claims: dict[str, Any] | None = None) -> None:
        self.issuer, self.bearer, self.claims = issuer, bearer, claims or {}
        self.audiences: list[str] = []
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/token?api-version=2.0"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.headers.get("Authorization") != f"bearer {self.bearer}":
            return Response("unauthorized", 401)(environ, start_response)
        audience = parse_qs(urlparse(request.url).query).get("audience", ["?"])[0]
        self.audiences.append(audience)
        token = self.issuer.mint(audience=audience, **self.claims)
        return Response(json.dumps({"count": 1, "value": token}), content_type="application/json")(
            environ, start_response
        )

    def close(self) -> None:
        self._server.shutdown()


def parse_outputs(text: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        name, _, delimiter = lines[i].partition("<<")
        value: list[str] = []
        i += 1
        while lines[i] != delimiter:
            value.append(lines[i])
            i += 1
        outputs[name] = "\n".join(value)
        i += 1
    return outputs


def run_action(
    inputs: dict[str, str], *, tmp: Path, runner_env: dict[str, str], action_dir: Path = ACTION_DIR
) -> StepResult:
    spec = yaml.safe_load((action_dir / "action.yml").read_text())
    declared = spec["inputs"]
    values = {name: str(meta.get("default", "")) for name, meta in declared.items()}
    for name, value in inputs.items():
        assert name in declared, f"unknown input {name}"
        values[name] = value
    missing = [n for n, meta in declared.items() if meta.get("required") and not values.get(n)]
    output_file, summary_file = tmp / "output.txt", tmp / "summary.md"
    output_file.write_text("")
    summary_file.write_text("")
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "GITHUB_ACTION_PATH": str(action_dir),
        "GITHUB_OUTPUT": str(output_file),
        "GITHUB_STEP_SUMMARY": str(summary_file),
        **runner_env,
    }
    if missing:
        return StepResult(1, "", f"missing required inputs {missing}", {}, "")
    stdout = stderr = ""
    code = 0
    for step in spec["runs"]["steps"]:
        env = {
            **base,
            **{
                k: EXPRESSION.sub(lambda m: values[m.group(1)], str(v))
                for k, v in step.get("env", {}).items()
            },
        }
        assert "${{" not in step["run"], "no expression may appear inside a run: script"
        shell = step["shell"]
        assert shell == "bash"
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        stdout += proc.stdout
        stderr += proc.stderr
        code = proc.returncode
        if code != 0:
            break
    return StepResult(code, stdout, stderr, parse_outputs(output_file.read_text()), summary_file.read_text())
