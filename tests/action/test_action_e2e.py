"""The composite action, run as action.yml writes it on a simulated runner, against the real gate on loopback.

Each test is what a workflow author would see: the step's exit code, its outputs (through
action.yml's ``outputs:`` mapping), the job summary, the annotations, and a log with no token in it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.tokens.devissuer import AGENT_PRESET
from tests.action.builders import decision_body, encode
from tests.action.conftest import Job, LiveGate
from tests.action.runner import (
    ACTION_DIR,
    ActionRun,
    FlakyProxy,
    Scripted,
    ScriptedServer,
    SilentServer,
    closed_port_url,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"  # the running venv's own
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def assert_no_secret_leaks(run: ActionRun) -> None:
    """Every token the step saw was masked first; none appears in the log, summary or outputs."""
    tokens = set(JWT.findall(run.stdout))
    assert tokens <= set(run.masks), "every token is masked"
    assert not JWT.search(run.log), "no token in the log"
    assert not JWT.search(run.summary), "no token in the summary"
    assert not any(JWT.search(v) for k, v in run.outputs.items() if k not in {"grant"})


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*replies: Scripted) -> ScriptedServer:
        server = ScriptedServer(*replies)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# -- the gate decides -------------------------------------------------------------------------------------


def test_allowed(make_job: Callable[..., Job]) -> None:
    job = make_job(claims=AGENT_PRESET)
    run = job.run({"action": "read"})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.outputs["allowed"] == "true"
    assert run.outputs["permission"] == "read"
    assert run.outputs["decision-id"].startswith("dec_")
    assert run.outputs["details-url"].endswith("/decisions/" + run.outputs["decision-id"])
    assert run.outputs["grant"] == run.outputs["github-token"] == ""
    assert run.summary.startswith("## agent-gate: ✅ allowed `read`")
    assert "| Rule | `read-anything` |" in run.summary
    assert "**agent-driven**" in run.summary, "the Copilot actor is recognised"
    assert f"({run.outputs['details-url']})" in run.summary
    assert run.annotations() == []
    assert job.tokens is not None and job.tokens.audiences == ["agent-gate"]
    assert_no_secret_leaks(run)


def test_denied(make_job: Callable[..., Job]) -> None:
    job = make_job(claims={"environment": "production"})
    run = job.run({"action": "deploy", "environment": "production"})
    assert run.exit_code == 1
    assert run.outputs["allowed"] == "false"
    assert run.outputs["decision-id"].startswith("dec_"), "a denial is a decision too"
    (error,) = run.annotations()
    assert (error.name, error.title) == ("error", "agent-gate denied deploy")
    assert "approval" in error.message and run.outputs["details-url"] in error.message
    assert "## agent-gate: ⛔ denied `deploy`" in run.summary
    assert "| Rule | `deploy-production` |" in run.summary
    assert "### What would make it pass" in run.summary
    assert_no_secret_leaks(run)


def test_denied_without_failing_the_job(job: Job) -> None:
    run = job.run({"action": "deploy", "environment": "production", "fail-on-deny": "false"})
    assert run.exit_code == 0
    assert run.outputs["allowed"] == "false"
    assert [a.name for a in run.annotations()] == ["warning"]


def test_the_pull_request_defaults_to_the_events(make_job: Callable[..., Job]) -> None:
    repo = {"full_name": "octo-org/octo-repo", "fork": False}
    event = {"pull_request": {"number": 42, "head": {"repo": repo}, "base": {"repo": repo}}}
    run = make_job(event=event, event_name="pull_request").run({"action": "read"})
    assert run.exit_code == 0, run.stdout
    assert "| Pull request | #42 |" in run.summary, "the gate decided about PR 42"


def test_a_grant_is_masked_then_revoked_by_the_final_step(make_job: Callable[..., Job]) -> None:
    job = make_job(claims={"environment": "staging"})
    run = job.run({"action": "deploy", "environment": "staging", "request-grant": "true"})
    assert run.exit_code == 0, run.stdout + run.stderr
    grant = run.outputs["grant"]
    assert grant.count(".") == 2
    assert grant in run.masks, "masked before it is written anywhere"
    assert grant not in run.summary and grant not in run.log
    assert "### Credentials issued" in run.summary
    revoke = ACTION_DIR / "revoke"
    revoked = job.run({"grant": grant}, action_dir=revoke)
    assert revoked.exit_code == 0, revoked.stdout + revoked.stderr
    assert "agent-gate: revoked 1 grant(s)" in revoked.log
    again = job.run({"grant": grant}, action_dir=revoke)
    assert again.exit_code == 0 and "revoked 0 grant(s)" in again.log


# -- the decision's signed attestation ---------------------------------------------------------------------


def _verify_attestation(gate: LiveGate, envelope: str, *, action: str = "deploy") -> dict[str, Any]:
    """What ``agent-gate attest verify`` checks, against the live gate's published key set."""
    import requests

    from app.credentials.attestation_verify import Expected, verify
    from app.tokens.devissuer import SAMPLE_SHA

    jwks = requests.get(f"{gate.url}/.well-known/jwks.json", timeout=5).json()
    return verify(envelope.encode(), jwks, Expected(commit=SAMPLE_SHA, action=action)).predicate


