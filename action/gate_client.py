#!/usr/bin/env python3
"""agent-gate's composite action: fetch the job's OIDC token, ask the gate, explain the outcome.

Standard library only (GitHub-hosted runners have python3; nothing is installed at run time). All
I/O goes through a few small functions so tests can run ``main()`` against a simulated runner.
Inputs arrive as environment variables set by action.yml's ``env:`` (never through ``${{ }}`` in a
script). The token is never printed; it is masked anyway.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_AUDIENCE = "agent-gate"
TRANSIENT = {502, 503, 504}
DEBUG_CLAIMS = (
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "job_workflow_ref",
    "ref",
    "sha",
    "event_name",
    "actor",
    "actor_id",
    "environment",
    "runner_environment",
    "aud",
    "iss",
)


class ActionFailure(Exception):
    """A failure with a one-line title and a Markdown explanation for the job summary."""

    def __init__(self, title: str, explanation: str) -> None:
        super().__init__(title)
        self.title = title
        self.explanation = explanation


@dataclass
class Inputs:
    gate_url: str
    action: str
    audience: str
    environment: str
    pull_request: str
    sha: str
    request_grant: bool
    fail_on_deny: bool
    timeout: float


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


# -- I/O seams -------------------------------------------------------------------------------------


def http(method: str, url: str, *, headers: dict[str, str], body: bytes | None, timeout: float) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310  # https or loopback, checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Reply(response.status, response.read(), dict(response.headers.items()))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), dict(exc.headers.items()) if exc.headers else {})


def write(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def command(line: str) -> None:
    """A workflow command on standard output (::add-mask::, ::error ...)."""
    print(line, flush=True)


# -- workflow-command and output encoding --------------------------------------------------------------


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error(title: str, message: str) -> None:
    command(f"::error title={escape_property(title)}::{escape_data(message)}")


def set_outputs(env: dict[str, str], outputs: dict[str, str]) -> None:
    """Multiline-safe ``name<<DELIMITER`` form, with a random delimiter the value cannot contain."""
    text = ""
    for name, value in outputs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        text += f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    write(env.get("GITHUB_OUTPUT"), text)


# -- inputs ----------------------------------------------------------------------------------------


def _bool(value: str, name: str, default: bool) -> bool:
    word = value.strip().lower()
    if word == "":
        return default
    if word in {"true", "yes", "1"}:
        return True
    if word in {"false", "no", "0"}:
        return False
    raise ActionFailure(f"invalid input {name}", f"`{name}` must be `true` or `false`, got `{value}`.")


def read_inputs(env: dict[str, str]) -> Inputs:
    gate_url = env.get("AG_GATE_URL", "").strip().rstrip("/")
    action = env.get("AG_ACTION", "").strip()
    if not gate_url or not action:
        raise ActionFailure("missing input", "Both `gate-url` and `action` inputs are required.")
    parsed = urllib.parse.urlparse(gate_url)
    loopback = parsed.hostname in {"127.0.0.1", "localhost", "::1"}
    if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
        raise ActionFailure(
            "gate-url must use https", f"`gate-url` is `{gate_url}`; the token must only travel over https."
        )
    try:
        timeout = float(env.get("AG_TIMEOUT") or "30")
    except ValueError as exc:
        raise ActionFailure("invalid input timeout", "`timeout` must be a number of seconds.") from exc
    return Inputs(
        gate_url=gate_url,
        action=action,
        audience=env.get("AG_AUDIENCE", "").strip() or DEFAULT_AUDIENCE,
        environment=env.get("AG_ENVIRONMENT", "").strip(),
        pull_request=env.get("AG_PULL_REQUEST", "").strip() or pull_request_from_event(env),
        sha=env.get("AG_SHA", "").strip(),
        request_grant=_bool(env.get("AG_REQUEST_GRANT", ""), "request-grant", False),
        fail_on_deny=_bool(env.get("AG_FAIL_ON_DENY", ""), "fail-on-deny", True),
        timeout=max(1.0, timeout),
    )


def _event(env: dict[str, str]) -> dict[str, Any]:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pull_request_from_event(env: dict[str, str]) -> str:
    pr = _event(env).get("pull_request")
    return str(pr["number"]) if isinstance(pr, dict) and "number" in pr else ""


# -- the OIDC token ----------------------------------------------------------------------------------


def fetch_token(env: dict[str, str], inputs: Inputs) -> str:
    url, bearer = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        pr = _event(env).get("pull_request") or {}
        fork = bool(((pr.get("head") or {}).get("repo") or {}).get("fork"))
        if env.get("GITHUB_EVENT_NAME", "").startswith("pull_request") and fork:
            raise ActionFailure(
                "no OIDC token for a pull request from a fork",
                "GitHub gives no OIDC token to workflows run for pull requests from forks, so this job cannot "
                "ask the gate. Run the gated step from a workflow on the base repository (for example after "
                "a maintainer's approval, or on `push` once merged).",
            )
        raise ActionFailure(
            "missing permissions: id-token: write",
            "The job cannot request an OIDC token: `ACTIONS_ID_TOKEN_REQUEST_URL` is not set. Add this to the "
            "job (or the workflow):\n\n```yaml\npermissions:\n  id-token: write\n  contents: read\n```",
        )
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}audience={urllib.parse.quote(inputs.audience, safe='')}"
    try:
        reply = http(
            "GET",
            full,
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
            body=None,
            timeout=min(inputs.timeout, 15),
        )
    except OSError as exc:
        raise ActionFailure(
            "could not get the OIDC token",
            f"GitHub's token endpoint did not answer ({exc.__class__.__name__}). Re-run the job.",
        ) from exc
    try:
        value = json.loads(reply.body)["value"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ActionFailure(
            "could not get the OIDC token",
            f"GitHub's token endpoint answered HTTP {reply.status} without a token.",
        ) from exc
    command(f"::add-mask::{value}")
    return str(value)


def unverified_claims(token: str) -> dict[str, Any]:
    """The token's non-secret claims, decoded locally *without* verification, for debugging only."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return {k: data[k] for k in DEBUG_CLAIMS if isinstance(data, dict) and k in data}


