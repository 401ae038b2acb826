"""action/gate_client.py, unit by unit: the world faked through its Io (no sleeping); send_http on loopback."""

from __future__ import annotations

import ast
import dataclasses
import email.utils
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from action import gate_client as gc
from action.gate_client import ActionFailure, HttpRequest, Reply, TransportError
from tests.action.builders import (
    DECISION_ID,
    DETAILS_URL,
    SHA,
    decision_body,
    encode,
    error_body,
    unsigned_token,
)
from tests.action.runner import (
    Command,
    Scripted,
    ScriptedServer,
    SilentServer,
    closed_port_url,
    parse_commands,
    parse_output_file,
)

TOKEN = unsigned_token()
TOKEN_URL = "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0"
GATE = "https://gate.example.com"
WALL = 1_800_000_000.0

Outcome = Reply | TransportError | Callable[[HttpRequest], Reply]


def token_reply(token: str = TOKEN) -> Reply:
    return Reply(200, encode({"count": len(token), "value": token}), {"Content-Type": "application/json"})


def gate_reply(status: int, body: Any, **headers: str) -> Reply:
    data = body if isinstance(body, bytes) else encode(body)
    return Reply(status, data, {"Content-Type": "application/json", **headers})


ALLOWED = gate_reply(200, decision_body(allowed=True))
DENIED = gate_reply(403, decision_body(allowed=False))
REFUSED = TransportError("connection", "[Errno 111] Connection refused")


@dataclass
class World:
    """The outside world as :class:`gate_client.Io` sees it, scripted and recorded.

    Requests to the token URL get ``token`` outcomes, all others ``gate`` outcomes (the last one
    repeats). A timeout uses up the attempt's whole time; sleeping advances the clock.
    """

    token: Sequence[Outcome] = (token_reply(),)
    gate: Sequence[Outcome] = (ALLOWED,)
    files: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    requests: list[HttpRequest] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    now: float = 0.0
    delimiters: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._token, self._gate = list(self.token), list(self.gate)  # never consume a test's own list

    def http(self, request: HttpRequest) -> Reply:
        self.requests.append(request)
        queue = self._token if "audience=" in request.url else self._gate
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, TransportError):
            if outcome.kind == "timeout":
                self.now += request.timeout
            raise outcome
        return outcome(request) if callable(outcome) else outcome

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def read_file(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def append_file(self, path: str, text: str) -> None:
        self.files[path] = self.files.get(path, "") + text

    def delimiter(self) -> str:
        return self.delimiters.pop(0) if self.delimiters else f"ghadelimiter_{len(self.lines)}"

    @property
    def io(self) -> gc.Io:
        return gc.Io(
            http=self.http,
            append_file=self.append_file,
            read_file=self.read_file,
            emit=self.lines.append,
            sleep=self.sleep,
            monotonic=lambda: self.now,
            wall_clock=lambda: WALL + self.now,
            random=lambda: 0.0,
            delimiter=self.delimiter,
        )

    # what a workflow author sees
    @property
    def outputs(self) -> dict[str, str]:
        return parse_output_file(self.files.get("/runner/output", ""))

    @property
    def summary(self) -> str:
        return self.files.get("/runner/summary", "")

    def annotations(self, level: str = "error") -> list[Command]:
        return [c for c in parse_commands("\n".join(self.lines)) if c.name == level]

    @property
    def gate_requests(self) -> list[HttpRequest]:
        return [r for r in self.requests if "audience=" not in r.url]


def make_env(*, with_event: bool = False, **inputs: str) -> dict[str, str]:
    """The step's environment: inputs by their action.yml names (dashes as underscores) and the runner's."""
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_OUTPUT": "/runner/output",
        "GITHUB_STEP_SUMMARY": "/runner/summary",
        "ACTIONS_ID_TOKEN_REQUEST_URL": TOKEN_URL,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
        "AG_GATE_URL": GATE,
        "AG_ACTION": "deploy",
    }
    for name, value in inputs.items():
        env[f"AG_{name.upper()}"] = value
    if with_event:
        env["GITHUB_EVENT_PATH"] = "/runner/event.json"
    return env


def run_main(world: World, env: dict[str, str], event: dict[str, Any] | None = None) -> int:
    if event is not None:
        world.files["/runner/event.json"] = json.dumps(event)
    return gc.main(env, world.io)


def ask(world: World, inputs: gc.Inputs, *, deadline: float) -> Reply:
    reply, token = gc.ask_gate(inputs, lambda: TOKEN, world.io, deadline)
    assert token == TOKEN
    return reply


def inputs_of(**inputs: str) -> gc.Inputs:
    return gc.read_inputs(make_env() | {f"AG_{name.upper()}": value for name, value in inputs.items()}, {})


# -- inputs ----------------------------------------------------------------------------------------------


def test_inputs_have_the_documented_defaults() -> None:
    assert gc.read_inputs({"AG_GATE_URL": GATE + "/", "AG_ACTION": "deploy"}, {}) == gc.Inputs(
        gate_url=GATE,
        action="deploy",
        audience="agent-gate",
        environment="",
        pull_request=None,
        sha="",
        request_grant=False,
        fail_on_deny=True,
        timeout=30.0,
    )


