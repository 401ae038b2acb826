"""A simulated GitHub Actions runner: runs a composite action's steps exactly as its action.yml writes them.

It reads ``action.yml``, resolves the inputs (defaults included), evaluates the ``${{ }}``
expressions the action uses (``inputs.*`` and ``github.*`` in ``env:``, ``steps.*.outputs.*`` in
``outputs:``), and runs each ``run:`` script the way the runner does for ``shell: bash``
(``bash --noprofile --norc -eo pipefail <file>``) with the step's ``env:`` on top of the runner's
variables. Then it does what the runner does with the step's traces: it reads the step's
``$GITHUB_OUTPUT`` file, collects workflow commands (``::add-mask::``, ``::error``...) and masks
secrets in the log. Anything it does not simulate (``if:``, ``uses:``, another shell, another
expression) fails the test instead of being skipped.

Helpers for the servers a run talks to: :class:`TokenService` (stands in for
``ACTIONS_ID_TOKEN_REQUEST_URL``), :class:`ScriptedServer` (answers whatever a test scripts) and
:class:`SilentServer` (accepts connections, never answers).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from app.tokens.devissuer import DevIssuer

ACTION_DIR = Path(__file__).resolve().parents[2] / "action"
BASH_ARGS = ("--noprofile", "--norc", "-eo", "pipefail")  # what the runner uses for `shell: bash`
STEP_KEYS = {"id", "name", "shell", "env", "run"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMMAND = re.compile(r"^::([a-z-]+)(?: ([^:]*))?::(.*)$")


class HarnessError(AssertionError):
    """The action uses something the simulated runner does not simulate."""


# -- expressions ---------------------------------------------------------------------------------------


def evaluate(text: str, contexts: Mapping[str, Any]) -> str:
    """Substitute each ``${{ a.b.c }}`` property lookup; a missing property is '' (GitHub's null)."""

    def lookup(match: re.Match[str]) -> str:
        expression = match.group(1)
        if not re.fullmatch(r"[a-z_]+(\.[A-Za-z0-9_-]+)+", expression):
            raise HarnessError(f"the simulated runner evaluates property lookups only, not {expression!r}")
        head, *path = expression.split(".")
        if head not in contexts:
            raise HarnessError(f"context {head!r} is not available here ({expression!r})")
        value: Any = contexts[head]
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return ""
        return json.dumps(value) if isinstance(value, bool) else str(value)

    return EXPRESSION.sub(lookup, text)


# -- the runner's file commands and workflow commands -------------------------------------------------------


def parse_output_file(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == delimiter), None)
            if end is None:
                raise HarnessError(f"output {name!r}: no closing delimiter {delimiter!r}")
            outputs[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
            i += 1
        elif line == "":
            i += 1
        else:
            raise HarnessError(f"invalid line in GITHUB_OUTPUT: {line!r}")
    return outputs


def _unescape(text: str, *, prop: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else [])
    for encoded, char in pairs:
        text = text.replace(encoded, char)
    return text.replace("%25", "%")


@dataclass(frozen=True)
class Command:
    """One workflow command from the step's standard output, decoded as the runner decodes it."""

    name: str
    properties: dict[str, str]
    message: str

    @property
    def title(self) -> str:
        return self.properties.get("title", "")


def parse_commands(stdout: str) -> list[Command]:
    commands = []
    for line in stdout.splitlines():
        match = COMMAND.match(line)
        if not match:
            continue
        properties = {}
        for pair in filter(None, (match.group(2) or "").split(",")):
            key, _, value = pair.partition("=")
            properties[key] = _unescape(value, prop=True)
        commands.append(Command(match.group(1), properties, _unescape(match.group(3), prop=False)))
    return commands


# -- running an action ------------------------------------------------------------------------------------


@dataclass
class ActionRun:
    """What a workflow author would see after the action ran."""

    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]  # the action's outputs, through action.yml's outputs: mapping
    step_outputs: dict[str, dict[str, str]]
    summary: str
    commands: list[Command]
    log: str  # standard output as the runner shows it: workflow commands consumed, secrets masked

    @property
    def masks(self) -> list[str]:
        return [c.message for c in self.commands if c.name == "add-mask"]

    def annotations(self, level: str | None = None) -> list[Command]:
        levels = {"error", "warning", "notice"} if level is None else {level}
        return [c for c in self.commands if c.name in levels]


