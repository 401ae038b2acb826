"""Just-in-time grants: issued with allowed decisions, verified offline or online, revoked on time."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import jwt
import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from app import create_app
from app.errors import PolicyError
from app.evidence.gather import GitHubEvidence
from app.github.client import GitHubClient
from app.policy.loader import parse_policy_text
from app.settings import Settings
from app.tokens.devissuer import AGENT_PRESET, DevIssuer
from tests.builders import whole
from tests.fake_github import FakeGitHub, extract
from tests.github.conftest import BOB, HEAD, base_scenario, github_settings

POLICY = """
version: 1
owner: {login: octo-org, id: 1000}
rules:
  - {name: read, actions: [read], repositories: "*"}
  - name: deploy-staging
    actions: [deploy]
    repositories: "*"
    environments: [staging]
    approvals: {count: 0}
    grant: {ttl: 300, audience: "deploy:staging", delegate_audiences: ["test:staging"]}
    github_permissions: {contents: read, deployments: write, administration: write}
  - name: release
    actions: [release]
    repositories: "*"
    approvals: {count: 0}
    grant: {required: true}
"""
SECRET = "hook-secret"
HUMAN_SHA = "e" * 40


class Harness:
    def __init__(self, tmp_path: Path, *, policy: str = POLICY) -> None:
        self.clock = [time.time()]
        scenario = base_scenario()
        scenario.runs[9000].approvals = [{"user": BOB, "state": "approved", "environments": ["staging"]}]
        self.fake = FakeGitHub(scenario).__enter__()
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "octo.yml").write_text(whole(policy))
        settings = Settings(
            dev_mode=True,
            issuers=(),
            data_dir=tmp_path / "data",
            policy_path=tmp_path / "policies",
            public_url="http://gate.test",
            webhook_secret=SecretStr(SECRET),
            policy_check_interval=0,
        )
        client = GitHubClient(github_settings(self.fake.url), backoff=0)
        self.app = create_app(
            settings, github=client, evidence=GitHubEvidence(client), clock=lambda: self.clock[0]
        )
        self.web: FlaskClient = self.app.test_client()
        self.issuer = DevIssuer(settings.data_dir)
        self.grants = self.app.extensions["agent_gate"].grants

    def token(self, **claims: Any) -> str:
        return self.issuer.mint(audience="agent-gate", now=self.clock[0], **{"sha": HEAD, **claims})

    def ask(self, body: dict[str, Any], **claims: Any) -> Any:
        return self.web.post(
            "/v1/decisions", json=body, headers={"Authorization": f"Bearer {self.token(**claims)}"}
        )

    def deploy(self, *, human_change: bool = False, **claims: Any) -> dict[str, Any]:
        """Deploy the Copilot PR's head (agent-driven), or a commit no PR is tied to (a human's change)."""
        request: dict[str, Any] = {
            "action": "deploy",
            "environment": "staging",
            "grant": True,
            "pull_request": 12,
        }
        if human_change:
            request.pop("pull_request")
            claims = {"sha": HUMAN_SHA, **claims}
        response = self.ask(request, **{"environment": "staging", **claims})
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def post(self, path: str, body: dict[str, Any], bearer: str) -> Any:
        return self.web.post(path, json=body, headers={"Authorization": f"Bearer {bearer}"})

    def jwks(self) -> jwt.PyJWKSet:
        return jwt.PyJWKSet.from_dict(self.web.get("/.well-known/jwks.json").get_json())


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.fake.__exit__()


def verify_offline(token: str, jwks: jwt.PyJWKSet, audience: str = "deploy:staging") -> dict[str, Any]:
    """What docs/grants.md tells a downstream service to do: a few lines of PyJWT."""
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(
        token, jwks[kid].key, algorithms=["ES256"], audience=audience, issuer="http://gate.test"
    )


# --- grants ------------------------------------------------------------------------------------------


def test_an_allowed_decision_that_asks_gets_a_grant_verifiable_offline(h):
    body = h.deploy()
    claims = verify_offline(body["grant"]["token"], h.jwks())
    assert (
        claims["aud"] == "deploy:staging"
        and claims["action"] == "deploy"
        and claims["permission"] == "execute"
    )
    assert claims["sub"] == "repo:2000:run:9000:attempt:1"
    assert claims["decision_id"] == body["decision_id"] and claims["sha"] == HEAD
    assert claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(body["grant"]["token"])["alg"] == "ES256"


def test_a_rule_can_require_a_grant(h):
    body = h.ask({"action": "release"}, sha=HUMAN_SHA).get_json()
    assert "grant" in body and "github_token" not in body


def test_no_grant_unless_asked_or_required(h):
    body = h.ask({"action": "deploy", "environment": "staging"}, environment="staging").get_json()
    assert body["allowed"] and "grant" not in body


def test_a_denied_decision_never_carries_credentials(h):
    response = h.ask(
        {"action": "deploy", "environment": "production", "grant": True}, environment="production"
    )
    assert response.status_code == 403 and "grant" not in response.get_json()


def test_discovery_points_at_the_jwks(h):
    doc = h.web.get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == "http://gate.test" and doc["jwks_uri"] == "http://gate.test/.well-known/jwks.json"


def test_a_grant_fails_after_expiry(h):
    h.clock[0] -= 1000  # issued 1000 s ago with a 300 s lifetime
    token = h.deploy()["grant"]["token"]
    with pytest.raises(jwt.ExpiredSignatureError):
        verify_offline(token, h.jwks())


def test_a_grant_fails_under_another_key(h):
    token = h.deploy()["grant"]["token"]
    forged_key = __import__(
        "cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ec"]
    ).generate_private_key(
        __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ec"]).SECP256R1()
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(
        claims, forged_key, algorithm="ES256", headers={"kid": jwt.get_unverified_header(token)["kid"]}
    )
    with pytest.raises(jwt.InvalidSignatureError):
        verify_offline(forged, h.jwks())


def test_rotation_keeps_old_keys_until_their_grants_expire(h):
    old = h.deploy()["grant"]["token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = h.grants.keys.rotate()
    assert {old_kid, new_kid} <= {k.key_id for k in h.jwks().keys}
    assert verify_offline(old, h.jwks())["jti"]
    assert jwt.get_unverified_header(h.deploy()["grant"]["token"])["kid"] == new_kid
    h.clock[0] += 3700  # every grant of the old key has expired
    assert old_kid not in {k.key_id for k in h.jwks().keys}
    with pytest.raises(KeyError):
        verify_offline(old, h.jwks())


# --- GitHub tokens -----------------------------------------------------------------------------------


def test_the_github_token_is_down_scoped_to_the_rule_and_the_repository(h):
    body = h.deploy(human_change=True)
    assert body["subject"]["agent"] is False
    assert body["github_token"]["permissions"] == {
        "contents": "read",
        "deployments": "write",
        "administration": "write",
    }
    sent = next(v for v in h.fake.scenario.tokens.values() if v.get("repository_ids"))
    assert sent == {
        "repository_ids": [2000],
        "permissions": {"contents": "read", "deployments": "write", "administration": "write"},
    }
    jsonschema.validate(
        sent, extract()["operations"]["apps/create-installation-access-token"]["request_schema"]
    )


def test_an_agent_never_gets_the_forbidden_permissions(h):
    body = h.deploy(**AGENT_PRESET)
    assert body["subject"]["agent"] is True
    assert body["github_token"]["permissions"] == {"contents": "read", "deployments": "write"}
    sent = [v for v in h.fake.scenario.tokens.values() if v.get("repository_ids")]
    assert all("administration" not in v["permissions"] for v in sent)


def test_credentials_never_reach_the_audit_log_or_the_decision_page(h):
    body = h.deploy()
    records = json.dumps([r.payload for r in h.app.extensions["agent_gate"].store.iter_audit()])
    assert body["grant"]["token"] not in records and body["github_token"]["token"] not in records
    page = h.web.get(f"/decisions/{body['decision_id']}", headers={"Accept": "application/json"}).get_json()
    assert "grant" not in page and body["github_token"]["token"] not in json.dumps(page)


# --- revocation and introspection ----------------------------------------------------------------------


def test_the_job_revokes_its_grant_and_github_token_idempotently(h):
    body = h.deploy()
    grant = body["grant"]["token"]
    assert h.post("/v1/grants/introspect", {"token": grant}, grant).get_json()["active"] is True
    first = h.post("/v1/grants/revoke", {}, grant)
    assert first.status_code == 200 and first.get_json()["revoked"] == [body["grant"]["jti"]]
    dead = h.post("/v1/grants/revoke", {}, grant)
    assert dead.status_code == 401 and dead.get_json()["errors"][0]["code"] == "revoked"
    again = h.post("/v1/grants/revoke", {"grant": grant}, h.token())
    assert again.status_code == 200 and again.get_json()["revoked"] == []
    assert h.post("/v1/grants/introspect", {"token": grant}, h.token()).get_json() == {"active": False}
    assert body["github_token"]["token"] in h.fake.scenario.revoked


def test_introspection_accepts_the_rfc_form_encoding(h):
    grant = h.deploy()["grant"]["token"]
    answer = h.web.post(
        "/v1/grants/introspect", data={"token": grant}, headers={"Authorization": f"Bearer {grant}"}
    ).get_json()
    assert answer["active"] is True and answer["aud"] == "deploy:staging" and "scope" in answer


def test_an_oidc_token_of_the_same_run_may_revoke_but_not_another_runs(h):
    body = h.deploy()
    other = h.post("/v1/grants/revoke", {"jti": body["grant"]["jti"]}, h.token(run_id="9999"))
    assert other.status_code == 401 and other.get_json()["errors"][0]["code"] == "wrong-workload"
    same = h.post("/v1/grants/revoke", {"jti": body["grant"]["jti"]}, h.token())
    assert same.status_code == 200 and same.get_json()["revoked"] == [body["grant"]["jti"]]


def test_chains_only_narrow_and_revoking_a_parent_revokes_its_children(h):
    parent = h.deploy()["grant"]
    child = h.post(
        "/v1/grants/delegate",
        {"step": "tester", "permission": "propose", "audience": "test:staging"},
        parent["token"],
    )
    assert child.status_code == 201
    child_grant = child.get_json()["grant"]
    claims = verify_offline(child_grant["token"], h.jwks(), audience="test:staging")
    assert claims["act"]["jti"] == parent["jti"] and claims["permission"] == "propose"
    assert (
        claims["exp"] <= parent["expires_at"] and claims["sub"] == "repo:2000:run:9000:attempt:1:step:tester"
    )
    wider = h.post("/v1/grants/delegate", {"step": "deployer", "permission": "execute"}, child_grant["token"])
    assert wider.status_code == 403 and wider.get_json()["errors"][0]["code"] == "grant-not-narrower"
    revoked = h.post("/v1/grants/revoke", {}, parent["token"]).get_json()["revoked"]
    assert set(revoked) == {parent["jti"], child_grant["jti"]}
    assert h.post("/v1/grants/introspect", {"token": child_grant["token"]}, h.token()).get_json() == {
        "active": False
    }


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param("deploy:production", id="another-environment"),
        pytest.param("read:octo-org/octo-repo", id="another-action"),
        pytest.param("test:production", id="a-narrower-name-the-rule-did-not-declare"),
    ],
)
def test_a_delegated_grant_may_not_widen_its_audience(h, audience):
    parent = h.deploy()["grant"]
    child = h.post("/v1/grants/delegate", {"step": "tester", "audience": audience}, parent["token"])
    assert child.status_code == 403, child.get_json()
    assert child.get_json()["errors"][0]["code"] == "grant-not-narrower"
    assert "expected one of deploy:staging, test:staging" in child.get_json()["message"]


def test_a_read_grant_cannot_be_delegated_into_a_deploy_audience(h):
    read = h.ask({"action": "read", "grant": True})
    assert read.status_code == 200, read.get_json()
    token = read.get_json()["grant"]["token"]
    child = h.post("/v1/grants/delegate", {"step": "deployer", "audience": "deploy:production"}, token)
    assert child.status_code == 403 and child.get_json()["errors"][0]["code"] == "grant-not-narrower"


def test_a_child_at_a_narrower_audience_cannot_widen_back(h):
    parent = h.deploy()["grant"]
    child = h.post("/v1/grants/delegate", {"step": "tester", "audience": "test:staging"}, parent["token"])
    child = child.get_json()["grant"]
    back = h.post("/v1/grants/delegate", {"step": "deployer", "audience": "deploy:staging"}, child["token"])
    assert back.status_code == 403 and back.get_json()["errors"][0]["code"] == "grant-not-narrower"
    same = h.post("/v1/grants/delegate", {"step": "reporter"}, child["token"])
    assert same.status_code == 201 and same.get_json()["grant"]["audience"] == "test:staging"


def delegate(h: Harness, parent: str, step: str, **body: Any) -> Any:
    return h.post("/v1/grants/delegate", {"step": step, **body}, parent)


def test_delegation_depth_is_bounded_by_default_and_an_equal_child_counts(h):
    """Twelve equal re-delegations in a row were accepted; the default depth is 2."""
    token = h.deploy()["grant"]["token"]
    for step in ("tester", "deployer"):  # equal children: same permission and audience, new holders
        child = delegate(h, token, step)
        assert child.status_code == 201, child.get_json()
        token = child.get_json()["grant"]["token"]
    third = delegate(h, token, "reporter")
    assert third.status_code == 400 and third.get_json()["errors"][0]["code"] == "delegation-too-deep"
    assert "2 delegation(s) deep, the most its rule allows" in third.get_json()["message"]


@pytest.mark.parametrize(
    ("depth", "accepted"),
    [pytest.param(0, 0, id="none"), pytest.param(1, 1, id="one"), pytest.param(4, 4, id="four")],
)
def test_the_rule_sets_the_delegation_depth(tmp_path, depth, accepted):
    policy = POLICY.replace('delegate_audiences: ["test:staging"]}', f"max_delegation_depth: {depth}}}")
    h = Harness(tmp_path, policy=policy)
    try:
        token = h.deploy()["grant"]["token"]
        taken = 0
        for n in range(6):
            child = delegate(h, token, f"step-{n}")
            if child.status_code != 201:
                assert child.get_json()["errors"][0]["code"] == "delegation-too-deep"
                break
            taken, token = taken + 1, child.get_json()["grant"]["token"]
        assert taken == accepted
    finally:
        h.fake.__exit__()


def test_the_depth_is_at_most_five_whatever_the_rule_says():
    with pytest.raises(PolicyError) as caught:
        parse_policy_text(whole(POLICY.replace("ttl: 300,", "ttl: 300, max_delegation_depth: 6,")), "p.yml")
    assert [p.field for p in caught.value.problems] == ["rules[1].grant.max_delegation_depth"]


def test_a_sub_grant_names_its_step_in_sub_act_audit_and_introspection(h):
    parent = h.deploy()["grant"]
    tester = delegate(h, parent["token"], "tester").get_json()["grant"]
    deployer = delegate(h, tester["token"], "deployer").get_json()["grant"]
    claims = verify_offline(deployer["token"], h.jwks())
    assert claims["step"] == "deployer" and claims["sub"].endswith(":step:deployer")
    assert claims["act"]["step"] == "tester" and claims["act"]["sub"].endswith(":step:tester")
    assert claims["act"]["act"] == {"sub": "repo:2000:run:9000:attempt:1", "jti": parent["jti"]}
    seen = h.post("/v1/grants/introspect", {"token": deployer["token"]}, h.token()).get_json()
    assert (seen["active"], seen["step"], seen["sub"]) == (True, "deployer", claims["sub"])
    assert seen["act"]["step"] == "tester"
    issued = [
        r.payload for r in h.app.extensions["agent_gate"].store.iter_audit() if r.kind == "grant-issued"
    ]
    assert [(p["step"], (p["act"] or {}).get("step")) for p in issued] == [
        (None, None),
        ("tester", None),
        ("deployer", "tester"),
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({}, "invalid-field", id="no-step"),
        pytest.param({"step": "Tester!"}, "invalid-field", id="not-a-slug"),
        pytest.param({"step": "x" * 65}, "invalid-field", id="too-long"),
    ],
)
def test_a_delegation_must_name_its_step(h, body, code):
    parent = h.deploy()["grant"]["token"]
    response = h.post("/v1/grants/delegate", body, parent)
    assert response.status_code == 400 and response.get_json()["errors"][0]["code"] == code
    assert "step" in response.get_json()["message"]


def test_a_step_already_in_the_chain_is_refused(h):
    parent = h.deploy()["grant"]["token"]
    tester = delegate(h, parent, "tester").get_json()["grant"]["token"]
    again = delegate(h, tester, "tester")
    assert again.status_code == 400 and again.get_json()["errors"][0]["code"] == "step-already-in-chain"


def test_a_dismissed_approval_revokes_the_grants_tied_to_the_pr(h):
    body = h.deploy()
    payload = {
        "action": "dismissed",
        "number": 12,
        "review": {"id": 80, "state": "dismissed", "user": {"login": "bob", "id": 1002}},
        "pull_request": {
            "number": 12,
            "state": "open",
            "user": {"login": "Copilot", "id": 198982749, "type": "Bot"},
            "head": {"sha": HEAD, "ref": "copilot/fix-thing"},
            "base": {"ref": "main", "sha": "e" * 40},
        },
        "repository": {
            "id": 2000,
            "full_name": "octo-org/octo-repo",
            "owner": {"login": "octo-org", "id": 1000},
        },
    }
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = h.web.post(
        "/v1/github/webhook",
        data=raw,
        headers={
            "X-GitHub-Event": "pull_request_review",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 202, "queued"
    assert h.app.extensions["agent_gate_queue"].drain() >= 1, "the queue's worker runs it"
    assert h.post("/v1/grants/introspect", {"token": body["grant"]["token"]}, h.token()).get_json() == {
        "active": False
    }
    store = h.app.extensions["agent_gate"].store
    [revoked] = [r for r in store.iter_audit() if r.kind == "grant-revoked"]
    assert revoked.payload["reason"] == "approval by @bob dismissed"


def test_the_audit_chain_holds_issue_and_revoke_events(h):
    grant = h.deploy()["grant"]
    h.post("/v1/grants/revoke", {"reason": "job finished"}, grant["token"])
    store = h.app.extensions["agent_gate"].store
    kinds = [r.kind for r in store.iter_audit()]
    assert kinds[-3:] == ["decision", "grant-issued", "grant-revoked"] or kinds[-2:] == [
        "grant-issued",
        "grant-revoked",
    ]
    assert store.verify_audit().ok


def test_expired_grants_are_purged(h):
    h.clock[0] -= 1000
    jti = h.deploy()["grant"]["jti"]
    h.clock[0] += 1000
    assert h.grants.purge_expired() >= 1
    assert h.app.extensions["agent_gate"].store.get_grant(jti) is None


def test_policy_check_flags_forbidden_permissions():
    from app.policy.lint import lint
    from app.policy.loader import parse_policy_text

    warnings = [p.render() for p in lint(parse_policy_text(whole(POLICY), "p.yml"))]
    assert any("asks for administration; an agent-driven workload never gets them" in w for w in warnings)


def test_a_failed_github_token_is_audited_and_no_credential_is_handed_out(h):
    h.ask(
        {"action": "deploy", "environment": "staging"}, sha=HUMAN_SHA, environment="staging"
    )  # caches the App's own token
    h.fake.scenario.failures.append({"method": "POST", "path": r"/access_tokens$", "status": 500})
    response = h.ask(
        {"action": "deploy", "environment": "staging", "grant": True}, sha=HUMAN_SHA, environment="staging"
    )
    assert response.status_code == 503
    assert "grant" not in response.get_json()
    kinds = [r.kind for r in h.app.extensions["agent_gate"].store.iter_audit()]
    assert kinds[-3:] == ["decision", "grant-failed", "decision-not-delivered"]