@pytest.mark.parametrize(
    ("inputs", "title", "message"),
    [
        ({"gate_url": ""}, "invalid input gate-url", "`gate-url` is required"),
        ({"gate_url": "http://gate.example.com"}, "invalid input gate-url", "must be an https:// URL"),
        ({"gate_url": "ftp://gate.example.com"}, "invalid input gate-url", "must be an https:// URL"),
        ({"gate_url": "https://user:pw@gate.example.com"}, "invalid input gate-url", "no credentials"),
        ({"gate_url": "https://gate.example.com/?x=1"}, "invalid input gate-url", "query"),
        ({"action": ""}, "invalid input action", "got nothing"),
        ({"action": "Deploy"}, "invalid input action", "lowercase"),
        ({"pull_request": "#12"}, "invalid input pull-request", "must be a pull request number"),
        ({"pull_request": "0"}, "invalid input pull-request", "must be a pull request number"),
        ({"sha": "e5a8f2c"}, "invalid input sha", "40 hex digits"),
        ({"timeout": "0"}, "invalid input timeout", "number of seconds"),
        ({"timeout": "soon"}, "invalid input timeout", "got `soon`"),
        ({"timeout": "nan"}, "invalid input timeout", "number of seconds"),
        ({"timeout": "86400"}, "invalid input timeout", "up to 3600"),
        ({"fail_on_deny": "maybe"}, "invalid input fail-on-deny", "must be true or false"),
        ({"request_grant": "please"}, "invalid input request-grant", "must be true or false"),
    ],
    ids=[
        "gate-url-missing",
        "gate-url-plain-http",
        "gate-url-ftp",
        "gate-url-credentials",
        "gate-url-query",
        "action-missing",
        "action-uppercase",
        "pull-request-not-a-number",
        "pull-request-zero",
        "sha-abbreviated",
        "timeout-zero",
        "timeout-words",
        "timeout-nan",
        "timeout-a-day",
        "fail-on-deny-maybe",
        "request-grant-please",
    ],
)
def test_invalid_inputs_are_named_in_the_message(inputs: dict[str, str], title: str, message: str) -> None:
    with pytest.raises(ActionFailure, match=message) as caught:
        inputs_of(**inputs)
    assert caught.value.title == title
    assert caught.value.always_fails, "a broken step fails even with fail-on-deny: false"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gate.example.com/", "https://gate.example.com"),
        ("https://gate.example.com/agent-gate", "https://gate.example.com/agent-gate"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
    ids=["trailing-slash", "path-prefix", "loopback-ipv4", "localhost", "loopback-ipv6"],
)
def test_gate_urls_that_are_accepted(url: str, expected: str) -> None:
    assert gc.check_gate_url(url) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"pull_request": {"number": 42}}, 42),
        ({"issue": {"number": 7, "pull_request": {"url": "https://api.github.com/..."}}}, 7),
        ({"issue": {"number": 7}}, None),
        ({"ref": "refs/heads/main"}, None),
        ({"pull_request": {"number": True}}, None),
        ({}, None),
    ],
    ids=[
        "pull-request-event",
        "comment-on-a-pull-request",
        "comment-on-an-issue",
        "push",
        "not-a-number",
        "none",
    ],
)
def test_pull_request_defaults_to_the_events(event: dict[str, Any], expected: int | None) -> None:
    assert gc.default_pull_request(event) == expected
    assert gc.read_inputs(make_env(), event).pull_request == expected


def test_an_explicit_pull_request_wins_over_the_events() -> None:
    assert gc.read_inputs(make_env(pull_request="12"), {"pull_request": {"number": 42}}).pull_request == 12


def _pr(head: Any, base: str = "octo-org/octo-repo") -> dict[str, Any]:
    return {"pull_request": {"number": 3, "head": {"repo": head}, "base": {"repo": {"full_name": base}}}}


@pytest.mark.parametrize(
    ("event_name", "event", "fork"),
    [
        ("pull_request", _pr({"full_name": "mallory/octo-repo", "fork": True}), True),
        ("pull_request_review", _pr({"full_name": "mallory/octo-repo", "fork": True}), True),
        ("pull_request", _pr({"full_name": "octo-org/octo-repo", "fork": False}), False),
        ("pull_request", _pr({"full_name": "octo-org/octo-repo", "fork": True}), False),
        ("pull_request", _pr(None), True),
        ("pull_request", {"pull_request": {"head": {"repo": {"fork": True}}}}, True),
        ("pull_request_target", _pr({"full_name": "mallory/octo-repo", "fork": True}), False),
        ("push", {}, False),
    ],
    ids=[
        "from-a-fork",
        "review-of-a-fork-pr",
        "same-repository",
        "branch-of-a-repository-that-is-itself-a-fork",
        "fork-deleted",
        "only-the-fork-flag",
        "pull-request-target-runs-in-the-base",
        "push",
    ],
)
def test_fork_pull_requests_are_recognised(event_name: str, event: dict[str, Any], fork: bool) -> None:
    assert gc.is_fork_pull_request({"GITHUB_EVENT_NAME": event_name}, event) is fork