@dataclass
class SimulatedRunner:
    """A job's runner: its workspace, its environment (``runner_env``) and its ``github`` context."""

    workspace: Path
    runner_env: dict[str, str] = field(default_factory=dict)
    github: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] | None = None
    summary_file: Path = field(init=False)
    _runs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.summary_file = self.workspace / "step-summary.md"
        self.summary_file.write_text("")

    def run(self, inputs: Mapping[str, str], *, action_dir: Path = ACTION_DIR) -> ActionRun:
        self._runs += 1
        spec = yaml.safe_load((action_dir / "action.yml").read_text())
        runs = spec["runs"]
        if runs.get("using") != "composite":
            raise HarnessError("the simulated runner runs composite actions only")
        github = {"action_path": str(action_dir), **self.github}
        values = self._inputs(spec.get("inputs") or {}, inputs, github)
        env = self._job_env(action_dir)
        steps: dict[str, dict[str, dict[str, str]]] = {}
        stdout = stderr = ""
        exit_code = 0
        self.summary_file.write_text("")
        for index, step in enumerate(runs["steps"]):
            unknown = set(step) - STEP_KEYS
            if unknown:
                raise HarnessError(f"step {index}: the simulated runner does not simulate {sorted(unknown)}")
            if step.get("shell") != "bash":
                raise HarnessError(f"step {index}: only shell: bash is simulated, got {step.get('shell')!r}")
            if "${{" in step["run"]:
                raise HarnessError(f"step {index}: an expression inside run: is script injection")
            output_file = self.workspace / f"output-{self._runs}-{index}.txt"
            output_file.write_text("")
            script = self.workspace / f"step-{self._runs}-{index}.sh"
            script.write_text(step["run"])
            step_env = {
                **env,
                "GITHUB_OUTPUT": str(output_file),
                **{
                    name: evaluate(str(value), {"inputs": values, "github": github})
                    for name, value in (step.get("env") or {}).items()
                },
            }
            proc = subprocess.run(
                ["/bin/bash", *BASH_ARGS, str(script)],
                env=step_env,
                cwd=self.workspace,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            stdout += proc.stdout
            stderr += proc.stderr
            exit_code = proc.returncode
            if "id" in step:
                steps[step["id"]] = {"outputs": parse_output_file(output_file.read_text())}
            if exit_code != 0:
                break
        outputs = {
            name: evaluate(str(meta["value"]), {"steps": steps})
            for name, meta in (spec.get("outputs") or {}).items()
        }
        commands = parse_commands(stdout)
        return ActionRun(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            outputs=outputs,
            step_outputs={k: v["outputs"] for k, v in steps.items()},
            summary=self.summary_file.read_text(),
            commands=commands,
            log=_masked_log(stdout, [c.message for c in commands if c.name == "add-mask"]),
        )

    def _inputs(
        self, declared: Mapping[str, Any], given: Mapping[str, str], github: Mapping[str, Any]
    ) -> dict[str, str]:
        unknown = set(given) - set(declared)
        if unknown:
            # GitHub only warns ("Unexpected input"); a test that does it is wrong.
            raise HarnessError(f"inputs not declared in action.yml: {sorted(unknown)}")
        # Like GitHub, `required: true` is not enforced: an omitted input is its default or ''.
        return {
            name: given[name] if name in given else evaluate(str(meta.get("default", "")), {"github": github})
            for name, meta in declared.items()
        }

    def _job_env(self, action_dir: Path) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workspace),
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "RUNNER_TEMP": str(self.workspace),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_ACTION_PATH": str(action_dir),
            "GITHUB_STEP_SUMMARY": str(self.summary_file),
            "GITHUB_EVENT_NAME": str(self.github.get("event_name", "push")),
        }
        if self.event is not None:
            event_file = self.workspace / "event.json"
            event_file.write_text(json.dumps(self.event))
            env["GITHUB_EVENT_PATH"] = str(event_file)
        env.update(self.runner_env)
        return env