def test_the_attestation_output_verifies_offline(make_job: Callable[..., Job], gate: LiveGate) -> None:
    job = make_job(claims={"environment": "staging"})
    run = job.run({"action": "deploy", "environment": "staging", "attestation": "true"})
    assert run.exit_code == 0, run.stdout + run.stderr
    predicate = _verify_attestation(gate, run.outputs["attestation"])
    assert predicate["decisionId"] == run.outputs["decision-id"] and predicate["verdict"] == "allowed"
    assert "step output `attestation`" in run.summary
    assert job.tokens is not None and len(job.tokens.audiences) == 2, "a fresh token for the attestation"
    assert_no_secret_leaks(run)


def test_with_a_grant_the_attestation_is_fetched_with_it(
    make_job: Callable[..., Job], gate: LiveGate
) -> None:
    job = make_job(claims={"environment": "staging"})
    run = job.run(
        {"action": "deploy", "environment": "staging", "attestation": "true", "request-grant": "true"}
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    assert _verify_attestation(gate, run.outputs["attestation"])["verdict"] == "allowed"
    assert job.tokens is not None and len(job.tokens.audiences) == 1, "no second OIDC token"


def test_a_denied_decisions_attestation_is_refused_by_the_verifier(
    make_job: Callable[..., Job], gate: LiveGate
) -> None:
    from app.credentials.attestation_verify import AttestationRefused

    job = make_job(claims={"environment": "production"})
    run = job.run({"action": "deploy", "environment": "production", "attestation": "true"})
    assert run.exit_code == 1 and run.outputs["attestation"], "a denial is attested too"
    with pytest.raises(AttestationRefused, match="was denied"):
        _verify_attestation(gate, run.outputs["attestation"])


def test_no_attestation_for_a_decision_about_no_commit_is_a_warning_and_an_empty_output(
    make_job: Callable[..., Job],
) -> None:
    run = make_job(claims={"sha": "not-a-commit"}).run({"action": "read", "attestation": "true"})
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.outputs["attestation"] == ""
    (warning,) = run.annotations()
    assert (warning.name, warning.title) == ("warning", "agent-gate: no attestation")
    assert "HTTP 409" in warning.message and "is about no commit" in warning.message


def test_without_the_input_no_attestation_is_fetched(make_job: Callable[..., Job]) -> None:
    job = make_job(claims={"environment": "staging"})
    run = job.run({"action": "deploy", "environment": "staging"})
    assert run.exit_code == 0 and run.outputs["attestation"] == ""
    assert job.tokens is not None and len(job.tokens.audiences) == 1


# -- the gate refuses the token or the request ------------------------------------------------------------


def test_a_token_for_another_audience_is_refused(job: Job) -> None:
    run = job.run({"action": "read", "audience": "not-the-gate"})
    assert run.exit_code == 1
    (error,) = run.annotations()
    assert error.title == "agent-gate: the gate refused the token (wrong-audience)"
    assert "Set the `audience` input" in run.summary
    assert "for debugging only" in run.summary
    claims = json.loads(run.summary.split("```json\n")[1].split("\n```")[0])
    assert claims["aud"] == "not-the-gate"
    assert claims["repository"] == "octo-org/octo-repo" and claims["repository_id"] == "2000"
    assert {"job_workflow_ref", "ref", "event_name", "actor", "actor_id"} <= set(claims)
    assert run.outputs["allowed"] == "false" and run.outputs["decision-id"] == ""
    assert_no_secret_leaks(run)


def test_a_replayed_token_is_refused(make_job: Callable[..., Job]) -> None:
    job = make_job(reuse=True)  # a token service that hands out the same token twice
    assert job.run({"action": "read"}).exit_code == 0
    run = job.run({"action": "read"})
    assert run.exit_code == 1
    assert run.annotations()[0].title == "agent-gate: the gate refused the token (replayed)"
    assert "accepts each token once" in run.summary


def test_an_environment_the_job_does_not_run_in_is_refused(make_job: Callable[..., Job]) -> None:
    run = make_job(claims={"environment": "staging"}).run({"action": "deploy", "environment": "production"})
    assert run.exit_code == 1
    (error,) = run.annotations()
    assert error.title == "agent-gate: the gate refused the request (environment-mismatch)"
    assert "HTTP 400" in error.message


# -- the gate cannot be asked ------------------------------------------------------------------------------


def test_missing_id_token_permission(make_job: Callable[..., Job]) -> None:
    run = make_job(id_token=False).run({"action": "read"})
    assert run.exit_code == 1
    (error,) = run.annotations()
    assert error.title == "agent-gate: missing permissions: id-token: write"
    assert "ACTIONS_ID_TOKEN_REQUEST_URL is not set" in error.message
    assert "```yaml\npermissions:\n  id-token: write" in run.summary
    assert run.outputs["allowed"] == "false"


def test_a_pull_request_from_a_fork(make_job: Callable[..., Job]) -> None:
    event = {
        "pull_request": {
            "number": 7,
            "head": {"repo": {"full_name": "mallory/octo-repo", "fork": True}},
            "base": {"repo": {"full_name": "octo-org/octo-repo", "fork": False}},
        }
    }
    run = make_job(id_token=False, event=event, event_name="pull_request").run({"action": "read"})
    assert run.exit_code == 1
    assert run.annotations()[0].title == "agent-gate: no OIDC token for a pull request from a fork"
    assert "from forks" in run.summary


def test_gate_unreachable(job: Job) -> None:
    run = job.run({"action": "read", "gate-url": closed_port_url(), "timeout": "1"})
    assert run.exit_code == 1
    (error,) = run.annotations()
    assert error.title == "agent-gate: the gate is unreachable"
    assert "Could not connect to" in error.message
    assert "Check the `gate-url` input" in run.summary
    assert run.outputs == {
        "allowed": "false",
        "decision-id": "",
        "permission": "",
        "details-url": "",
        "grant": "",
        "github-token": "",
        "attestation": "",
    }


def test_a_gate_that_never_answers_times_out(job: Job) -> None:
    silent = SilentServer()
    try:
        run = job.run({"action": "read", "gate-url": silent.url, "timeout": "1"})
    finally:
        silent.close()
    assert run.exit_code == 1
    assert run.annotations()[0].title == "agent-gate: the gate did not answer in time"
    assert "raise the step's `timeout` input" in run.summary


def test_malformed_reply(job: Job, scripted: Callable[..., ScriptedServer]) -> None:
    junk = scripted(Scripted(200, "<html>It works!</html>", {"Content-Type": "text/html"}))
    run = job.run({"action": "read", "gate-url": junk.url})
    assert run.exit_code == 1
    (error,) = run.annotations()
    assert error.title == "agent-gate: malformed reply from the gate"
    assert "text/html" in error.message
    assert junk.received[0].path == "/v1/decisions"
    assert junk.received[0].headers["Authorization"].startswith("Bearer eyJ")


def test_a_redirect_is_reported_not_followed(job: Job, scripted: Callable[..., ScriptedServer]) -> None:
    elsewhere = scripted(Scripted(200, encode(decision_body(action="read"))))
    gate = scripted(Scripted(308, "", {"Location": elsewhere.url + "/v1/decisions"}))
    run = job.run({"action": "read", "gate-url": gate.url})
    assert run.exit_code == 1
    assert run.annotations()[0].title == "agent-gate: the gate answered with a redirect"
    assert "Set `gate-url` to the gate's final address" in run.annotations()[0].message
    assert elsewhere.received == [], "the token went nowhere else"


def test_the_request_body_carries_the_events_pull_request(
    make_job: Callable[..., Job], scripted: Callable[..., ScriptedServer]
) -> None:
    gate = scripted(Scripted(403, encode(decision_body(allowed=False, action="merge"))))
    event = {"issue": {"number": 42, "pull_request": {"url": "https://api.github.com/..."}}}
    run = make_job(event=event, event_name="issue_comment").run({"action": "merge", "gate-url": gate.url})
    assert run.exit_code == 1
    assert json.loads(gate.received[0].body) == {"action": "merge", "pull_request": 42}


def test_a_gateway_timeout_after_the_gate_saw_the_token_is_retried_with_a_fresh_one(
    job: Job, gate: LiveGate
) -> None:
    proxy = FlakyProxy(gate.url, failures=[504])
    try:
        run = job.run({"action": "read", "gate-url": proxy.url})
    finally:
        proxy.close()
    assert run.exit_code == 0, run.stdout
    assert [status for _, status in proxy.forwarded] == [200, 200], "the gate decided both times"
    first, second = (auth for auth, _ in proxy.forwarded)
    assert first != second, "a replayed token would have been refused"
    assert run.outputs["allowed"] == "true"


def test_a_transient_503_is_retried_as_retry_after_asks(
    job: Job, scripted: Callable[..., ScriptedServer]
) -> None:
    unavailable = json.dumps(
        {"message": "GitHub did not answer", "errors": [{"code": "github-unavailable", "description": "x"}]}
    )
    gate = scripted(
        Scripted(503, unavailable, {"Retry-After": "0", "Content-Type": "application/json"}),
        Scripted(200, encode(decision_body(action="read")), {"Content-Type": "application/json"}),
    )
    run = job.run({"action": "read", "gate-url": gate.url})
    assert run.exit_code == 0, run.stdout
    assert len(gate.received) == 2


# -- the step itself -----------------------------------------------------------------------------------------


def test_a_missing_required_input_is_named(job: Job) -> None:
    run = job.run({"action": "read", "gate-url": "", "fail-on-deny": "false"})
    assert run.exit_code == 1, "a broken step fails even when denials may pass"
    assert run.annotations()[0].title == "agent-gate: invalid input gate-url"


def test_without_python3_the_step_says_what_to_add(make_job: Callable[..., Job]) -> None:
    run = make_job(env={"PATH": "/nonexistent"}).run({"action": "read"})
    assert run.exit_code == 1
    (error,) = run.annotations()
    assert error.title == "agent-gate: python3 not found"
    assert "actions/setup-python" in error.message


def _action(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


@pytest.mark.parametrize(
    "path", [ACTION_DIR / "action.yml", ACTION_DIR / "revoke" / "action.yml"], ids=["action", "revoke"]
)
def test_inputs_reach_scripts_only_through_env(path: Path) -> None:
    spec = _action(path)
    assert spec["runs"]["using"] == "composite"
    for step in spec["runs"]["steps"]:
        assert "${{" not in step["run"]
        assert step["shell"] == "bash"
        for value in step.get("env", {}).values():
            assert re.fullmatch(r"\$\{\{ inputs\.[a-z-]+ \}\}|[a-z]+", str(value)), value
    passed = {v for step in spec["runs"]["steps"] for v in step.get("env", {}).values()}
    assert {f"${{{{ inputs.{name} }}}}" for name in spec["inputs"]} <= passed, "every input is passed on"


def test_action_yml_and_the_script_agree() -> None:
    """The script reads exactly the variables action.yml sets, and writes exactly its outputs."""
    script = (ACTION_DIR / "gate_client.py").read_text()
    spec = _action(ACTION_DIR / "action.yml")
    (step,) = spec["runs"]["steps"]
    revoke_only = {"AG_MODE", "AG_GRANT", "AG_REASON"}
    assert set(re.findall(r"\"(AG_[A-Z_]+)\"", script)) - revoke_only == set(step["env"])
    for name, output in spec["outputs"].items():
        assert output["value"] == f"${{{{ steps.gate.outputs.{name} }}}}"
        assert f'"{name}"' in script


def _check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    exe = str(CHECK_JSONSCHEMA) if CHECK_JSONSCHEMA.exists() else "check-jsonschema"
    return subprocess.run(
        [exe, "--builtin-schema", schema, *map(str, paths)], capture_output=True, text=True, check=False
    )


def test_the_metadata_matches_githubs_schema() -> None:
    result = _check_jsonschema(
        "vendor.github-actions", ACTION_DIR / "action.yml", ACTION_DIR / "revoke" / "action.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_examples_match_githubs_workflow_schema() -> None:
    assert len(EXAMPLES) >= 4
    result = _check_jsonschema("vendor.github-workflows", *EXAMPLES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_pin_the_action_and_let_the_job_fetch_its_token(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    declared = {
        "action": set(_action(ACTION_DIR / "action.yml")["inputs"]),
        "action/revoke": set(_action(ACTION_DIR / "revoke" / "action.yml")["inputs"]),
    }
    used = 0
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            match = re.fullmatch(
                r"[\w.-]+/agent-gate/(action(?:/revoke)?)@([0-9a-f]{40})", step.get("uses", "")
            )
            if not match:
                assert "agent-gate" not in step.get("uses", ""), "pinned by a full commit sha"
                continue
            used += 1
            assert set(step.get("with", {})) <= declared[match.group(1)]
            assert job.get("permissions", {}).get("id-token") == "write", "the job can fetch its token"
    assert used, "the example uses the action"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_keep_expressions_out_of_scripts(path: Path) -> None:
    """What the examples teach: values reach run: scripts through env, and the scripts parse."""
    workflow = yaml.safe_load(path.read_text())
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                assert "${{" not in step["run"], step["run"]
                check = subprocess.run(
                    ["bash", "-n"], input=step["run"], capture_output=True, text=True, check=False
                )
                assert check.returncode == 0, check.stderr
