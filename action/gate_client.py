#!/usr/bin/env python3
"""agent-gate's composite action: fetch the job's OIDC token, ask the gate, explain the answer.

Standard library only and Python 3.9+ (GitHub-hosted runners have python3; nothing is installed at
run time). action.yml hands the inputs over as ``AG_*`` environment variables, never through
``${{ }}`` inside a script. Everything that touches the outside world (HTTP, files, standard
output, clocks, randomness) goes through :class:`Io`, so tests run :func:`main` against fakes or a
simulated runner. The OIDC token is never printed; it is masked anyway.

Exit status: 0 when allowed (or denied/undecided with ``fail-on-deny: false``), 1 otherwise.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import email.utils
import http.client
import ipaddress
import json
import os
import random
import re
import secrets
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_AUDIENCE = "agent-gate"
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
TRANSIENT_STATUSES = frozenset({502, 503, 504})  # what GitHub's own toolkit retries
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 8.0
MAX_REPLY_BYTES = 1024 * 1024
# A gate attempt may use half the step's timeout (at least 5 s), so a hung connection leaves time
# for a second attempt; GitHub's token service answers fast or not at all.
MIN_ATTEMPT_TIMEOUT = 5.0
TOKEN_ATTEMPT_TIMEOUT = 10.0
USER_AGENT = "agent-gate-action/1"

# The gate's request contract (app/decision.py DecisionRequest), checked here so a typo fails
# before a token is spent, with the input's name in the message.
ACTION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
GIT_SHA = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
DECISION_ID = re.compile(r"^dec_[A-Za-z0-9_-]{16,64}$")
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"

# Non-secret claims shown, decoded without verification, when the gate refuses a token.
DEBUG_CLAIMS = (
    "iss",
    "aud",
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "sha",
    "event_name",
    "actor",
    "actor_id",
    "environment",
    "runner_environment",
    "run_id",
    "iat",
    "exp",
)
TIME_CLAIMS = ("iat", "exp")

# What to do about each of the gate's 401 codes (docs/api.md lists them).
TOKEN_HINTS = {
    "wrong-audience": "Set the `audience` input to the gate's audience (`GATE_AUDIENCE`; default `agent-gate`).",
    "untrusted-issuer": "The gate does not trust this token's issuer; on GitHub Enterprise Server or with "
    "an enterprise-specific issuer, ask the gate's operators to add it to `GATE_ISSUERS`.",
    "replayed": "The gate accepts each token once and had seen this one (each attempt of this step fetches "
    "a fresh token, so something else used it); re-run the job.",
    "expired": "The token expired before the gate saw it; re-run the job, and check the gate's clock.",
    "too-old": "The token was issued too long ago for the gate; re-run the job.",
    "not-yet-valid": "The token is not valid yet by the gate's clock; check the gate's time synchronisation.",
    "unknown-key": "The gate does not know the key that signed the token (GitHub may have rotated its "
    "keys); re-run the job, and tell the gate's operators if it persists.",
    "missing-token": "The request reached the gate without a token (a proxy may strip `Authorization`).",
}

FORK_EVENTS = frozenset({"pull_request", "pull_request_review", "pull_request_review_comment"})
PERMISSIONS_SNIPPET = (
    "```yaml\n"
    "permissions:\n"
    "  id-token: write   # lets the job fetch its OIDC token for agent-gate\n"
    "  contents: read    # a job-level permissions block replaces the defaults: list all you need\n"
    "```"
)


class ActionFailure(Exception):
    """Why the step ends without an allow: a title, a one-line message and Markdown details.

    ``always_fails`` marks a broken step (bad inputs, a bug), which fails even with
    ``fail-on-deny: false``.
    """

    def __init__(self, title: str, message: str, details: str = "", *, always_fails: bool = False) -> None:
        super().__init__(f"{title}: {message}")
        self.title = title
        self.message = message
        self.details = details
        self.always_fails = always_fails


class TransportError(Exception):
    """No HTTP answer. ``kind`` is timeout, connection, tls or protocol (a reply that is not HTTP)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class RetriesExhausted(Exception):
    """The last transient outcome after the budget ran out, and how many attempts were made."""

    def __init__(self, last: TransportError | Reply, attempts: int, note: str = "") -> None:
        super().__init__(f"{attempts} attempts")
        self.last = last
        self.attempts = attempts
        self.note = note


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")


@dataclass(frozen=True)
class Inputs:
    gate_url: str
    action: str
    audience: str
    environment: str
    pull_request: int | None
    sha: str
    request_grant: bool
    fail_on_deny: bool
    timeout: float
    attestation: bool = False  # also fetch the decision's signed attestation (output `attestation`)


# -- I/O: the only functions that touch the outside world ---------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the token's Authorization header to another URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send_http(request: HttpRequest) -> Reply:
    """One HTTP exchange. Any status is a :class:`Reply`; no answer raises :class:`TransportError`."""
    if urllib.parse.urlsplit(request.url).scheme not in {"https", "http"}:
        raise TransportError("connection", f"not an http(s) URL: {request.url.split(':')[0]}:")
    prepared = urllib.request.Request(  # noqa: S310  # http(s) only, checked above
        request.url, data=request.body, headers=dict(request.headers), method=request.method
    )
    try:
        with _OPENER.open(prepared, timeout=request.timeout) as response:
            return Reply(response.status, response.read(MAX_REPLY_BYTES), dict(response.headers.items()))
    except urllib.error.HTTPError as exc:  # a status other than 2xx: still an answer
        error = exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _transport_error(exc) from exc
    try:
        body = error.read(MAX_REPLY_BYTES)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _transport_error(exc) from exc
    finally:
        error.close()
    return Reply(error.code, body, dict(error.headers.items()) if error.headers else {})


