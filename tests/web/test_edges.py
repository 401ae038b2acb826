"""Every endpoint answers malformed input with a 4xx in the one error shape, never a 500.

(A signed webhook of the wrong shape is queued, 202, and its job given up by the queue's worker;
what the webhook must never do is answer 5xx.)

The named cases come first (each answered 500 before); then property-based runs (hypothesis) that
throw arbitrary bodies, content types and credentials at every route the app registers, and
mutate valid webhook payloads one field at a time.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from app import create_app
from app.settings import Settings
from tests.conftest import RecordingEvidence, close_gate
from tests.github.conftest import base_scenario
from tests.web.test_webhook import SECRET, Hub, sign

# Bounded runs: the whole module stays within a few seconds.
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def settings_with_webhooks(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})


@pytest.fixture
def app(settings_with_webhooks: Settings, evidence_source: RecordingEvidence) -> Iterator[Flask]:
    application = create_app(settings_with_webhooks, evidence=evidence_source)
    yield application
    close_gate(application)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, base_scenario())
    yield h
    h.close()


def assert_error_shape(response: Any, *, status: int | None = None) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if status is not None:
        assert response.status_code == status, response.get_json()
    if response.status_code >= 400:
        body = response.get_json()
        assert isinstance(body, dict) and set(body) == {"message", "errors"}, body
        assert body["errors"] and all(set(e) == {"code", "description"} for e in body["errors"])


def deliver_raw(hub: Hub, event: str, raw: bytes) -> Any:
    return hub.web.post(
        "/v1/github/webhook",
        data=raw,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(raw),
            "Content-Type": "application/json",
        },
    )


# --- the cases the issue names ------------------------------------------------------------------------


def test_a_signed_review_event_whose_review_is_a_string_is_never_a_500(hub):
    payload = hub.payload("dismissed", review="not an object")
    assert_error_shape(hub.deliver("pull_request_review", payload))


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"action": NaN}',
        b'{"repository": {"id": Infinity}}',
        b'{"action": "opened", "pull_request": {"number": 1e999}}',
        b"\xff\xfe",
    ],
    ids=["list-5000-deep", "object-5000-deep", "nan", "infinity", "huge-float", "not-utf-8"],
)
def test_a_signed_webhook_that_is_not_plain_json_is_400(hub, raw):
    response = deliver_raw(hub, "pull_request", raw)
    assert_error_shape(response, status=400)
    assert response.get_json()["errors"][0]["code"] == "invalid-json"


@pytest.mark.parametrize(
    "patch",
    [
        {"repository": {"id": float("1e300"), "full_name": "o/r", "owner": {"login": "o", "id": 1}}},
        {"pull_request": "12"},
        {"review": {"user": "bob"}},
        {"review": {"user": ["bob"]}},
    ],
    ids=["float-id", "pr-is-a-string", "reviewer-is-a-string", "reviewer-is-a-list"],
)
def test_signed_payloads_of_the_wrong_shape_are_never_5xx(hub, patch):
    payload = {**hub.payload("dismissed"), **patch}
    assert_error_shape(hub.deliver("pull_request_review", payload))


def test_a_decision_body_5000_deep_is_400(client: FlaskClient):
    response = client.post(
        "/v1/decisions", data="[" * 5000 + "]" * 5000, headers={"Content-Type": "application/json"}
    )
    assert_error_shape(response, status=400)


# --- properties over every endpoint -------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

FIELD_NAMES = st.sampled_from(
    [
        "action",
        "environment",
        "pull_request",
        "sha",
        "grant",
        "token",
        "token_type_hint",
        "jti",
        "reason",
        "permission",
        "audience",
        "ttl",
        "ref",
    ]
)

bodies = st.one_of(
    json_values.map(lambda v: (json.dumps(v).encode(), "application/json")),
    st.dictionaries(FIELD_NAMES, json_values, max_size=5).map(
        lambda v: (json.dumps(v).encode(), "application/json")
    ),
    st.dictionaries(FIELD_NAMES | st.text(max_size=8), st.text(max_size=40), max_size=4).map(
        lambda v: ("&".join(f"{k}={w}" for k, w in v.items()).encode(), "application/x-www-form-urlencoded")
    ),
    st.tuples(st.binary(max_size=200), st.sampled_from(["application/json", "text/plain", ""])),
)


def post_routes(app: Flask) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or set()) and "<" not in rule.rule
    )


def test_every_post_route_is_covered(app: Flask):
    assert {"/v1/decisions", "/v1/grants/introspect", "/v1/grants/revoke", "/v1/grants/delegate"} <= set(
        post_routes(app)
    )


@PROPERTY
@given(data=st.data(), body=bodies, auth=st.sampled_from(["none", "garbage", "oidc"]))
def test_no_body_makes_any_endpoint_answer_5xx(app, client, mint, data, body, auth):
    path = data.draw(st.sampled_from(post_routes(app)), label="path")
    raw, content_type = body
    headers = {"Content-Type": content_type} if content_type else {}
    if auth == "garbage":
        token = data.draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60))
        headers["Authorization"] = "Bearer " + token
    elif auth == "oidc":
        headers["Authorization"] = f"Bearer {mint()}"
    if path == "/v1/github/webhook":
        headers.update({"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4())})
    if path == "/v1/github/webhook":
        headers["X-Hub-Signature-256"] = sign(raw)
    response = client.post(path, data=raw, headers=headers)
    if path == "/logout" and response.status_code == 503:  # documented: this gate has no GitHub login
        assert response.get_json()["errors"][0]["code"] == "login-not-configured"
        return
    assert_error_shape(response)


@PROPERTY
@given(decision_id=st.text(max_size=80), accept=st.sampled_from(["text/html", "application/json", "*/*"]))
def test_no_path_makes_the_decision_page_answer_5xx(client, decision_id, accept):
    response = client.get("/decisions/" + decision_id.replace("/", "_"), headers={"Accept": accept})
    assert response.status_code < 500


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


WEBHOOK_EVENTS = [
    "pull_request",
    "pull_request_review",
    "check_run",
    "check_suite",
    "deployment_protection_rule",
    "deployment_review",
    "ping",
]


@PROPERTY
@given(data=st.data(), event=st.sampled_from(WEBHOOK_EVENTS), new=json_values)
def test_no_signed_payload_with_one_field_wrong_makes_the_webhook_answer_5xx(hub, data, event, new):
    action = data.draw(
        st.sampled_from(["opened", "synchronize", "closed", "dismissed", "submitted", "requested"])
    )
    payload = hub.payload(action, review={"user": {"login": "bob", "id": 1002}, "state": "approved"})
    path = data.draw(st.sampled_from(_paths(payload)), label="path")
    response = deliver_raw(hub, event, json.dumps(_replace(payload, path, new)).encode())
    assert_error_shape(response)
    # The queued job is run; a payload of the wrong shape is given up with the gate's own error,
    # never a crash (a crash is recorded with the exception's class name and retried).
    hub.app.extensions["agent_gate_queue"].drain()
    with sqlite3.connect(hub.app.extensions["agent_gate"].store.path) as db:
        crashes = [
            e
            for (e,) in db.execute("SELECT last_error FROM jobs WHERE last_error IS NOT NULL")
            if e[:1].isupper()
        ]
    assert not crashes, (event, path, new)