# -- the OIDC token ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_url", "audience", "expected"),
    [
        (TOKEN_URL, "agent-gate", TOKEN_URL + "&audience=agent-gate"),
        (
            TOKEN_URL,
            "https://gate.example.com/a b&c",
            TOKEN_URL + "&audience=https%3A%2F%2Fgate.example.com%2Fa%20b%26c",
        ),
        ("https://runner.local/idtoken", "agent-gate", "https://runner.local/idtoken?audience=agent-gate"),
    ],
    ids=["default-audience", "audience-url-encoded", "url-without-a-query"],
)
def test_the_token_request_names_the_audience(request_url: str, audience: str, expected: str) -> None:
    world = World()
    env = make_env(audience=audience) | {"ACTIONS_ID_TOKEN_REQUEST_URL": request_url}
    assert gc.fetch_token(env, {}, gc.read_inputs(env, {}), world.io, deadline=30) == TOKEN
    (sent,) = world.requests
    assert sent.method == "GET" and sent.url == expected
    assert sent.headers["Authorization"] == "bearer runner-request-token"


def test_the_token_is_masked_before_anything_else_is_printed() -> None:
    world = World()
    assert run_main(world, make_env()) == 0
    first_use = next(i for i, line in enumerate(world.lines) if TOKEN in line)
    assert world.lines[first_use] == f"::add-mask::{TOKEN}"
    assert all(TOKEN not in line for line in world.lines[first_use + 1 :]), "the token is never printed"
    assert all(TOKEN not in text for text in world.files.values())
    assert world.gate_requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "missing",
    ["ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
    ids=["url", "request-token"],
)
def test_missing_id_token_permission_says_what_yaml_to_add(missing: str) -> None:
    world = World()
    env = make_env()
    del env[missing]
    assert run_main(world, env) == 1
    (error,) = world.annotations()
    assert error.title == "agent-gate: missing permissions: id-token: write"
    assert f"{missing} is not set" in error.message
    assert "permissions:\n  id-token: write" in world.summary
    assert world.outputs["allowed"] == "false"
    assert world.requests == [], "no request without a token"


def test_outside_github_actions_the_message_says_so() -> None:
    world = World()
    env = make_env()
    del env["ACTIONS_ID_TOKEN_REQUEST_URL"], env["GITHUB_ACTIONS"]
    run_main(world, env)
    assert "does not look like a GitHub Actions job" in world.annotations()[0].message


def test_a_fork_pull_request_is_told_github_gives_it_no_token() -> None:
    world = World()
    env = make_env(with_event=True) | {"GITHUB_EVENT_NAME": "pull_request"}
    del env["ACTIONS_ID_TOKEN_REQUEST_URL"], env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    assert run_main(world, env, _pr({"full_name": "mallory/octo-repo", "fork": True})) == 1
    (error,) = world.annotations()
    assert error.title == "agent-gate: no OIDC token for a pull request from a fork"
    assert "pull_request_target" in world.summary, "and warns against the dangerous workaround"


@pytest.mark.parametrize(
    ("token_outcomes", "message"),
    [
        ([Reply(401, b"expired")], "answered HTTP 401 without a token"),
        ([Reply(200, b'{"count": 0}')], "answered HTTP 200 without a token"),
        ([Reply(200, b'{"value": "not-a-jwt"}')], "not a JWT"),
        ([REFUSED], "did not answer (connection error"),
    ],
    ids=["refused", "no-value", "not-a-jwt", "unreachable"],
)
def test_token_service_failures(token_outcomes: list[Outcome], message: str) -> None:
    world = World(token=token_outcomes)
    assert run_main(world, make_env(timeout="3")) == 1
    (error,) = world.annotations()
    assert error.title == "agent-gate: could not get the OIDC token"
    assert message in error.message
    assert world.gate_requests == []


def test_the_token_service_is_retried_like_the_gate() -> None:
    world = World(token=[Reply(503, b""), token_reply()])
    assert run_main(world, make_env()) == 0
    assert world.slept == [1.0]


# -- retries ---------------------------------------------------------------------------------------------


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(WALL + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("outcomes", "slept"),
    [
        ([REFUSED, ALLOWED], [1.0]),
        ([TransportError("connection", "reset by peer"), REFUSED, ALLOWED], [1.0, 2.0]),
        ([gate_reply(502, b"<html>bad gateway</html>"), gate_reply(504, b""), ALLOWED], [1.0, 2.0]),
        (
            [
                gate_reply(503, error_body("GitHub is slow", "github-unavailable"), **{"Retry-After": "3"}),
                ALLOWED,
            ],
            [3.0],
        ),
        ([gate_reply(503, b"", **{"Retry-After": "0"}), ALLOWED], [0.0]),
        ([gate_reply(503, b"", **{"Retry-After": _http_date(5)}), ALLOWED], [5.0]),
        ([gate_reply(503, b"", **{"Retry-After": "soon"}), ALLOWED], [1.0]),
        ([TransportError("timeout", "timed out"), ALLOWED], [1.0]),
        ([DENIED], []),
        ([gate_reply(500, error_body("bug", "internal"))], []),
        ([gate_reply(400, error_body("bad", "invalid-field"))], []),
    ],
    ids=[
        "connection-refused-once",
        "backoff-doubles",
        "bad-gateway-then-gateway-timeout",
        "retry-after-seconds",
        "retry-after-zero",
        "retry-after-http-date",
        "retry-after-unreadable-backs-off",
        "timeout-then-answer",
        "a-deny-is-an-answer",
        "500-is-not-transient",
        "400-is-not-transient",
    ],
)
def test_transient_failures_are_retried(outcomes: list[Outcome], slept: list[float]) -> None:
    world = World(gate=outcomes)
    inputs = inputs_of(timeout="30")
    reply = ask(world, inputs, deadline=world.now + inputs.timeout)
    assert reply is outcomes[-1]
    assert world.slept == pytest.approx(slept)
    assert len(world.gate_requests) == len(outcomes)