def _transport_error(exc: BaseException) -> TransportError:
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return TransportError("timeout", "timed out")
    if isinstance(reason, ssl.SSLError):
        return TransportError("tls", str(reason))
    if isinstance(reason, http.client.HTTPException) and not isinstance(reason, ConnectionError):
        return TransportError("protocol", f"{reason.__class__.__name__}: {reason}")
    if isinstance(reason, BaseException):
        return TransportError("connection", str(reason) or reason.__class__.__name__)
    return TransportError("connection", str(reason))


def append_file(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def read_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def emit(line: str) -> None:
    """A line on standard output: the job log, and the runner's workflow commands."""
    print(line, flush=True)


@dataclass(frozen=True)
class Io:
    """The outside world. Tests replace any part of it."""

    http: Callable[[HttpRequest], Reply] = send_http
    append_file: Callable[[str, str], None] = append_file
    read_file: Callable[[str], str] = read_file
    emit: Callable[[str], None] = emit
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    delimiter: Callable[[], str] = lambda: f"ghadelimiter_{secrets.token_hex(16)}"


# -- workflow commands, outputs and the summary ------------------------------------------------------


def escape_data(text: str) -> str:
    """GitHub's escaping of a workflow command's message (``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """GitHub's escaping of a workflow command's property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotate(io: Io, level: str, title: str, message: str) -> None:
    io.emit(f"::{level} title={escape_property(title)}::{escape_data(message)}")


def mask(io: Io, secret: str) -> None:
    for line in secret.splitlines():
        if line.strip():
            io.emit(f"::add-mask::{line}")


def set_outputs(env: Mapping[str, str], io: Io, outputs: Mapping[str, str]) -> None:
    """Append ``name<<DELIMITER`` blocks to ``$GITHUB_OUTPUT``; no value can contain its delimiter."""
    path = env.get("GITHUB_OUTPUT", "")
    if not path:
        io.emit("::warning title=agent-gate::GITHUB_OUTPUT is not set; this runner cannot receive outputs")
        return
    text = ""
    for name, value in outputs.items():
        delimiter = io.delimiter()
        while delimiter in value or delimiter in name:
            delimiter = io.delimiter()
        text += f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    io.append_file(path, text)


def write_summary(env: Mapping[str, str], io: Io, markdown: str) -> None:
    path = env.get("GITHUB_STEP_SUMMARY", "")
    if path:
        io.append_file(path, markdown)
    else:  # not on a runner (a local try-out): the log is the only place left
        io.emit(markdown)


def _text(value: object) -> str:
    """Plain text for Markdown: no HTML, one line."""
    text = " ".join(str(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _no_html(text: str) -> str:
    """Markdown written here, with any HTML from a reply neutralised."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: object) -> str:
    return _text(value).replace("|", "\\|")


def _code(value: object) -> str:
    """An inline code span that no backtick in ``value`` can close early."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -- inputs --------------------------------------------------------------------------------------------


def _invalid(name: str, message: str) -> ActionFailure:
    return ActionFailure(f"invalid input {name}", message, always_fails=True)


def parse_bool(value: str, name: str, default: bool) -> bool:
    word = value.strip().lower()
    if not word:
        return default
    if word in {"true", "yes", "1"}:
        return True
    if word in {"false", "no", "0"}:
        return False
    raise _invalid(name, f"`{name}` must be true or false, got {_code(value)}.")


def check_gate_url(value: str) -> str:
    """The gate's base URL without a trailing slash: https, or http to a loopback address."""
    url = value.strip().rstrip("/")
    if not url:
        raise _invalid(
            "gate-url", "`gate-url` is required: the gate's base URL, e.g. https://agent-gate.example.com."
        )
    parsed = urllib.parse.urlsplit(url)
    if parsed.username is not None or parsed.password is not None or parsed.query or parsed.fragment:
        raise _invalid("gate-url", "`gate-url` must be a plain base URL: no credentials, query or fragment.")
    if parsed.scheme == "https" and parsed.hostname:
        return url
    if parsed.scheme == "http" and _is_loopback(parsed.hostname or ""):
        return url
    raise _invalid(
        "gate-url",
        f"`gate-url` is {_code(url)}; it must be an https:// URL (the token travels in it), "
        "or http:// to a loopback address for local tests.",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_inputs(env: Mapping[str, str], event: Mapping[str, Any]) -> Inputs:
    """The step's inputs from the ``AG_*`` variables. Raises :class:`ActionFailure` naming the input."""
    action = env.get("AG_ACTION", "").strip()
    if not ACTION_NAME.match(action):
        raise _invalid(
            "action",
            f"`action` must be an action name such as deploy, merge or open-pull-request "
            f"(lowercase letters, digits and dashes), got {_code(action) if action else 'nothing'}.",
        )
    pr_text = env.get("AG_PULL_REQUEST", "").strip()
    if pr_text:
        if not pr_text.isdigit() or not 1 <= int(pr_text) <= 2**31:
            raise _invalid(
                "pull-request", f"`pull-request` must be a pull request number, got {_code(pr_text)}."
            )
        pull_request: int | None = int(pr_text)
    else:
        pull_request = default_pull_request(event)
    sha = env.get("AG_SHA", "").strip().lower()
    if sha and not GIT_SHA.match(sha):
        raise _invalid("sha", f"`sha` must be a full commit sha (40 hex digits), got {_code(sha)}.")
    environment = env.get("AG_ENVIRONMENT", "").strip()
    if len(environment) > 255:
        raise _invalid("environment", "`environment` is longer than GitHub allows (255 characters).")
    timeout_text = env.get("AG_TIMEOUT", "").strip() or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(timeout_text)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= MAX_TIMEOUT:
        raise _invalid(
            "timeout",
            f"`timeout` must be a number of seconds up to {MAX_TIMEOUT:.0f}, got {_code(timeout_text)}.",
        )
    return Inputs(
        gate_url=check_gate_url(env.get("AG_GATE_URL", "")),
        action=action,
        audience=env.get("AG_AUDIENCE", "").strip() or DEFAULT_AUDIENCE,
        environment=environment,
        pull_request=pull_request,
        sha=sha,
        request_grant=parse_bool(env.get("AG_REQUEST_GRANT", ""), "request-grant", False),
        fail_on_deny=parse_bool(env.get("AG_FAIL_ON_DENY", ""), "fail-on-deny", True),
        timeout=timeout,
        attestation=parse_bool(env.get("AG_ATTESTATION", ""), "attestation", False),
    )


def load_event(env: Mapping[str, str], io: Io) -> dict[str, Any]:
    """The webhook payload at ``$GITHUB_EVENT_PATH``, or {} when there is none or it is unreadable."""
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        return {}
    try:
        data = json.loads(io.read_file(path))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def default_pull_request(event: Mapping[str, Any]) -> int | None:
    """The event's pull request: ``pull_request.number``, or a comment's PR (``issue.pull_request``)."""
    number = _dict(event.get("pull_request")).get("number")
    if number is None:
        issue = _dict(event.get("issue"))
        number = issue.get("number") if issue.get("pull_request") else None
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else None


def is_fork_pull_request(env: Mapping[str, str], event: Mapping[str, Any]) -> bool:
    """A run for a pull request whose head lives in another repository (GitHub gives it no token)."""
    if env.get("GITHUB_EVENT_NAME", "") not in FORK_EVENTS:
        return False
    pr = _dict(event.get("pull_request"))
    if not pr:
        return False
    head_repo = _dict(pr.get("head")).get("repo")
    if head_repo is None:  # the fork was deleted
        return True
    head, base = _dict(head_repo), _dict(_dict(pr.get("base")).get("repo"))
    if head.get("full_name") and base.get("full_name"):
        return bool(head["full_name"] != base["full_name"])
    return head.get("fork") is True


# -- the OIDC token ------------------------------------------------------------------------------------


def fetch_token(
    env: Mapping[str, str], event: Mapping[str, Any], inputs: Inputs, io: Io, deadline: float
) -> str:
    """The job's OIDC token for ``inputs.audience``, masked before anything else sees it."""
    url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    bearer = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not url or not bearer:
        raise _no_token_failure(
            env, event, "ACTIONS_ID_TOKEN_REQUEST_URL" if not url else "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
        )
    # GitHub's URL already has a query (api-version); the audience is appended URL-encoded.
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    request = HttpRequest(
        "GET",
        f"{url}{separator}audience={urllib.parse.quote(inputs.audience, safe='')}",
        {"Authorization": f"bearer {bearer}", "Accept": "application/json", "User-Agent": USER_AGENT},
    )
    what = "GitHub's OIDC token service"
    try:
        reply = send_with_retries(
            io,
            lambda timeout: io.http(dataclasses.replace(request, timeout=timeout)),
            deadline=deadline,
            attempt_timeout=TOKEN_ATTEMPT_TIMEOUT,
            what=what,
        )
    except RetriesExhausted as exc:
        raise ActionFailure(
            "could not get the OIDC token",
            f"{what} did not answer ({_describe(exc.last)}, {exc.attempts} attempt(s)). Re-run the job; "
            "if it persists, check https://www.githubstatus.com.",
        ) from None
    try:
        value = json.loads(reply.body)["value"] if reply.status == 200 else None
    except (ValueError, KeyError, TypeError):
        value = None
    if not isinstance(value, str) or not value:
        raise ActionFailure(
            "could not get the OIDC token",
            f"{what} answered HTTP {reply.status} without a token. Re-run the job; the request token "
            "expires when the job does.",
        )
    mask(io, value)
    if value.count(".") != 2:
        raise ActionFailure("could not get the OIDC token", f"{what} answered something that is not a JWT.")
    return value


def _no_token_failure(env: Mapping[str, str], event: Mapping[str, Any], missing: str) -> ActionFailure:
    if is_fork_pull_request(env, event):
        return ActionFailure(
            "no OIDC token for a pull request from a fork",
            "GitHub gives no OIDC token (and no write permissions) to workflows run for pull requests "
            "from forks, so this job cannot ask the gate.",
            "Run the gated step from a workflow that runs in the base repository instead: on `push` "
            "after the merge, on `workflow_dispatch`, or on `issue_comment` (a maintainer's `/deploy`). "
            "Do not switch to `pull_request_target` to get a token while checking out the fork's code: "
            "that hands the fork's code your repository's credentials.",
        )
    outside = (
        "" if env.get("GITHUB_ACTIONS") == "true" else " (and this does not look like a GitHub Actions job)"
    )
    return ActionFailure(
        "missing permissions: id-token: write",
        f"This job cannot request an OIDC token: {missing} is not set{outside}. "
        "Add `permissions: id-token: write` to the job.",
        "GitHub sets `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` only for jobs "
        "allowed to write `id-token`. Add this to the job that runs the agent-gate step (or to the "
        f"workflow):\n\n{PERMISSIONS_SNIPPET}\n\n"
        "A reusable workflow gets the permission only if its caller grants it too.",
    )


def unverified_claims(token: str) -> dict[str, Any]:
    """The token's non-secret claims, decoded locally *without* verification: for debugging only."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    if not isinstance(data, dict):
        return {}
    claims = {k: data[k] for k in DEBUG_CLAIMS if k in data}
    for k in TIME_CLAIMS:
        if isinstance(claims.get(k), (int, float)):
            with contextlib.suppress(OverflowError, OSError, ValueError):  # else shown as the number
                claims[k] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims[k]))
    return claims


# -- retries -------------------------------------------------------------------------------------------


def retry_after_seconds(reply: Reply, now: float) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = reply.header("Retry-After").strip()
    if not value:
        return None
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def send_with_retries(
    io: Io, send: Callable[[float], Reply], *, deadline: float, attempt_timeout: float, what: str
) -> Reply:
    """Call ``send(timeout)`` until a non-transient answer; retry no answer at all and 502/503/504.

    Each attempt may take ``attempt_timeout`` (at most what is left), so a hung connection leaves
    time for another. Waits back off exponentially (with jitter), or as long as Retry-After asks when
    that fits before ``deadline``. Raises :class:`RetriesExhausted` when the time is up or a retry
    cannot help.
    """
    backoff = FIRST_BACKOFF
    attempts = 0
    while True:
        remaining = deadline - io.monotonic()
        if remaining <= 0:
            raise RetriesExhausted(TransportError("timeout", "timed out"), attempts)
        attempts += 1
        outcome: TransportError | Reply
        try:
            outcome = send(min(remaining, attempt_timeout))
        except TransportError as exc:
            outcome = exc
            io.emit(f"::debug::{what}: attempt {attempts}: {exc.kind} ({exc.detail})")
            if exc.kind in {"tls", "protocol"}:  # a retry gets the same answer
                raise RetriesExhausted(exc, attempts) from None
            wait = backoff * (1 + 0.25 * io.random())
        else:
            io.emit(f"::debug::{what}: attempt {attempts}: HTTP {outcome.status}")
            if outcome.status not in TRANSIENT_STATUSES:
                return outcome
            asked = retry_after_seconds(outcome, io.wall_clock())
            if asked is not None and io.monotonic() + asked >= deadline:
                note = f"it asked to retry after {asked:.0f} s, past the `timeout`"
                raise RetriesExhausted(outcome, attempts, note)
            wait = asked if asked is not None else backoff * (1 + 0.25 * io.random())
        if io.monotonic() + wait >= deadline:
            raise RetriesExhausted(outcome, attempts)
        io.sleep(wait)
        backoff = min(backoff * 2, MAX_BACKOFF)


def _describe(outcome: TransportError | Reply) -> str:
    if isinstance(outcome, Reply):
        return f"HTTP {outcome.status}"
    return outcome.detail if outcome.kind == "timeout" else f"{outcome.kind} error: {outcome.detail}"


# -- asking the gate -----------------------------------------------------------------------------------


def request_body(inputs: Inputs) -> dict[str, Any]:
    """The ``POST /v1/decisions`` body: only the fields the step was given."""
    body: dict[str, Any] = {"action": inputs.action}
    if inputs.environment:
        body["environment"] = inputs.environment
    if inputs.pull_request is not None:
        body["pull_request"] = inputs.pull_request
    if inputs.sha:
        body["sha"] = inputs.sha
    if inputs.request_grant:
        body["grant"] = True
    return body


def ask_gate(inputs: Inputs, new_token: Callable[[], str], io: Io, deadline: float) -> tuple[Reply, str]:
    """POST the decision request, retrying transient failures until ``deadline``.

    Every attempt shows the gate a fresh token: the gate accepts a token once, and it may have
    claimed the previous one before the failure (a 503 while asking GitHub, a proxy's 504). Returns
    the final reply and the token it answered.
    """
    data = json.dumps(request_body(inputs)).encode()
    token = ""

    def send(timeout: float) -> Reply:
        nonlocal token
        token = new_token()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        return io.http(HttpRequest("POST", f"{inputs.gate_url}/v1/decisions", headers, data, timeout))

    attempt_timeout = max(MIN_ATTEMPT_TIMEOUT, inputs.timeout / 2)
    try:
        reply = send_with_retries(
            io, send, deadline=deadline, attempt_timeout=attempt_timeout, what="agent-gate"
        )
    except RetriesExhausted as exc:
        raise _gate_gave_no_answer(inputs, exc) from None
    return reply, token


def _gate_gave_no_answer(inputs: Inputs, exc: RetriesExhausted) -> ActionFailure:
    where = _code(inputs.gate_url)
    tried = f"{exc.attempts} attempt(s) in {inputs.timeout:g} s"
    last = exc.last
    if isinstance(last, Reply):
        message, errors = gate_error(last)
        codes = ", ".join(_code(e["code"]) for e in errors)
        return ActionFailure(
            "the gate is unavailable",
            f"The gate answered HTTP {last.status} ({tried}){': ' + message if message else ''}. "
            "It fails closed while it cannot decide; re-run the job later.",
            (f"Error codes: {codes}. " if codes else "")
            + (f"Not retried further: {exc.note}. " if exc.note else "")
            + "If it persists, ask the gate's operators (its `/readyz` says what is missing).",
        )
    if last.kind == "timeout":
        return ActionFailure(
            "the gate did not answer in time",
            f"No answer from {where} within the `timeout` of {inputs.timeout:g} s ({exc.attempts} attempt(s)).",
            f"Check that the gate is up (`{inputs.gate_url}/readyz`), or raise the step's `timeout` input.",
        )
    if last.kind == "tls":
        return ActionFailure(
            "the gate's TLS certificate was refused",
            f"Could not set up a secure connection to {where}: {_text(last.detail)}.",
            "The gate needs a certificate the runner trusts for that host name. On a self-hosted runner "
            "behind a TLS-inspecting proxy, add the proxy's CA to the runner's trust store.",
        )
    if last.kind == "protocol":
        return ActionFailure(
            "malformed reply from the gate",
            f"{where} did not answer with HTTP ({_text(last.detail)}). Check that `gate-url` points at agent-gate.",
        )
    return ActionFailure(
        "the gate is unreachable",
        f"Could not connect to {where} ({tried}; last: {_text(last.detail)}).",
        "Check the `gate-url` input (scheme, host name, port) and that the runner can reach it: "
        "GitHub-hosted runners need a public address; self-hosted runners need a route and a firewall "
        f"rule. `{inputs.gate_url}/readyz` tells whether the gate is up.",
    )


def gate_error(reply: Reply) -> tuple[str, list[dict[str, str]]]:
    """agent-gate's error body ``{"message", "errors": [{"code", "description"}]}``, or ("", [])."""
    try:
        data = json.loads(reply.body)
    except ValueError:
        return "", []
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return "", []
    errors = [
        {"code": str(e.get("code", "")), "description": str(e.get("description", ""))}
        for e in data.get("errors") or []
        if isinstance(e, dict)
    ]
    return data["message"], errors


def read_decision(reply: Reply, inputs: Inputs, token: str) -> dict[str, Any]:
    """The decision in a 200 or 403; every other reply raises the :class:`ActionFailure` that explains it."""
    if reply.status in (200, 403):
        decision = _decision_or_none(reply, inputs)
        if decision is not None:
            return decision
        message, errors = gate_error(reply)
        if reply.status == 403 and message:  # a refusal before any decision (e.g. a WAF's 403)
            raise _gate_said(reply, message, errors)
        raise _malformed(reply, inputs, "a body that is not an agent-gate decision")
    message, errors = gate_error(reply)
    if 300 <= reply.status < 400:
        location = reply.header("Location")
        raise ActionFailure(
            "the gate answered with a redirect",
            f"{_code(inputs.gate_url)} redirects (HTTP {reply.status}"
            f"{' to ' + _code(location) if location else ''}); the action does not follow redirects, "
            "so the token goes nowhere else. Set `gate-url` to the gate's final address.",
        )
    if not message:
        raise _malformed(reply, inputs, "a body that is not agent-gate's error format")
    if reply.status == 401:
        raise _token_refused(message, errors, token)
    raise _gate_said(reply, message, errors)


def _decision_or_none(reply: Reply, inputs: Inputs) -> dict[str, Any] | None:
    try:
        data = json.loads(reply.body)
    except ValueError:
        return None
    if not (
        isinstance(data, dict)
        and isinstance(data.get("allowed"), bool)
        and isinstance(data.get("decision_id"), str)
        and isinstance(data.get("reasons"), list)
    ):
        return None
    if data["allowed"] != (reply.status == 200) or data.get("action") != inputs.action:
        # A gate never says 200 to a deny, nor decides another action: fail closed.
        raise _malformed(reply, inputs, "a decision that contradicts its status or the request")
    return data


def _malformed(reply: Reply, inputs: Inputs, what: str) -> ActionFailure:
    kind = reply.header("Content-Type").split(";")[0].strip() or "no content type"
    return ActionFailure(
        "malformed reply from the gate",
        f"{_code(inputs.gate_url)} answered HTTP {reply.status} with {what} ({kind}, {len(reply.body)} bytes). "
        "Check that `gate-url` is the gate's base URL and that nothing in between rewrites its answers.",
    )


def _gate_said(reply: Reply, message: str, errors: list[dict[str, str]]) -> ActionFailure:
    codes = ", ".join(e["code"] for e in errors if e["code"])
    title = (
        "the gate refused the request"
        if 400 <= reply.status < 500
        else f"the gate answered HTTP {reply.status}"
    )
    return ActionFailure(
        title + (f" ({codes})" if codes else ""),
        f"HTTP {reply.status}: {message}",
        _error_listing(message, errors),
    )


def _error_listing(message: str, errors: list[dict[str, str]]) -> str:
    """The gate's coded errors as a list, unless the message already says all there is."""
    if all(e["description"] in {"", message} for e in errors):
        return ""
    return "\n".join(f"- {_code(e['code'])}: {_text(e['description'])}" for e in errors)


def _token_refused(message: str, errors: list[dict[str, str]], token: str) -> ActionFailure:
    codes = [e["code"] for e in errors if e["code"]]
    hints = [TOKEN_HINTS[c] for c in dict.fromkeys(codes) if c in TOKEN_HINTS]
    claims = json.dumps(unverified_claims(token), indent=2, sort_keys=True)
    details = _error_listing(message, errors)
    if hints:
        details += "\n\n**What to do:** " + " ".join(hints)
    details += (
        "\n\nThe token's claims, **for debugging only** (decoded on the runner without verification; "
        f"the token itself is never shown):\n\n```json\n{claims}\n```"
    )
    return ActionFailure(
        "the gate refused the token" + (f" ({', '.join(codes)})" if codes else ""),
        f"HTTP 401: {message}",
        details.strip(),
    )


# -- explaining ----------------------------------------------------------------------------------------


def decision_summary(decision: Mapping[str, Any]) -> str:
    """The job summary's Markdown for a decision: verdict, facts, reasons, remedy, approvals, link."""
    allowed = decision.get("allowed") is True
    subject = _dict(decision.get("subject"))
    verdict = "✅ allowed" if allowed else "⛔ denied"
    if allowed and decision.get("would_deny") is True:
        verdict = "⚠️ allowed in audit mode (would deny)"
    rows = [
        ("Verdict", f"**{verdict}**"),
        (
            "Action",
            f"{_code(decision.get('action'))} ({_cell(decision.get('permission') or 'unknown class')})",
        ),
        ("Rule", _code(decision["rule"]) if decision.get("rule") else "no rule matched"),
    ]
    if subject.get("repository"):
        where = f"{_code(subject['repository'])} at {_code(str(subject.get('sha', ''))[:12])}"
        rows.append(("Repository", where + (f" ({_code(subject['ref'])})" if subject.get("ref") else "")))
    if subject.get("workflow"):
        rows.append(("Workflow", f"{_code(subject['workflow'])} on {_cell(subject.get('event', '?'))}"))
    if subject.get("actor"):
        actor = _cell(subject["actor"])
        if subject.get("triggering_actor") and subject["triggering_actor"] != subject["actor"]:
            actor += f", triggered by {_cell(subject['triggering_actor'])}"
        if subject.get("agent"):
            signals = "; ".join(_cell(_dict(s).get("detail", "")) for s in subject.get("agent_signals") or [])
            actor += f" — **agent-driven**{': ' + signals if signals else ''}"
        rows.append(("Actor", actor))
    if subject.get("environment"):
        rows.append(("Environment", _code(subject["environment"])))
    if subject.get("pull_request"):
        rows.append(("Pull request", f"#{_cell(subject['pull_request'])}"))
    if decision.get("policy_digest"):
        rows.append(("Policy", _code(str(decision["policy_digest"])[:19])))
    link = decision.get("details_url")
    decision_id = _code(decision.get("decision_id"))
    rows.append(("Decision", f"[{decision_id}]({link})" if link else decision_id))
    lines = [f"## agent-gate: {verdict} {_code(decision.get('action'))}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "### Reasons", ""]
    for reason in decision.get("reasons") or []:
        r = _dict(reason)
        lines.append(
            f"- {'✔' if r.get('ok') else '✖'} {_code(r.get('code', '?'))} {_text(r.get('message', ''))}"
        )
    if decision.get("remedy"):
        lines += ["", "### What would make it pass", "", _text(decision["remedy"])]
    approvals = [_dict(a) for a in decision.get("approvals") or []]
    if approvals:
        lines += ["", "### Approvals considered", ""]
        lines += ["| Approver | Source | State | Commit | Counted | Why |", "|---|---|---|---|---|---|"]
        for a in approvals:
            commit = _code(str(a["commit"])[:12]) if a.get("commit") else ""
            lines.append(
                f"| {_cell(a.get('login', '?'))} | {_cell(a.get('source', ''))} | {_cell(a.get('state', ''))} "
                f"| {commit} | {'yes' if a.get('counted') else 'no'} | {_cell(a.get('why', ''))} |"
            )
    lines += _credentials_summary(decision)
    return "\n".join(lines) + "\n\n"


def _credentials_summary(decision: Mapping[str, Any]) -> list[str]:
    """What credentials were issued, never the credentials themselves."""
    grant, github_token = _dict(decision.get("grant")), _dict(decision.get("github_token"))
    if not grant and not github_token:
        return []
    lines = ["", "### Credentials issued", ""]
    if grant:
        lines.append(
            f"- Grant {_code(grant.get('jti', '?'))} for audience {_code(grant.get('audience', '?'))}, "
            f"expires {_cell(grant.get('expires_at', '?'))} (step output `grant`, masked)"
        )
    if github_token:
        permissions = ", ".join(f"{k}: {v}" for k, v in _dict(github_token.get("permissions")).items())
        lines.append(
            f"- GitHub token for this repository ({_cell(permissions or 'no permissions listed')}), expires "
            f"{_cell(github_token.get('expires_at', '?'))} (step output `github-token`, masked)"
        )
    return lines


def failure_summary(failure: ActionFailure, inputs: Inputs | None) -> str:
    lines = [f"## agent-gate: ⛔ {_text(failure.title)}", "", _no_html(failure.message)]
    if failure.details:
        lines += ["", failure.details]
    if inputs is not None:
        asked = f"{_code(inputs.action)} at {_code(inputs.gate_url)}"
        if inputs.environment:
            asked += f", environment {_code(inputs.environment)}"
        if inputs.pull_request is not None:
            asked += f", pull request #{inputs.pull_request}"
        lines += ["", f"Asked: {asked}."]
    return "\n".join(lines) + "\n\n"


def _denial_message(decision: Mapping[str, Any]) -> str:
    failed = [_dict(r) for r in decision.get("reasons") or [] if not _dict(r).get("ok")]
    why = "; ".join(str(r.get("message", "")).rstrip(". ") for r in failed) or "no rule allows it"
    text = f"{why}."
    if decision.get("remedy"):
        text += f" What would make it pass: {str(decision['remedy']).rstrip('. ')}."
    if decision.get("details_url"):
        text += f" Details: {decision['details_url']}"
    return text


# -- the step ------------------------------------------------------------------------------------------

EMPTY_OUTPUTS = {"allowed": "false", "decision-id": "", "permission": "", "details-url": ""}


def consult(
    env: Mapping[str, str], event: Mapping[str, Any], inputs: Inputs, io: Io, deadline: float | None = None
) -> tuple[Reply, str]:
    """Fetch tokens and ask the gate, all within the step's ``timeout`` (or ``deadline``)."""
    deadline = io.monotonic() + inputs.timeout if deadline is None else deadline
    return ask_gate(inputs, lambda: fetch_token(env, event, inputs, io, deadline), io, deadline)


def fetch_attestation(
    env: Mapping[str, str],
    event: Mapping[str, Any],
    inputs: Inputs,
    io: Io,
    deadline: float,
    decision: Mapping[str, Any],
) -> str:
    """The decision's signed attestation (``GET /v1/decisions/{id}/attestation``): a DSSE envelope
    as one line of JSON, or "" with a warning when the gate has none for it or cannot be reached.

    It is authenticated by the decision's grant when there is one, else by a fresh OIDC token of
    this job (the gate spends every token it accepts). An empty output is what a later
    ``agent-gate attest verify`` refuses: the deploy it guards does not run.
    """
    decision_id = str(decision.get("decision_id") or "")
    if not DECISION_ID.match(decision_id):
        return ""
    grant = _dict(decision.get("grant")).get("token")

    def send(timeout: float) -> Reply:
        bearer = grant if isinstance(grant, str) and grant else fetch_token(env, event, inputs, io, deadline)
        headers = {"Authorization": f"Bearer {bearer}", "Accept": DSSE_MEDIA_TYPE, "User-Agent": USER_AGENT}
        url = f"{inputs.gate_url}/v1/decisions/{decision_id}/attestation"
        return io.http(HttpRequest("GET", url, headers, None, timeout))

    def no_attestation(why: str) -> str:
        annotate(io, "warning", "agent-gate: no attestation", f"{why}; the `attestation` output is empty.")
        return ""

    try:
        reply = send_with_retries(
            io,
            send,
            deadline=deadline,
            attempt_timeout=max(MIN_ATTEMPT_TIMEOUT, inputs.timeout / 2),
            what="agent-gate attestation",
        )
    except RetriesExhausted as exc:
        return no_attestation(f"the gate did not answer ({_describe(exc.last)})")
    except ActionFailure as failure:  # no OIDC token for the request
        return no_attestation(failure.message)
    if reply.status != 200:
        message, _ = gate_error(reply)
        return no_attestation(f"the gate answered HTTP {reply.status}: {message or 'no message'}")
    try:
        envelope = json.loads(reply.body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not {"payload", "payloadType", "signatures"} <= set(envelope):
        return no_attestation("the gate's answer is not a DSSE envelope")
    return json.dumps(envelope, separators=(",", ":"))


def decide(env: Mapping[str, str], io: Io) -> int:
    """Ask the gate about this job and report the answer; the step's exit status."""
    inputs: Inputs | None = None
    fail_on_deny = True
    try:
        fail_on_deny = parse_bool(env.get("AG_FAIL_ON_DENY", ""), "fail-on-deny", True)
        event = load_event(env, io)
        inputs = read_inputs(env, event)
        deadline = io.monotonic() + inputs.timeout
        reply, token = consult(env, event, inputs, io, deadline)
        decision = read_decision(reply, inputs, token)
    except ActionFailure as failure:
        set_outputs(env, io, EMPTY_OUTPUTS)
        write_summary(env, io, failure_summary(failure, inputs))
        fails = fail_on_deny or failure.always_fails
        annotate(io, "error" if fails else "warning", f"agent-gate: {failure.title}", failure.message)
        return 1 if fails else 0
    envelope = fetch_attestation(env, event, inputs, io, deadline, decision) if inputs.attestation else ""
    return report_decision(env, io, inputs, decision, attestation=envelope)


def report_decision(
    env: Mapping[str, str], io: Io, inputs: Inputs, decision: Mapping[str, Any], *, attestation: str = ""
) -> int:
    allowed = decision["allowed"] is True
    outputs = {
        "allowed": "true" if allowed else "false",
        "decision-id": str(decision.get("decision_id") or ""),
        "permission": str(decision.get("permission") or ""),
        "details-url": str(decision.get("details_url") or ""),
    }
    # Credentials (request-grant) are masked before they are written anywhere.
    for output, key in (("grant", "grant"), ("github-token", "github_token")):
        secret = _dict(decision.get(key)).get("token")
        if isinstance(secret, str) and secret:
            mask(io, secret)
            outputs[output] = secret
    if inputs.attestation:
        outputs["attestation"] = attestation
    set_outputs(env, io, outputs)
    summary = decision_summary(decision)
    if attestation:
        summary += (
            "Signed attestation of this decision: step output `attestation` (docs/attestations.md).\n\n"
        )
    write_summary(env, io, summary)
    if allowed and decision.get("would_deny") is True:
        annotate(
            io,
            "warning",
            f"agent-gate would deny {inputs.action} (audit mode)",
            "Allowed only because the rule is in audit mode; once it is enforced: "
            + _denial_message(decision),
        )
        return 0
    if allowed:
        io.emit(
            f"agent-gate: {inputs.action} allowed by rule {decision.get('rule')} ({outputs['details-url']})"
        )
        return 0
    level = "error" if inputs.fail_on_deny else "warning"
    annotate(io, level, f"agent-gate denied {inputs.action}", _denial_message(decision))
    return 1 if inputs.fail_on_deny else 0


def revoke(env: Mapping[str, str], io: Io) -> int:
    """The revoke action (a job's final step): revoke the grant. Never fails the job: grants expire."""
    grant = env.get("AG_GRANT", "").strip()
    if not grant:
        io.emit("agent-gate: no grant to revoke")
        return 0
    mask(io, grant)
    try:
        gate_url = check_gate_url(env.get("AG_GATE_URL", ""))
    except ActionFailure as failure:
        annotate(io, "warning", "agent-gate revoke", failure.message)
        return 0
    request = HttpRequest(
        "POST",
        f"{gate_url}/v1/grants/revoke",
        {"Authorization": f"Bearer {grant}", "Content-Type": "application/json", "User-Agent": USER_AGENT},
        json.dumps({"reason": env.get("AG_REASON", "").strip() or "job finished"}).encode(),
    )
    try:
        reply = send_with_retries(
            io,
            lambda timeout: io.http(dataclasses.replace(request, timeout=timeout)),
            deadline=io.monotonic() + 15,
            attempt_timeout=10,
            what="agent-gate",
        )
    except RetriesExhausted as exc:
        why = f"could not reach the gate ({_describe(exc.last)}); the grant expires on its own"
        annotate(io, "warning", "agent-gate revoke", why)
        return 0
    try:
        revoked = json.loads(reply.body).get("revoked") if reply.status == 200 else None
    except (ValueError, AttributeError):
        revoked = None
    if not isinstance(revoked, list):
        message, errors = gate_error(reply)
        if reply.status == 401 and any(e["code"] == "revoked" for e in errors):
            # Revoked already (an earlier step, or the gate when the evidence changed): nothing to do.
            io.emit("agent-gate: the grant was already revoked; revoked 0 grant(s)")
            return 0
        annotate(
            io,
            "warning",
            "agent-gate revoke",
            message or f"HTTP {reply.status}; the grant expires on its own",
        )
        return 0
    write_summary(env, io, f"agent-gate: revoked {len(revoked)} grant(s) at the end of the job.\n\n")
    io.emit(f"agent-gate: revoked {len(revoked)} grant(s)")
    return 0


def main(env: Mapping[str, str] | None = None, io: Io | None = None) -> int:
    env = dict(os.environ) if env is None else env
    io = io or Io()
    revoking = env.get("AG_MODE", "").strip() == "revoke"
    try:
        return revoke(env, io) if revoking else decide(env, io)
    except Exception as exc:  # noqa: BLE001  # last resort: fail closed with a message, not a traceback
        message = f"The action failed unexpectedly ({exc.__class__.__name__}). Please report it."
        if revoking:  # the grant expires on its own; the job's result stands
            annotate(io, "warning", "agent-gate revoke: internal error", message)
            return 0
        annotate(io, "error", "agent-gate: internal error", message + " The job is not allowed.")
        try:
            set_outputs(env, io, EMPTY_OUTPUTS)
            write_summary(env, io, f"## agent-gate: ⛔ internal error\n\n{message}\n\n")
        except Exception:  # noqa: BLE001, S110  # the annotation above already says it; exit 1 regardless
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
