"""The composite action, run as action.yml writes it, in a simulated runner, against the real gate."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from action import gate_client
from app import create_app
from app.devissuer import AGENT_PRESET, DevIssuer
from app.settings import Settings
from tests.action.runner import ACTION_DIR, TokenEndpoint, run_action

REPO = Path(__file__).resolve().parents[2]
POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - {name: read-anything, actions: [read], repositories: "*"}
  - name: deploy-staging
    actions: [deploy]
    repositories: "*"
    environments: [staging]
    approvals: {count: 0}
    grant: {ttl: 300}
  - name: deploy-production
    actions: [deploy]
    repositories: "*"
    environments: [production]
    approvals: {count: 1}
"""


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[str, DevIssuer]]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "octo.yml").write_text(POLICY)
    server = None
    settings = Settings(
        dev_mode=True,
        issuers=(),
        data_dir=tmp_path / "data",
        policy_path=tmp_path / "policies",
        public_url="http://127.0.0.1",
        policy_check_interval=0,
    )
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", DevIssuer(settings.data_dir)
    server.shutdown()


@pytest.fixture
def runner(tmp_path: Path, gate: tuple[str, DevIssuer]) -> Iterator[Any]:
    url, issuer = gate
    endpoints: list[TokenEndpoint] = []

    def run(
        inputs: dict[str, str],
        *,
        claims: dict[str, Any] | None = None,
        with_token: bool = True,
        event: dict[str, Any] | None = None,
        event_name: str = "push",
    ) -> Any:
        env = {"GITHUB_EVENT_NAME": event_name}
        if with_token:
            endpoint = TokenEndpoint(issuer, "request-bearer", claims)
            endpoints.append(endpoint)
            env.update(
                {
                    "ACTIONS_ID_TOKEN_REQUEST_URL": endpoint.url,
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-bearer",
                }
            )
        if event is not None:
            (tmp_path / "event.json").write_text(json.dumps(event))
            env["GITHUB_EVENT_PATH"] = str(tmp_path / "event.json")
        return run_action({"gate-url": url, **inputs}, tmp=tmp_path, runner_env=env)

    yield run
    for endpoint in endpoints:
        endpoint.close()


def test_allowed(runner):
    result = runner({"action": "read"}, claims=AGENT_PRESET)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.outputs["allowed"] == "true"
    assert result.outputs["permission"] == "read"
    assert result.outputs["decision-id"].startswith("dec_")
    assert result.outputs["details-url"].endswith(result.outputs["decision-id"])
    assert "## ✅ Allowed: `read`" in result.summary and "read-anything" in result.summary
    assert "::add-mask::" in result.stdout


def test_denied(runner):
    result = runner({"action": "deploy", "environment": "production"}, claims=AGENT_PRESET)
    assert result.exit_code == 1
    assert result.outputs["allowed"] == "false"
    assert "::error title=agent-gate denied deploy::" in result.stdout
    assert "## ⛔ Denied: `deploy`" in result.summary
    assert "### What would make it pass" in result.summary


def test_denied_without_failing_the_job(runner):
    result = runner(
        {"action": "deploy", "environment": "production", "fail-on-deny": "false"}, claims=AGENT_PRESET
    )
    assert result.exit_code == 0 and result.outputs["allowed"] == "false"


def test_token_refused_shows_the_codes_and_the_claims_for_debugging(runner):
    result = runner({"action": "read", "audience": "not-the-gate"})
    assert result.exit_code == 1
    assert "the gate refused the token" in result.stdout
    assert "`wrong-audience`" in result.summary
    assert "for debugging only" in result.summary and '"repository": "octo-org/octo-repo"' in result.summary
    # The runner consumes ::add-mask:: itself; everywhere else the token must not appear.
    shown = [
        line for line in (result.stdout + result.summary).splitlines() if not line.startswith("::add-mask::")
    ]
    token_like = [w for line in shown for w in line.split() if w.count(".") == 2 and len(w) > 200]
    assert token_like == [], "the token is never printed"


def test_missing_id_token_permission(runner):
    result = runner({"action": "read"}, with_token=False)
    assert result.exit_code == 1
    assert "missing permissions: id-token: write" in result.stdout.replace("%3A", ":")
    assert "id-token: write" in result.summary


def test_pull_request_from_a_fork(runner):
    event = {"pull_request": {"number": 7, "head": {"repo": {"fork": True}}}}
    result = runner({"action": "read"}, with_token=False, event=event, event_name="pull_request")
    assert result.exit_code == 1
    assert "from a fork" in result.summary


def test_gate_unreachable(runner, tmp_path):
    result = run_action(
        {"gate-url": "http://127.0.0.1:9", "action": "read", "timeout": "2"},
        tmp=tmp_path,
        runner_env={
            "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/t",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x",
            "GITHUB_EVENT_NAME": "push",
        },
    )
    assert result.exit_code == 1
    assert "could not get the OIDC token" in result.summary or "could not be reached" in result.summary