def test_each_attempt_gets_only_the_time_that_is_left() -> None:
    world = World(gate=[REFUSED, REFUSED, ALLOWED])
    ask(world, inputs_of(), deadline=10.0)
    assert [r.timeout for r in world.gate_requests] == [10.0, 9.0, 7.0]


def test_a_hung_attempt_leaves_time_for_another() -> None:
    world = World(gate=[TransportError("timeout", "timed out"), ALLOWED])
    ask(world, inputs_of(timeout="30"), deadline=30.0)
    assert [r.timeout for r in world.gate_requests] == [15.0, 14.0]


def test_every_attempt_shows_the_gate_a_fresh_token() -> None:
    """The gate claims a token once; a retry with the same one would be refused as replayed."""
    first, second = unsigned_token(jti="one"), unsigned_token(jti="two")
    world = World(token=[token_reply(first), token_reply(second)], gate=[gate_reply(504, b""), DENIED])
    assert run_main(world, make_env()) == 1
    sent = [r.headers["Authorization"] for r in world.gate_requests]
    assert sent == [f"Bearer {first}", f"Bearer {second}"]
    assert f"::add-mask::{first}" in world.lines and f"::add-mask::{second}" in world.lines


def test_backoff_is_jittered_and_capped() -> None:
    world = World(gate=[REFUSED] * 8 + [ALLOWED])
    io = dataclasses.replace(world.io, random=lambda: 1.0)
    gc.ask_gate(inputs_of(), lambda: TOKEN, io, deadline=1000.0)
    assert world.slept == [1.25, 2.5, 5.0, 10.0, 10.0, 10.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("outcomes", "title", "message"),
    [
        ([REFUSED], "the gate is unreachable", "Could not connect to `https://gate.example.com`"),
        (
            [TransportError("connection", "[Errno -2] Name or service not known")],
            "the gate is unreachable",
            "Name or service not known",
        ),
        (
            [TransportError("timeout", "timed out")],
            "the gate did not answer in time",
            "within the `timeout` of 5 s",
        ),
        (
            [gate_reply(503, error_body("the audit log is unavailable", "audit-unavailable"))],
            "the gate is unavailable",
            "HTTP 503",
        ),
        ([gate_reply(502, b"<html>")], "the gate is unavailable", "It fails closed"),
        (
            [TransportError("tls", "certificate verify failed")],
            "the gate's TLS certificate was refused",
            "certificate verify failed",
        ),
        (
            [TransportError("protocol", "BadStatusLine: junk")],
            "malformed reply from the gate",
            "did not answer with HTTP",
        ),
    ],
    ids=["refused", "dns", "timeout", "unavailable", "bad-gateway", "tls", "not-http"],
)
def test_when_the_time_is_up_the_failure_says_what_happened(
    outcomes: list[Outcome], title: str, message: str
) -> None:
    world = World(gate=outcomes)
    inputs = inputs_of(timeout="5")
    with pytest.raises(ActionFailure) as caught:
        ask(world, inputs, deadline=world.now + 5)
    assert caught.value.title == title
    assert message in caught.value.message
    assert world.now <= 5, "never past the budget"


def test_tls_and_protocol_errors_are_not_retried() -> None:
    world = World(gate=[TransportError("tls", "certificate verify failed")])
    with pytest.raises(ActionFailure):
        ask(world, inputs_of(), deadline=30)
    assert len(world.gate_requests) == 1 and world.slept == []


def test_a_retry_after_past_the_budget_gives_up_at_once() -> None:
    world = World(
        gate=[gate_reply(503, error_body("rate limited", "github-rate-limited"), **{"Retry-After": "120"})]
    )
    with pytest.raises(ActionFailure, match="HTTP 503") as caught:
        ask(world, inputs_of(timeout="30"), deadline=30)
    assert world.slept == []
    assert "retry after 120 s, past the `timeout`" in caught.value.details
    assert "`github-rate-limited`" in caught.value.details


# -- reading the gate's answer ------------------------------------------------------------------------------


def test_the_request_body_carries_only_the_given_fields() -> None:
    world = World()
    env = make_env(environment="production", sha=SHA.upper(), request_grant="true", with_event=True)
    run_main(world, env, {"pull_request": {"number": 42}})
    assert json.loads(world.gate_requests[0].body or b"") == {
        "action": "deploy",
        "environment": "production",
        "pull_request": 42,
        "sha": SHA,
        "grant": True,
    }
    world = World()
    run_main(world, make_env(action="read"), None)
    assert json.loads(world.gate_requests[0].body or b"") == {"action": "read"}