def _masked_log(stdout: str, masks: Iterable[str]) -> str:
    shown = [line for line in stdout.splitlines() if not line.startswith("::add-mask::")]
    text = "\n".join(shown)
    for secret in sorted(set(masks), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


# -- servers a run talks to -------------------------------------------------------------------------------


class _Served:
    """A WSGI app on a loopback port, in a daemon thread, until :meth:`close`."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TokenService(_Served):
    """Stands in for the runner's OIDC token service (``ACTIONS_ID_TOKEN_REQUEST_URL``).

    Like GitHub's it wants ``Authorization: bearer <request token>`` and an ``audience`` query
    parameter, and answers ``{"count", "value"}``. ``claims`` override the dev issuer's defaults;
    ``reuse`` answers the same token every time (to provoke the gate's replay check); ``failures``
    are statuses answered before the first token.
    """

    def __init__(
        self,
        issuer: DevIssuer,
        *,
        request_token: str = "runner-request-token",
        claims: Mapping[str, Any] | None = None,
        reuse: bool = False,
        failures: Iterable[int] = (),
    ) -> None:
        self.issuer = issuer
        self.request_token = request_token
        self.claims = dict(claims or {})
        self.reuse = reuse
        self.failures = list(failures)
        self.audiences: list[str] = []
        self.refused = 0
        self._token: str | None = None
        super().__init__(self._app)
        self.request_url = f"{self.url}/_apis/idtoken?api-version=2.0"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        query = parse_qs(urlsplit(request.url).query)
        if scheme.lower() != "bearer" or credential != self.request_token:
            self.refused += 1
            return Response("bad request token", 401)(environ, start_response)
        if query.get("api-version") != ["2.0"] or len(query.get("audience", [])) != 1:
            self.refused += 1
            return Response("expected api-version=2.0 and one audience", 400)(environ, start_response)
        if self.failures:
            return Response("try again", self.failures.pop(0))(environ, start_response)
        audience = query["audience"][0]
        self.audiences.append(audience)
        if self._token is None or not self.reuse:
            self._token = self.issuer.mint(audience=audience, **self.claims)
        body = json.dumps({"count": len(self._token), "value": self._token})
        return Response(body, content_type="application/json")(environ, start_response)

    @property
    def env(self) -> dict[str, str]:
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.request_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }


@dataclass(frozen=True)
class Scripted:
    status: int
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer(_Served):
    """Answers each request with the next scripted reply (the last one repeats) and records requests."""

    def __init__(self, *replies: Scripted) -> None:
        self.replies = list(replies)
        self.received: list[Received] = []
        super().__init__(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.received.append(
            Received(request.method, request.path, dict(request.headers.items()), request.get_data())
        )
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return Response(reply.body, reply.status, headers=dict(reply.headers))(environ, start_response)


class FlakyProxy(_Served):
    """A proxy in front of ``target`` that forwards every request, then swaps the first answers for
    ``failures`` (a gateway that timed out after the gate had seen the request)."""

    def __init__(self, target: str, *, failures: Iterable[int]) -> None:
        self.target = target
        self.failures = list(failures)
        self.forwarded: list[tuple[str, int]] = []  # (Authorization, the gate's status)
        super().__init__(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        forward = urllib.request.Request(
            self.target + request.full_path.rstrip("?"),
            data=request.get_data() or None,
            headers=headers,
            method=request.method,
        )
        try:
            with urllib.request.urlopen(forward, timeout=10) as answer:
                status, body, content_type = answer.status, answer.read(), answer.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            status, body, content_type = exc.code, exc.read(), exc.headers["Content-Type"]
        self.forwarded.append((request.headers.get("Authorization", ""), status))
        if self.failures:
            return Response("gateway timeout", self.failures.pop(0))(environ, start_response)
        return Response(body, status, content_type=content_type)(environ, start_response)


class SilentServer:
    """A listening socket that never accepts: connections succeed, answers never come."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def close(self) -> None:
        self._socket.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