def test_malformed_reply(runner, tmp_path):
    from werkzeug.wrappers import Response

    junk = make_server(
        "127.0.0.1", 0, lambda env, start: Response("<html>hi</html>", 200)(env, start), threaded=True
    )
    threading.Thread(target=junk.serve_forever, daemon=True).start()
    try:
        result = runner({"action": "read", "gate-url": f"http://127.0.0.1:{junk.server_port}"})
    finally:
        junk.shutdown()
    assert result.exit_code == 1
    assert "malformed reply from the gate" in result.summary


def test_pull_request_input_defaults_to_the_events(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps({"pull_request": {"number": 42}}))
    inputs = gate_client.read_inputs(
        {"AG_GATE_URL": "https://gate", "AG_ACTION": "merge", "GITHUB_EVENT_PATH": str(tmp_path / "e.json")}
    )
    assert inputs.pull_request == "42"


@pytest.mark.parametrize(
    ("env", "title"),
    [
        ({"AG_GATE_URL": "http://gate.example.com", "AG_ACTION": "read"}, "gate-url must use https"),
        ({"AG_GATE_URL": "https://gate", "AG_ACTION": ""}, "missing input"),
        (
            {"AG_GATE_URL": "https://gate", "AG_ACTION": "read", "AG_FAIL_ON_DENY": "maybe"},
            "invalid input fail-on-deny",
        ),
    ],
    ids=["plain-http-gate", "no-action", "bad-boolean"],
)
def test_bad_inputs(env, title):
    with pytest.raises(gate_client.ActionFailure, match=title):
        gate_client.read_inputs(env)


def test_transient_failures_are_retried_within_the_timeout():
    replies = [
        gate_client.Reply(503, b"", {"Retry-After": "1"}),
        gate_client.Reply(200, b'{"allowed": true}', {}),
    ]
    calls: list[str] = []

    def fake_http(method: str, url: str, **kw: Any) -> gate_client.Reply:
        calls.append(url)
        return replies.pop(0)

    slept: list[float] = []
    original = gate_client.http
    gate_client.http = fake_http  # type: ignore[assignment]
    try:
        inputs = gate_client.read_inputs(
            {"AG_GATE_URL": "https://gate", "AG_ACTION": "read", "AG_TIMEOUT": "30"}
        )
        reply = gate_client.ask_gate(inputs, "t", sleep=slept.append, clock=lambda: 0.0)
    finally:
        gate_client.http = original  # type: ignore[assignment]
    assert reply.status == 200 and len(calls) == 2 and slept == [1.0]


def test_annotation_encoding():
    assert gate_client.escape_data("a%b\nc\r") == "a%25b%0Ac%0D"
    assert gate_client.escape_property("x: y, z") == "x%3A y%2C z"


def test_outputs_are_multiline_safe(tmp_path):
    out = tmp_path / "o"
    gate_client.set_outputs({"GITHUB_OUTPUT": str(out)}, {"details-url": "line1\nline2"})
    from tests.action.runner import parse_outputs

    assert parse_outputs(out.read_text()) == {"details-url": "line1\nline2"}


def test_metadata_and_examples_match_githubs_schemas():
    check = REPO / ".venv" / "bin" / "check-jsonschema"
    exe = str(check) if check.exists() else "check-jsonschema"
    actions = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-actions", str(ACTION_DIR / "action.yml")],
        capture_output=True,
        text=True,
    )
    assert actions.returncode == 0, actions.stdout + actions.stderr
    examples = sorted(str(p) for p in (REPO / "docs" / "examples").glob("*.yml"))
    assert len(examples) >= 4
    workflows = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", *examples], capture_output=True, text=True
    )
    assert workflows.returncode == 0, workflows.stdout + workflows.stderr


def test_a_grant_is_masked_then_revoked_by_the_final_step(runner, gate, tmp_path):
    result = runner({"action": "deploy", "environment": "staging", "request-grant": "true"})
    assert result.exit_code == 0, result.stdout + result.stderr
    grant = result.outputs["grant"]
    assert grant.count(".") == 2
    assert f"::add-mask::{grant}" in result.stdout, "masked before it is written anywhere"
    assert grant not in result.summary
    url, _ = gate
    revoked = run_action(
        {"gate-url": url, "grant": grant}, tmp=tmp_path, runner_env={}, action_dir=ACTION_DIR / "revoke"
    )
    assert revoked.exit_code == 0, revoked.stdout + revoked.stderr
    assert "revoked 1 grant(s)" in revoked.stdout
    again = run_action(
        {"gate-url": url, "grant": grant}, tmp=tmp_path, runner_env={}, action_dir=ACTION_DIR / "revoke"
    )
    assert again.exit_code == 0 and "revoked 0 grant(s)" in again.stdout