@pytest.mark.parametrize(
    ("reply", "title", "message"),
    [
        (
            gate_reply(200, decision_body(allowed=False)),
            "malformed reply from the gate",
            "contradicts its status",
        ),
        (
            gate_reply(403, decision_body(allowed=True)),
            "malformed reply from the gate",
            "contradicts its status",
        ),
        (gate_reply(200, decision_body(action="merge")), "malformed reply from the gate", "contradicts"),
        (
            gate_reply(200, b"<html>It works!</html>", **{"Content-Type": "text/html"}),
            "malformed reply from the gate",
            "text/html",
        ),
        (gate_reply(200, {"allowed": True}), "malformed reply from the gate", "not an agent-gate decision"),
        (
            gate_reply(404, b"Not Found", **{"Content-Type": "text/plain"}),
            "malformed reply from the gate",
            "HTTP 404",
        ),
        (gate_reply(401, b"<html>login</html>"), "malformed reply from the gate", "HTTP 401"),
        (
            gate_reply(401, error_body("this token was already used", "replayed")),
            "the gate refused the token (replayed)",
            "HTTP 401: this token was already used",
        ),
        (
            gate_reply(400, error_body("environment: ...", "environment-mismatch")),
            "the gate refused the request (environment-mismatch)",
            "HTTP 400",
        ),
        (
            gate_reply(415, error_body("expected application/json")),
            "the gate refused the request",
            "HTTP 415",
        ),
        (
            gate_reply(403, error_body("blocked by policy")),
            "the gate refused the request",
            "blocked by policy",
        ),
        (
            gate_reply(500, error_body("internal error", "internal")),
            "the gate answered HTTP 500 (internal)",
            "internal error",
        ),
        (
            gate_reply(302, b"", Location="https://login.example.com/"),
            "the gate answered with a redirect",
            "https://login.example.com/",
        ),
    ],
    ids=[
        "200-says-denied",
        "403-says-allowed",
        "decision-about-another-action",
        "html-page",
        "json-but-not-a-decision",
        "404-not-the-gate",
        "401-not-the-gate",
        "401-replayed",
        "400-environment-mismatch",
        "415",
        "403-without-a-decision",
        "500",
        "redirect",
    ],
)
def test_replies_that_are_not_a_decision(reply: Reply, title: str, message: str) -> None:
    with pytest.raises(ActionFailure) as caught:
        gc.read_decision(reply, inputs_of(), TOKEN)
    assert caught.value.title == title
    assert message in caught.value.message + caught.value.details


@pytest.mark.parametrize(
    ("codes", "hint"),
    [
        (("wrong-audience",), "Set the `audience` input"),
        (("replayed",), "accepts each token once"),
        (("untrusted-issuer",), "GATE_ISSUERS"),
        (("expired",), "re-run the job"),
        (("bad-signature",), None),
    ],
    ids=["wrong-audience", "replayed", "untrusted-issuer", "expired", "no-hint"],
)
def test_a_refused_token_shows_codes_hints_and_claims_for_debugging(
    codes: tuple[str, ...], hint: str | None
) -> None:
    reply = gate_reply(401, error_body("the token was refused", *codes))
    with pytest.raises(ActionFailure) as caught:
        gc.read_decision(reply, inputs_of(), TOKEN)
    details = caught.value.details
    assert all(f"`{code}`" in details for code in codes)
    assert (hint in details) if hint else ("What to do" not in details)
    assert "for debugging only" in details
    claims = json.loads(details.split("```json\n")[1].split("\n```")[0])
    assert claims["repository"] == "octo-org/octo-repo" and claims["repository_id"] == "2000"
    assert claims["exp"] == "2026-05-01T12:05:00Z"
    assert "secretish" not in claims, "only the listed, non-secret claims"
    assert TOKEN.split(".")[2] not in details and TOKEN not in details


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.!!!.c", "a." + "bnVsbA" + ".c", ""],
    ids=["no-dots", "bad-base64", "json-null", "empty"],
)
def test_unreadable_tokens_have_no_debug_claims(token: str) -> None:
    assert gc.unverified_claims(token) == {}


def test_a_time_claim_out_of_range_is_shown_as_it_is() -> None:
    assert gc.unverified_claims(unsigned_token(exp=10**20))["exp"] == 10**20


# -- workflow commands, outputs, summary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("100%", "100%25", "100%25"),
        ("two\nlines\r", "two%0Alines%0D", "two%0Alines%0D"),
        ("a: b, c", "a: b, c", "a%3A b%2C c"),
        ("%0A", "%250A", "%250A"),
    ],
    ids=["plain", "percent", "newlines", "colon-comma", "already-encoded"],
)
def test_workflow_command_escaping(text: str, data: str, prop: str) -> None:
    assert gc.escape_data(text) == data
    assert gc.escape_property(text) == prop


def test_an_annotation_is_one_line_and_decodes_to_the_message() -> None:
    world = World()
    gc.annotate(world.io, "error", "agent-gate: x, y", "line one\nline two: 100%")
    (line,) = world.lines
    assert "\n" not in line
    (command,) = parse_commands(line)
    assert (command.title, command.message) == ("agent-gate: x, y", "line one\nline two: 100%")


def test_outputs_use_a_delimiter_the_value_does_not_contain() -> None:
    world = World(delimiters=["EOF", "EOF", "ghadelimiter_2"])
    gc.set_outputs(
        {"GITHUB_OUTPUT": "/runner/output"}, world.io, {"details-url": "x\nEOF\ny", "allowed": "true"}
    )
    assert world.files["/runner/output"].startswith("details-url<<ghadelimiter_2\n")
    assert world.outputs == {"details-url": "x\nEOF\ny", "allowed": "true"}