# -- asking the gate ---------------------------------------------------------------------------------


def ask_gate(inputs: Inputs, token: str, *, sleep: Any = time.sleep, clock: Any = time.monotonic) -> Reply:
    body: dict[str, Any] = {"action": inputs.action}
    if inputs.environment:
        body["environment"] = inputs.environment
    if inputs.pull_request:
        if not inputs.pull_request.isdigit():
            raise ActionFailure(
                "invalid input pull-request", f"`pull-request` must be a number, got `{inputs.pull_request}`."
            )
        body["pull_request"] = int(inputs.pull_request)
    if inputs.sha:
        body["sha"] = inputs.sha
    if inputs.request_grant:
        body["grant"] = True
    data = json.dumps(body).encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "agent-gate-action",
    }
    deadline = clock() + inputs.timeout
    delay = 1.0
    last = "no answer"
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise ActionFailure(
                "the gate did not answer in time",
                f"No decision from {inputs.gate_url} within {inputs.timeout:.0f} s ({last}). "
                "Check that the gate is up (`/readyz`), or raise the `timeout` input.",
            )
        try:
            reply = http(
                "POST", f"{inputs.gate_url}/v1/decisions", headers=headers, body=data, timeout=remaining
            )
        except OSError as exc:
            last = f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"
        else:
            if reply.status not in TRANSIENT:
                return reply
            last = f"HTTP {reply.status}"
            retry_after = reply.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = max(delay, float(retry_after))
        if deadline - clock() - delay <= 0:
            title = "the gate is unavailable" if last.startswith("HTTP") else "the gate could not be reached"
            raise ActionFailure(
                title,
                f"No decision from {inputs.gate_url} within {inputs.timeout:.0f} s (last: {last}). "
                "Check the gate's URL and that it is up (`/readyz`); retry the job.",
            )
        sleep(delay)
        delay = min(delay * 2, 10.0)


def _gate_error(reply: Reply) -> tuple[str, list[dict[str, str]]]:
    try:
        data = json.loads(reply.body)
        return str(data["message"]), [e for e in data.get("errors", []) if isinstance(e, dict)]
    except (ValueError, KeyError, TypeError):
        return "", []


# -- explaining ----------------------------------------------------------------------------------------


def decision_summary(decision: dict[str, Any]) -> str:
    allowed = bool(decision.get("allowed"))
    lines = [f"## {'✅ Allowed' if allowed else '⛔ Denied'}: `{decision.get('action')}`", ""]
    lines.append(f"- **Rule**: `{decision.get('rule') or 'none'}`")
    lines.append(f"- **Permission class**: {decision.get('permission') or 'unknown'}")
    subject = decision.get("subject") or {}
    if subject.get("agent"):
        signals = "; ".join(str(s.get("detail")) for s in subject.get("agent_signals") or [])
        lines.append(f"- **Agent-driven**: {signals}")
    lines += ["", "### Reasons", ""]
    for reason in decision.get("reasons") or []:
        lines.append(
            f"- {'✔' if reason.get('ok') else '✖'} **{reason.get('code')}**: {reason.get('message')}"
        )
    approvals = decision.get("approvals") or []
    if approvals:
        lines += ["", "### Approvals considered", "", "| approver | counted | why |", "|---|---|---|"]
        for a in approvals:
            lines.append(
                f"| @{a.get('login')} | {'yes' if a.get('counted') else 'no'} | {str(a.get('why')).replace('|', '/')} |"
            )
    if decision.get("remedy"):
        lines += ["", "### What would make it pass", "", str(decision["remedy"])]
    if decision.get("details_url"):
        lines += ["", f"[Decision {decision.get('decision_id')}]({decision['details_url']})"]
    return "\n".join(lines) + "\n"


