"""The grant endpoints' edges: who may introspect (RFC 7662 2.1), RFC 7009's form, dead grants, audits."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import IntrospectionClient
from tests.credentials.test_grants import Harness

CLIENT_SECRET = "s3cret-of-the-deploy-system-0123456789abcdef"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    gate = harness.app.extensions["agent_gate"]
    client = IntrospectionClient(
        client_id="deployer", secret_sha256=hashlib.sha256(CLIENT_SECRET.encode()).hexdigest()
    )
    gate.settings = gate.settings.model_copy(update={"introspection_clients": (client,)})
    first = harness.fake.scenario.runs[9000]
    harness.fake.scenario.runs[9999] = dataclasses.replace(first, id=9999)
    yield harness
    harness.fake.__exit__()


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def refusals(h: Harness) -> list[dict[str, Any]]:
    return [r.payload for r in h.app.extensions["agent_gate"].store.iter_audit() if r.kind == "token-refused"]


def code(response: Any) -> str:
    body = response.get_json()
    assert set(body) == {"message", "errors"}, body
    return str(body["errors"][0]["code"])


# --- introspection needs authorisation (RFC 7662 section 2.1) -----------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "missing-token"),
        ({"Authorization": "Bearer not-a-token"}, "malformed"),
        ({"Authorization": "Bearer WzFd.e30.c2ln"}, "malformed"),  # a JSON list as the header
        ({"Authorization": "Basic !!!"}, "malformed"),
        (basic("deployer", "wrong"), "invalid-client"),
        (basic("nobody", CLIENT_SECRET), "invalid-client"),
    ],
    ids=["none", "garbage", "list-header", "basic-not-base64", "wrong-secret", "unknown-client"],
)
def test_introspection_without_valid_credentials_is_refused_and_audited(h, headers, expected):
    grant = h.deploy()["grant"]["token"]
    response = h.web.post("/v1/grants/introspect", data={"token": grant}, headers=headers)
    assert response.status_code == 401 and code(response) == expected
    assert "WWW-Authenticate" in response.headers
    [refused] = refusals(h)
    assert refused["code"] == expected and refused["endpoint"] == "/v1/grants/introspect"
    assert grant not in str(refused) and CLIENT_SECRET not in str(refused)


def test_a_revoked_grant_authenticates_nothing(h):
    parent = h.deploy()["grant"]["token"]
    other = h.deploy()["grant"]["token"]
    assert h.post("/v1/grants/revoke", {}, parent).status_code == 200
    for path, body in [
        ("/v1/grants/introspect", {"token": other}),
        ("/v1/grants/revoke", {"grant": other}),
        ("/v1/grants/delegate", {"step": "tester", "permission": "read"}),
    ]:
        response = h.post(path, body, parent)
        assert response.status_code == 401 and code(response) == "revoked", path
    assert [r["endpoint"] for r in refusals(h)] == [
        "/v1/grants/introspect",
        "/v1/grants/revoke",
        "/v1/grants/delegate",
    ]
    assert h.post("/v1/grants/introspect", {"token": other}, other).get_json()["active"] is True


def test_a_grant_learns_only_of_grants_of_its_own_run(h):
    mine = h.deploy()["grant"]["token"]
    theirs = h.deploy(run_id="9999")["grant"]["token"]
    assert h.post("/v1/grants/introspect", {"token": theirs}, mine).get_json() == {"active": False}
    assert h.post("/v1/grants/introspect", {"token": mine}, mine).get_json()["active"] is True


def test_an_oidc_token_learns_only_of_grants_of_its_repository(h):
    grant = h.deploy()["grant"]["token"]
    other_repo = h.token(repository="octo-org/other", repository_id="2001")
    assert h.post("/v1/grants/introspect", {"token": grant}, other_repo).get_json() == {"active": False}
    same_repo_other_run = h.token(run_id="9999")
    assert h.post("/v1/grants/introspect", {"token": grant}, same_repo_other_run).get_json()["active"]


def test_a_configured_client_may_introspect_any_grant(h):
    grant = h.deploy(run_id="9999")["grant"]
    response = h.web.post(
        "/v1/grants/introspect", data={"token": grant["token"]}, headers=basic("deployer", CLIENT_SECRET)
    )
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["jti"] == grant["jti"]


# --- bodies: every malformed one is a 4xx in the error shape ------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("token=", "application/x-www-form-urlencoded", 400),
        ("", "application/x-www-form-urlencoded", 400),
        ("token=" + "a" * 9000, "application/x-www-form-urlencoded", 400),
        ("token=a&token=b", "application/x-www-form-urlencoded", 400),
        (b"token=\xff\xfe", "application/x-www-form-urlencoded", 400),
        ("token=" + "a" * 70_000, "application/x-www-form-urlencoded", 413),
        ('{"token": ""}', "application/json", 400),
        ('{"token": 5}', "application/json", 400),
        ("[" * 5000 + "]" * 5000, "application/json", 400),
        ("token=x", "text/plain", 415),
    ],
    ids=[
        "empty-token",
        "empty-body",
        "token-over-8-KiB",
        "token-twice",
        "not-utf-8",
        "over-the-body-limit",
        "json-empty-token",
        "json-number",
        "json-5000-deep",
        "text-plain",
    ],
)
def test_malformed_introspection_bodies_are_4xx(h, data, content_type, status):
    grant = h.deploy()["grant"]["token"]
    response = h.web.post(
        "/v1/grants/introspect",
        data=data,
        headers={"Authorization": f"Bearer {grant}", "Content-Type": content_type},
    )
    assert response.status_code == status and code(response)


def test_unknown_form_parameters_are_ignored_as_oauth_says(h):
    grant = h.deploy()["grant"]["token"]
    response = h.web.post(
        "/v1/grants/introspect",
        data={"token": grant, "token_type_hint": "access_token", "resource": "x"},
        headers={"Authorization": f"Bearer {grant}"},
    )
    assert response.get_json()["active"] is True


# --- revocation (RFC 7009) ----------------------------------------------------------------------------


def test_revocation_accepts_the_rfc_form_body(h):
    body = h.deploy()
    grant = body["grant"]["token"]
    response = h.web.post(
        "/v1/grants/revoke",
        data={"token": grant, "token_type_hint": "access_token"},
        headers={"Authorization": f"Bearer {h.token()}"},
    )
    assert response.status_code == 200 and response.get_json()["revoked"] == [body["grant"]["jti"]]
    assert h.post("/v1/grants/introspect", {"token": grant}, h.token()).get_json() == {"active": False}


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"])
def test_revoking_something_that_is_not_a_grant_is_200_with_nothing_revoked(h, token):
    response = h.web.post(
        "/v1/grants/revoke", data={"token": token}, headers={"Authorization": f"Bearer {h.token()}"}
    )
    assert response.status_code == 200 and response.get_json() == {
        "revoked": [],
        "jti": None,
        "active": False,
    }


def test_another_runs_grant_cannot_be_revoked_by_its_token(h):
    grant = h.deploy()["grant"]["token"]
    response = h.web.post(
        "/v1/grants/revoke", data={"token": grant}, headers={"Authorization": f"Bearer {h.token(run_id='1')}"}
    )
    assert response.status_code == 401 and code(response) == "wrong-workload"


def test_refused_tokens_at_revocation_and_delegation_are_audited(h):
    for path, body in (("/v1/grants/revoke", {}), ("/v1/grants/delegate", {"step": "tester"})):
        response = h.web.post(path, json=body, headers={"Authorization": "Bearer x.y.z"})
        assert response.status_code == 401
    assert [(r["endpoint"], r["code"]) for r in refusals(h)] == [
        ("/v1/grants/revoke", "malformed"),
        ("/v1/grants/delegate", "not-a-grant"),
    ]