def test_without_github_output_the_step_warns() -> None:
    world = World()
    gc.set_outputs({}, world.io, {"allowed": "true"})
    assert world.files == {} and world.annotations("warning")


def test_an_allowed_summary() -> None:
    summary = gc.decision_summary(decision_body(allowed=True))
    assert summary.startswith("## agent-gate: ✅ allowed `deploy`\n")
    assert "| Rule | `deploy-production` |" in summary
    assert "| Repository | `octo-org/octo-repo` at `e5a8f2c1d3b4` (`refs/heads/main`) |" in summary
    assert "- ✔ `rule` rule 'deploy-production' allows deploy" in summary
    assert f"[`dec_2ySq7ej2JL9AuMOx5mPTMQ`]({DETAILS_URL})" in summary
    assert "What would make it pass" not in summary


def test_a_denied_summary_has_the_remedy_and_the_approvals_considered() -> None:
    approvals = [
        {
            "source": "review",
            "login": "octocat",
            "id": 1,
            "state": "APPROVED",
            "commit": SHA,
            "counted": False,
            "why": "the actor cannot approve their own run",
        },
        {
            "source": "environment",
            "login": "hubot",
            "id": 2,
            "state": "approved",
            "commit": None,
            "counted": True,
            "why": "independent | human",
        },
    ]
    summary = gc.decision_summary(decision_body(allowed=False, approvals=approvals))
    assert "## agent-gate: ⛔ denied `deploy`" in summary
    assert "- ✖ `approvals` 1 independent approval of e5a8f2c1d3b4 needed, got 0" in summary
    assert "### What would make it pass\n\nan independent human approves" in summary
    assert (
        "| octocat | review | APPROVED | `e5a8f2c1d3b4` | no | the actor cannot approve their own run |"
        in summary
    )
    assert "| hubot | environment | approved |  | yes | independent \\| human |" in summary


def test_an_agent_driven_summary_names_the_signals() -> None:
    subject = decision_body()["subject"] | {
        "agent": True,
        "actor": "Copilot",
        "triggering_actor": "octocat",
        "agent_signals": [{"name": "actor", "detail": "actor Copilot is the Copilot coding agent"}],
        "pull_request": 42,
    }
    summary = gc.decision_summary(decision_body(subject=subject))
    assert (
        "| Actor | Copilot, triggered by octocat — **agent-driven**: actor Copilot is the Copilot coding agent |"
        in summary
    )
    assert "| Pull request | #42 |" in summary


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "`plain`"),
        ("a`b", "``a`b``"),
        ("`edge", "`` `edge ``"),
        ("x|y", "`x\\|y`"),
        ("two\nlines", "`two lines`"),
    ],
    ids=["plain", "inner-backtick", "edge-backtick", "pipe", "newline"],
)
def test_code_spans_cannot_be_broken_out_of(value: str, rendered: str) -> None:
    assert gc._code(value) == rendered


def test_text_from_a_reply_cannot_inject_html_or_break_the_table() -> None:
    body = decision_body(
        allowed=False, reasons=[{"code": "x", "ok": False, "message": "<img src=x onerror=y>|\n## heading"}]
    )
    summary = gc.decision_summary(body)
    assert "<img" not in summary and "&lt;img src=x onerror=y&gt;| ## heading" in summary


def test_credentials_are_described_never_shown() -> None:
    body = decision_body(
        grant={
            "token": "grant.jwt.value",
            "jti": "gr_1",
            "audience": "deploy:production",
            "expires_at": "2026-05-01T12:10:00Z",
        },
        github_token={
            "token": "ghs_secret",
            "expires_at": "2026-05-01T13:00:00Z",
            "permissions": {"contents": "read"},
        },
    )
    summary = gc.decision_summary(body)
    assert "Grant `gr_1` for audience `deploy:production`" in summary
    assert "GitHub token for this repository (contents: read)" in summary
    assert "grant.jwt.value" not in summary and "ghs_secret" not in summary


# -- the step, end to end through main() -------------------------------------------------------------------


def test_allowed() -> None:
    world = World()
    assert run_main(world, make_env()) == 0
    assert world.outputs == {
        "allowed": "true",
        "decision-id": "dec_2ySq7ej2JL9AuMOx5mPTMQ",
        "permission": "execute",
        "details-url": DETAILS_URL,
    }
    assert world.summary.startswith("## agent-gate: ✅ allowed")
    assert world.annotations("error") == [] and world.annotations("warning") == []


@pytest.mark.parametrize("fail_on_deny", ["true", "false"])
def test_would_deny_in_audit_mode_passes_with_a_warning(fail_on_deny: str) -> None:
    would = decision_body(allowed=False)
    would.update(allowed=True, would_deny=True, remedy="an independent human approves e5a8f2c1d3b4")
    world = World(gate=[gate_reply(200, would)])
    assert run_main(world, make_env(fail_on_deny=fail_on_deny)) == 0
    assert world.outputs["allowed"] == "true"
    (annotation,) = world.annotations("warning")
    assert annotation.title == "agent-gate would deny deploy (audit mode)"
    assert annotation.message.startswith(
        "Allowed only because the rule is in audit mode; once it is enforced: 1 independent approval"
    )
    assert world.annotations("error") == []
    assert world.summary.startswith("## agent-gate: ⚠️ allowed in audit mode (would deny)")