def failure_summary(title: str, explanation: str) -> str:
    return f"## ⛔ agent-gate: {title}\n\n{explanation}\n"


def handle_reply(reply: Reply, token: str) -> dict[str, Any]:
    if reply.status in (200, 403):
        try:
            decision = json.loads(reply.body)
            if not isinstance(decision, dict) or "allowed" not in decision:
                raise ValueError("not a decision")
        except ValueError as exc:
            raise ActionFailure(
                "malformed reply from the gate",
                f"The gate answered HTTP {reply.status} with a body that is not a decision. "
                "Check that `gate-url` points at agent-gate.",
            ) from exc
        return decision
    message, errors = _gate_error(reply)
    if reply.status == 401:
        codes = ", ".join(f"`{e.get('code')}`" for e in errors) or "unknown"
        claims = json.dumps(unverified_claims(token), indent=2)
        raise ActionFailure(
            "the gate refused the token",
            f"The gate refused this job's OIDC token ({codes}): {message or 'no message'}\n\n"
            f"The token's claims, for debugging only (not verified):\n\n```json\n{claims}\n```",
        )
    if not message:
        raise ActionFailure(
            "malformed reply from the gate",
            f"The gate answered HTTP {reply.status} with a body that is not agent-gate's error shape. "
            "Check that `gate-url` points at agent-gate.",
        )
    codes = ", ".join(str(e.get("code")) for e in errors)
    raise ActionFailure(f"the gate answered {reply.status}" + (f" ({codes})" if codes else ""), message)


def revoke(env: dict[str, str]) -> int:
    """The final step of a job: revoke the grant (and its GitHub token). Never fails the job."""
    grant = env.get("AG_GRANT", "").strip()
    gate_url = env.get("AG_GATE_URL", "").strip().rstrip("/")
    if not grant:
        print("agent-gate: no grant to revoke")
        return 0
    command(f"::add-mask::{grant}")
    body = json.dumps({"reason": env.get("AG_REASON", "").strip() or "job finished"}).encode()
    headers = {"Authorization": f"Bearer {grant}", "Content-Type": "application/json"}
    try:
        reply = http("POST", f"{gate_url}/v1/grants/revoke", headers=headers, body=body, timeout=15)
    except OSError as exc:
        why = f"could not reach the gate ({exc.__class__.__name__}); the grant expires on its own"
        command(f"::warning title=agent-gate revoke::{escape_data(why)}")
        return 0
    if reply.status == 200:
        revoked = json.loads(reply.body).get("revoked", [])
        write(
            env.get("GITHUB_STEP_SUMMARY"),
            f"agent-gate: revoked {len(revoked)} grant(s) at the end of the job.\n",
        )
        print(f"agent-gate: revoked {len(revoked)} grant(s)")
        return 0
    message, _ = _gate_error(reply)
    command(f"::warning title=agent-gate revoke::{escape_data(message or f'HTTP {reply.status}')}")
    return 0


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    if env.get("AG_MODE", "").strip() == "revoke":
        return revoke(env)
    fail_on_deny = env.get("AG_FAIL_ON_DENY", "true").strip().lower() not in {"false", "no", "0"}
    try:
        inputs = read_inputs(env)
        token = fetch_token(env, inputs)
        decision = handle_reply(ask_gate(inputs, token), token)
    except ActionFailure as failure:
        set_outputs(env, {"allowed": "false", "decision-id": "", "permission": "", "details-url": ""})
        write(env.get("GITHUB_STEP_SUMMARY"), failure_summary(failure.title, failure.explanation))
        error(f"agent-gate: {failure.title}", failure.explanation.split("\n\n")[0])
        return 1 if fail_on_deny else 0
    allowed = bool(decision.get("allowed"))
    outputs = {
        "allowed": "true" if allowed else "false",
        "decision-id": str(decision.get("decision_id") or ""),
        "permission": str(decision.get("permission") or ""),
        "details-url": str(decision.get("details_url") or ""),
    }
    # Credentials are masked before they are written anywhere.
    for output, key in (("grant", "grant"), ("github-token", "github_token")):
        secret = (decision.get(key) or {}).get("token")
        if secret:
            command(f"::add-mask::{secret}")
            outputs[output] = str(secret)
    set_outputs(env, outputs)
    write(env.get("GITHUB_STEP_SUMMARY"), decision_summary(decision))
    if allowed:
        print(
            f"agent-gate: {inputs.action} allowed by rule {decision.get('rule')} ({decision.get('details_url')})"
        )
        return 0
    failed = [r for r in decision.get("reasons") or [] if not r.get("ok")]
    why = failed[0]["message"] if failed else "denied"
    remedy = decision.get("remedy") or ""
    error(f"agent-gate denied {inputs.action}", f"{why}. {remedy}".strip())
    return 1 if inputs.fail_on_deny else 0


if __name__ == "__main__":
    sys.exit(main())
