"""Metrics at /metrics, the request id on answers, logs and audit records, JSON log lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.github.transport import _observe
from app.observe.logs import JsonFormatter, bind_request_id, request_id_from, reset_request_id
from app.observe.metrics import MULTIPROC_ENV

REPO = Path(__file__).resolve().parents[2]


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- the request id ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-123.abc", True),
        ("a" * 129, False),
        ("has space", False),
        ('quote"injection', False),
        ("", False),
    ],
    ids=["sane-kept", "too-long-replaced", "space-replaced", "quote-replaced", "empty-replaced"],
)
def test_the_callers_request_id_is_kept_only_when_sane(sent, kept):
    got = request_id_from(sent)
    assert (got == sent) is kept
    if not kept:
        assert len(got) == 32 and int(got, 16) >= 0


def test_the_request_id_is_echoed_and_recorded_in_the_audit_record(app, client, mint):
    answer = client.post(
        "/v1/decisions",
        json={"action": "read"},
        headers={"Authorization": f"Bearer {mint()}", "X-Request-Id": "trace-42"},
    )
    assert answer.status_code == 200
    assert answer.headers["X-Request-Id"] == "trace-42"
    records = list(app.extensions["agent_gate"].store.iter_audit())
    assert records[-1].kind == "decision" and records[-1].payload["request_id"] == "trace-42"


def test_a_refusal_gets_a_generated_request_id_in_its_answer_and_audit_record(app, client):
    answer = client.post(
        "/v1/decisions", json={"action": "read"}, headers={"Authorization": "Bearer garbage"}
    )
    assert answer.status_code == 401
    generated = answer.headers["X-Request-Id"]
    assert len(generated) == 32
    record = list(app.extensions["agent_gate"].store.iter_audit())[-1]
    assert record.kind == "token-refused" and record.payload["request_id"] == generated


def test_records_written_outside_a_request_carry_no_request_id(app):
    record = app.extensions["agent_gate"].store.append_audit("test", {"x": 1})
    assert "request_id" not in record.payload


# -- /metrics ----------------------------------------------------------------------------------------


def test_decisions_refusals_and_latency_are_counted(client, ask):
    before = scrape(client)
    assert ask({"action": "read"}).status_code == 200
    assert ask({"action": "deploy"}, agent=True, environment="production").status_code == 403
    assert ask({"action": "no-such-action"}).status_code in {400, 403}
    client.post("/v1/decisions", json={"action": "read"}, headers={"Authorization": "Bearer garbage"})
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("agent_gate_decisions_total", action="read", permission="read", outcome="allowed") == 1
    assert delta("agent_gate_decisions_total", action="deploy", permission="execute", outcome="denied") == 1
    # A made-up action never becomes a label value of its own.
    assert not any(labels and ("action", "no-such-action") in labels for _, labels in after)
    assert sum(v for (n, labels), v in after.items() if n == "agent_gate_refusals_total") > sum(
        v for (n, labels), v in before.items() if n == "agent_gate_refusals_total"
    )
    assert delta("agent_gate_decision_seconds_count") == 4
    assert (
        value(
            after,
            "agent_gate_jwks_fetches_total",
            issuer="https://dev-issuer.agent-gate.invalid",
            outcome="ok",
        )
        >= 1
    )


def test_the_webhook_queue_is_measured_at_scrape_time(client):
    samples = scrape(client)
    assert value(samples, "agent_gate_webhook_queue_depth") == 0
    assert ("agent_gate_webhook_queue_oldest_age_seconds", ()) in samples


def test_github_calls_and_rate_limit_remaining_are_kept_per_installation(client):
    reply = requests.Response()
    reply.status_code = 200
    reply.headers["x-ratelimit-remaining"] = "4321"
    before = scrape(client)
    _observe("installation:77", reply)
    after = scrape(client)
    calls = "agent_gate_github_calls_total"
    assert (
        value(after, calls, installation="77", status="200")
        - value(before, calls, installation="77", status="200")
        == 1
    )
    assert value(after, "agent_gate_github_rate_limit_remaining", installation="77") == 4321


_WORKER = """
import sys
from app.observe.metrics import metrics
metrics().decision("read", "read", True)
"""


def test_metrics_add_up_across_processes_in_multiprocess_mode(tmp_path):
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    for _ in range(3):
        subprocess.run([sys.executable, "-c", _WORKER], env=env, check=True, cwd=REPO, timeout=60)
    render = "import sys; from app.observe.metrics import render; sys.stdout.write(render([]).decode())"
    out = subprocess.run(
        [sys.executable, "-c", render],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert 'agent_gate_decisions_total{action="read",outcome="allowed",permission="read"} 3.0' in out


# -- JSON logs ---------------------------------------------------------------------------------------


def test_a_log_line_is_one_json_object_with_the_request_id():
    record = logging.LogRecord("agent_gate.api", logging.INFO, __file__, 1, "decision %s", ("dec_1",), None)
    record.repository_id = 2000
    token = bind_request_id("trace-7")
    try:
        line = JsonFormatter().format(record)
    finally:
        reset_request_id(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "decision dec_1" and entry["request_id"] == "trace-7"
    assert entry["level"] == "INFO" and entry["logger"] == "agent_gate.api" and entry["repository_id"] == 2000
    assert entry["time"].endswith("Z")


def test_an_exception_stays_inside_its_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("agent_gate", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError" in json.loads(line)["exception"]


def test_version_is_in_readyz_and_the_openapi_document(client):
    from app.settings import gate_version

    assert client.get("/readyz").get_json()["version"] == gate_version()
    assert client.get("/openapi.json").get_json()["info"]["version"] == gate_version()
    assert gate_version() != "0+unknown"  # the suite runs on an installed package