@pytest.mark.parametrize(
    ("fail_on_deny", "exit_code", "level"),
    [("true", 1, "error"), ("false", 0, "warning")],
    ids=["fails", "continues"],
)
def test_denied(fail_on_deny: str, exit_code: int, level: str) -> None:
    world = World(gate=[DENIED])
    assert run_main(world, make_env(fail_on_deny=fail_on_deny)) == exit_code
    assert (
        world.outputs["allowed"] == "false" and world.outputs["decision-id"] == "dec_2ySq7ej2JL9AuMOx5mPTMQ"
    )
    (annotation,) = world.annotations(level)
    assert annotation.title == "agent-gate denied deploy"
    assert annotation.message == (
        "1 independent approval of e5a8f2c1d3b4 needed, got 0. What would make it pass: an independent human "
        f"approves the deployment of e5a8f2c1d3b4. Details: {DETAILS_URL}"
    )
    assert "### What would make it pass" in world.summary


@pytest.mark.parametrize(
    ("fail_on_deny", "exit_code", "level"),
    [("true", 1, "error"), ("false", 0, "warning")],
    ids=["fails", "continues"],
)
def test_no_decision_follows_fail_on_deny(fail_on_deny: str, exit_code: int, level: str) -> None:
    world = World(gate=[REFUSED])
    assert run_main(world, make_env(fail_on_deny=fail_on_deny, timeout="2")) == exit_code
    assert world.outputs == {"allowed": "false", "decision-id": "", "permission": "", "details-url": ""}
    assert world.annotations(level)[0].title == "agent-gate: the gate is unreachable"
    assert "## agent-gate: ⛔ the gate is unreachable" in world.summary
    assert "Asked: `deploy` at `https://gate.example.com`." in world.summary


def test_a_broken_step_fails_even_when_denials_may_pass() -> None:
    world = World()
    assert run_main(world, make_env(fail_on_deny="false", action="Deploy!")) == 1
    assert world.annotations("error")[0].title == "agent-gate: invalid input action"


def test_a_bug_fails_closed_without_a_traceback() -> None:
    def broken(request: HttpRequest) -> Reply:
        raise RuntimeError(f"boom {request.headers.get('Authorization')}")

    world = World(gate=[broken])
    assert run_main(world, make_env(fail_on_deny="false")) == 1
    (error,) = world.annotations()
    assert error.title == "agent-gate: internal error" and "RuntimeError" in error.message
    assert world.outputs["allowed"] == "false"
    assert all(TOKEN not in line for line in world.lines if not line.startswith("::add-mask::"))
    assert TOKEN not in world.summary


def test_credentials_are_masked_before_they_are_written() -> None:
    body = decision_body(
        grant={"token": "grant.jwt.value", "jti": "gr_1", "audience": "deploy:production", "expires_at": "x"},
        github_token={"token": "ghs_secret", "expires_at": "y", "permissions": {"contents": "read"}},
    )
    world = World(gate=[gate_reply(200, body)])
    assert run_main(world, make_env(request_grant="true")) == 0
    assert "::add-mask::grant.jwt.value" in world.lines and "::add-mask::ghs_secret" in world.lines
    assert world.outputs["grant"] == "grant.jwt.value" and world.outputs["github-token"] == "ghs_secret"


def test_without_a_summary_file_the_summary_goes_to_the_log() -> None:
    world = World()
    env = make_env()
    del env["GITHUB_STEP_SUMMARY"]
    run_main(world, env)
    assert any(line.startswith("## agent-gate: ✅ allowed") for line in world.lines)


# -- revoke mode -------------------------------------------------------------------------------------------


def revoke_env(**extra: str) -> dict[str, str]:
    return {
        "AG_MODE": "revoke",
        "AG_GATE_URL": GATE,
        "AG_GRANT": "grant.jwt.value",
        "GITHUB_STEP_SUMMARY": "/runner/summary",
        **extra,
    }


@pytest.mark.parametrize(
    ("outcomes", "log", "warning"),
    [
        ([gate_reply(200, {"revoked": ["gr_1"]})], "agent-gate: revoked 1 grant(s)", None),
        ([REFUSED], None, "the grant expires on its own"),
        ([gate_reply(401, error_body("the grant expired", "expired"))], None, "the grant expired"),
        ([gate_reply(200, b"<html>")], None, "HTTP 200"),
    ],
    ids=["revoked", "unreachable", "refused", "junk"],
)
def test_revoke_never_fails_the_job(outcomes: list[Outcome], log: str | None, warning: str | None) -> None:
    world = World(gate=outcomes)
    assert gc.main(revoke_env(), world.io) == 0
    assert world.lines[0] == "::add-mask::grant.jwt.value"
    if log:
        assert log in world.lines
        assert json.loads(world.gate_requests[0].body or b"") == {"reason": "job finished"}
        assert world.gate_requests[0].headers["Authorization"] == "Bearer grant.jwt.value"
    if warning:
        assert warning in world.annotations("warning")[0].message


def test_revoke_without_a_grant_does_nothing() -> None:
    world = World()
    assert gc.main(revoke_env(AG_GRANT=""), world.io) == 0
    assert world.requests == []


