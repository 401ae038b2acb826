"""The OpenAPI document is built from the routes: every route declares what it takes and answers, and
schemathesis finds no answer that departs from the declaration (status, content type, body schema,
authentication enforced), nor any 5xx, on a gate with every part configured."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask import Blueprint, Flask
from hypothesis import HealthCheck, given
from hypothesis import settings as run_settings
from pydantic import SecretStr

from app import create_app
from app.github.client import GitHubClient
from app.settings import Settings
from app.web.openapi import Undocumented, openapi_document, operations
from app.web.spec import Operation, documented, json_answer
from tests.builders import whole
from tests.conftest import TEST_POLICY, close_gate
from tests.fake_github import FakeGitHub
from tests.github.conftest import base_scenario, github_settings

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test gate, with webhooks configured so every route is reachable."""
    return settings.model_copy(update={"webhook_secret": SecretStr("webhook-secret")})


def registered(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - IGNORED_METHODS
    }


def documented_paths(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item}


def test_every_route_is_documented_and_nothing_else(app: Flask, client):
    doc = client.get("/openapi.json").get_json()
    assert registered(app) == documented_paths(doc)
    assert doc == openapi_document(app)


def test_a_route_without_a_declaration_cannot_be_built_into_the_document(app: Flask):
    extra = Blueprint("extra", __name__)

    @extra.get("/v1/undeclared")
    def undeclared() -> str:
        return "nobody said what this answers"

    bare = Flask(__name__, static_folder=None)
    bare.register_blueprint(extra)
    with pytest.raises(Undocumented, match=r"GET /v1/undeclared \(extra.undeclared\)"):
        list(operations(bare))


def test_a_declared_route_is_built_from_its_declaration():
    extra = Blueprint("extra", __name__)

    @extra.post("/v1/things/<thing_id>")
    @documented(Operation("makeThing", "Make a thing", {201: json_answer("Made.", {"type": "object"})}))
    def make(thing_id: str) -> str:
        return thing_id

    bare = Flask(__name__, static_folder=None)
    bare.register_blueprint(extra)
    operation = openapi_document(bare)["paths"]["/v1/things/{thing_id}"]["post"]
    assert operation["operationId"] == "makeThing"
    assert operation["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert operation["responses"]["201"]["content"] == {"application/json": {"schema": {"type": "object"}}}


def test_every_operation_has_an_id_and_error_answers_in_the_error_shape(app: Flask):
    denial = ("/v1/decisions", "403")  # a denial is a decision, not an error
    for path, item in openapi_document(app)["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"], (path, method)
            for status, answer in operation["responses"].items():
                if status.startswith("4") and (path, status) != denial:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, status)


def _validator(app: Flask, name: str) -> jsonschema.protocols.Validator:
    doc = openapi_document(app)
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_an_allowed_decision_with_a_grant_matches_the_documented_answer(app, client, mint):
    token = mint(sha="a" * 40, environment="staging", ref="refs/heads/main")
    response = client.post(
        "/v1/decisions",
        json={"action": "deploy", "environment": "staging", "grant": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "grant" in body
    _validator(app, "DecisionAnswer").validate(body)
    with pytest.raises(jsonschema.ValidationError):
        _validator(app, "DecisionAnswer").validate({**body, "grant": {"token": 1}})


def test_readyz_matches_the_documented_answer(app, client):
    _validator(app, "Readiness").validate(client.get("/readyz").get_json())


def test_the_grant_answers_match_the_document(app, client, mint):
    token = mint(sha="a" * 40, environment="staging", ref="refs/heads/main")
    body = client.post(
        "/v1/decisions",
        json={"action": "deploy", "environment": "staging", "grant": True},
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()
    grant = body["grant"]["token"]
    auth = {"Authorization": f"Bearer {grant}"}
    _validator(app, "IntrospectionAnswer").validate(
        client.post("/v1/grants/introspect", data={"token": grant}, headers=auth).get_json()
    )
    delegated = client.post(
        "/v1/grants/delegate", json={"step": "tester", "permission": "read"}, headers=auth
    )
    assert delegated.status_code == 201
    _validator(app, "IssuedCredentials").validate(delegated.get_json())
    _validator(app, "RevocationAnswer").validate(
        client.post("/v1/grants/revoke", json={}, headers=auth).get_json()
    )


# --- schemathesis: generated requests answered as the document says ----------------------------------


@pytest.fixture
def whole_gate(tmp_path: Path) -> Iterator[Flask]:
    """A gate with every part configured, so that no route answers 503 for want of configuration:
    webhooks, and the decision pages' GitHub login (against the fake GitHub)."""
    scenario = base_scenario()
    with FakeGitHub(scenario) as fake:
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "octo.yml").write_text(whole(TEST_POLICY))
        settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp_path / "data",
            policy_path=tmp_path / "policies",
            public_url="http://gate.test",
            policy_check_interval=0,
            webhook_secret=SecretStr("webhook-secret"),
            decision_pages="github",
            github_client_id=scenario.oauth_client_id,
            github_client_secret=scenario.oauth_client_secret,
            github_web_url=fake.url,
        )
        app = create_app(settings, github=GitHubClient(github_settings(fake.url), backoff=0))
        yield app
        close_gate(app)


def _exercise(operation: Any, credential: Callable[[], str]) -> None:
    """Run schemathesis' checks on generated requests to ``operation``, each with a fresh credential."""

    @run_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {credential()}"})

    run()


def test_no_generated_request_is_answered_other_than_documented(whole_gate: Flask) -> None:
    """Every operation, with schemathesis' checks: status documented, content type and body as
    declared, a schema-valid request not refused as invalid, no 5xx, and authentication enforced
    (each request carries a fresh credential, which the checks then withhold and replace)."""
    from app.tokens.devissuer import DevIssuer

    issuer = DevIssuer(whole_gate.extensions["agent_gate"].settings.data_dir)
    web = whole_gate.test_client()

    def oidc() -> str:
        return issuer.mint(audience="agent-gate")

    def grant() -> str:
        answer = web.post(
            "/v1/decisions",
            json={"action": "read", "grant": True},
            headers={"Authorization": f"Bearer {oidc()}"},
        )
        assert answer.status_code == 200, answer.get_json()
        return str(answer.get_json()["grant"]["token"])

    api = schemathesis.openapi.from_wsgi("/openapi.json", whole_gate)
    failures: dict[str, str] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        # The credential the operation names first: a live grant where a grant is what it expects.
        schemes = [next(iter(s)) for s in operation.definition.raw.get("security", [])]
        try:
            _exercise(operation, grant if schemes[:1] == ["grant"] else oidc)
        except BaseException as exc:  # schemathesis' failure groups: collected, then reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[operation.label] = str(exc)[:3000]
    assert failures == {}, "\n\n".join(f"{label}:\n{why}" for label, why in sorted(failures.items()))