# -- the script itself --------------------------------------------------------------------------------------

SCRIPT = Path(gc.__file__)


def test_the_script_runs_on_python_3_9() -> None:
    ast.parse(SCRIPT.read_text(), feature_version=(3, 9))


def test_the_script_imports_only_the_standard_library() -> None:
    tree = ast.parse(SCRIPT.read_text())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    modules |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules - {"__future__"} <= sys.stdlib_module_names


def test_send_http_refuses_other_schemes() -> None:
    with pytest.raises(TransportError, match="not an http"):
        gc.send_http(HttpRequest("GET", "file:///etc/passwd", {}))


# -- send_http, the one real HTTP function, against loopback servers -------------------------------------


@pytest.fixture
def server() -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(*replies: Scripted) -> ScriptedServer:
        started.append(ScriptedServer(*replies))
        return started[-1]

    yield start
    for s in started:
        s.close()


def test_send_http_returns_any_status_as_a_reply(server: Callable[..., ScriptedServer]) -> None:
    gate = server(
        Scripted(201, b'{"ok": 1}', {"X-Test": "yes"}), Scripted(503, b"later", {"Retry-After": "2"})
    )
    first = gc.send_http(
        HttpRequest("POST", gate.url + "/v1/decisions", {"Authorization": "Bearer t"}, b"{}", 5)
    )
    second = gc.send_http(HttpRequest("GET", gate.url + "/x", {}, None, 5))
    assert (first.status, first.body, first.header("x-test")) == (201, b'{"ok": 1}', "yes")
    assert (second.status, second.body, second.header("Retry-After")) == (503, b"later", "2")
    assert gate.received[0].headers["Authorization"] == "Bearer t" and gate.received[0].body == b"{}"


def test_send_http_never_follows_a_redirect(server: Callable[..., ScriptedServer]) -> None:
    elsewhere = server(Scripted(200, b"{}"))
    gate = server(Scripted(307, b"", {"Location": elsewhere.url + "/v1/decisions"}))
    reply = gc.send_http(
        HttpRequest("POST", gate.url + "/v1/decisions", {"Authorization": "Bearer t"}, b"{}", 5)
    )
    assert reply.status == 307 and reply.header("Location").startswith(elsewhere.url)
    assert elsewhere.received == [], "the token went nowhere else"


def test_send_http_no_answer_is_a_transport_error() -> None:
    with pytest.raises(TransportError) as refused:
        gc.send_http(HttpRequest("GET", closed_port_url(), {}, None, 5))
    assert refused.value.kind == "connection"
    silent = SilentServer()
    try:
        with pytest.raises(TransportError) as hung:
            gc.send_http(HttpRequest("GET", silent.url, {}, None, 0.2))
    finally:
        silent.close()
    assert hung.value.kind == "timeout"


def test_send_http_a_reply_that_is_not_http_is_a_protocol_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def babble() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=babble, daemon=True)
        thread.start()
        with pytest.raises(TransportError) as caught:
            gc.send_http(HttpRequest("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/", {}, None, 5))
        thread.join(5)
    assert caught.value.kind == "protocol"


# -- the attestation output ------------------------------------------------------------------------------

ENVELOPE = {
    "payload": "e30=",
    "payloadType": "application/vnd.in-toto+json",
    "signatures": [{"keyid": "ak_1", "sig": "AA=="}],
}


@pytest.mark.parametrize(
    ("attestation", "warning"),
    [
        pytest.param(gate_reply(200, b"<html>"), "not a DSSE envelope", id="not-json"),
        pytest.param(gate_reply(200, {"payload": "e30="}), "not a DSSE envelope", id="not-an-envelope"),
        pytest.param(gate_reply(404, {"message": "no such decision", "errors": []}), "HTTP 404: no such decision", id="404"),
        pytest.param(REFUSED, "did not answer", id="unreachable"),
    ],
)  # fmt: skip
def test_no_attestation_is_a_warning_an_empty_output_and_the_verdict_stands(attestation, warning):
    world = World(gate=[ALLOWED, attestation])
    assert run_main(world, make_env(attestation="true", timeout="5")) == 0
    assert world.outputs["allowed"] == "true" and world.outputs["attestation"] == ""
    (note,) = world.annotations("warning")
    assert note.title == "agent-gate: no attestation" and warning in note.message


def test_the_attestation_is_asked_for_the_decision_with_a_fresh_token():
    world = World(gate=[ALLOWED, gate_reply(200, ENVELOPE)])
    assert run_main(world, make_env(attestation="true")) == 0
    assert json.loads(world.outputs["attestation"]) == ENVELOPE
    fetch = world.gate_requests[-1]
    assert (fetch.method, fetch.url) == ("GET", f"{GATE}/v1/decisions/{DECISION_ID}/attestation")
    assert fetch.headers["Accept"] == "application/vnd.dsse.envelope.v1+json"
    assert fetch.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len([r for r in world.requests if "audience=" in r.url]) == 2, "one token per request to the gate"


def test_a_decision_without_a_well_formed_id_is_not_fetched():
    world = World(gate=[gate_reply(200, decision_body(decision_id="../../admin"))])
    run_main(world, make_env(attestation="true"))
    assert len(world.gate_requests) == 1 and world.outputs.get("attestation") == ""
