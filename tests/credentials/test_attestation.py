"""Signed decision attestations: ``GET /v1/decisions/<id>/attestation``, refusals first.

The envelope is checked with other people's code: securesystemslib verifies the DSSE signature with
the key the gate publishes at /.well-known/jwks.json, in-toto's own bindings validate the statement,
and jsonschema validates the predicate against docs/schemas/decision-attestation-v1.json.
"""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import google.protobuf.json_format as pb_json
import jsonschema
import jwt
import pytest
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from app.credentials.attestation import MEDIA_TYPE, PAYLOAD_TYPE, PREDICATE_TYPE, SCHEME, STATEMENT_TYPE
from app.tokens.devissuer import SAMPLE_SHA
from tests.builders import whole
from tests.conftest import TEST_POLICY
from tests.web.test_login import MALLORY, Site, error_code

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/schemas/decision-attestation-v1.json").read_text("utf-8")
)

# The shared test policy, and a rule in audit mode: an unapproved canary deploy is allowed, marked would_deny.
POLICY = (
    TEST_POLICY
    + """
  - name: deploy-canary
    mode: audit
    actions: [deploy]
    repositories: [{id: 2000, name: octo-org/octo-repo}]
    environments: [canary]
    approvals: {count: 1}
"""
)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies" / "octo-org.yml"
    path.parent.mkdir()
    path.write_text(whole(POLICY))
    return path


def decided(ask: Any, body: dict[str, Any], **claims: Any) -> dict[str, Any]:
    response = ask(body, **claims)
    assert response.status_code in (200, 403), response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def attestation_of(client: Any, decision_id: str, **headers: str) -> Any:
    return client.get(f"/v1/decisions/{decision_id}/attestation", headers=headers)


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return found


def ssl_keys(client: Any) -> list[SSlibKey]:
    """The gate's published keys, as securesystemslib keys named by their kid."""
    out = []
    for jwk in client.get("/.well-known/jwks.json").get_json()["keys"]:
        public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
        out.append(SSlibKey.from_crypto(public, keyid=jwk["kid"], scheme=SCHEME))
    return out


# --- refusals first -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "decision_id",
    [
        pytest.param("dec_doesnotexist12345678", id="unknown-id"),
        pytest.param("dec_short", id="malformed-id"),
        pytest.param("..%2F..%2Fetc%2Fpasswd", id="path-traversal"),
    ],
)
def test_an_unknown_decision_is_404(client, decision_id):
    response = attestation_of(client, decision_id)
    assert response.status_code == 404 and error_code(response) == "not-found"


def test_a_decision_about_no_commit_has_no_attestation(client, ask):
    decision = decided(ask, {"action": "read"}, sha="not-a-commit")
    response = attestation_of(client, decision["decision_id"])
    assert response.status_code == 409 and error_code(response) == "no-commit"
    assert "is about no commit" in response.get_json()["message"]


def test_a_saved_record_that_differs_from_its_audit_entry_is_not_signed(client, ask, settings):
    decision = decided(ask, {"action": "deploy", "environment": "production"})
    assert decision["allowed"] is False
    forged = {**decision, "allowed": True}  # an edit of the page's table, which the chain does not protect
    with sqlite3.connect(settings.data_dir / "agent-gate.db") as db:
        db.execute(
            "UPDATE decisions SET record = ? WHERE decision_id = ?",
            (json.dumps(forged), decision["decision_id"]),
        )
    response = attestation_of(client, decision["decision_id"])
    assert response.status_code == 409 and error_code(response) == "record-mismatch"
    assert "differs from its audit entry in: allowed" in response.get_json()["message"]


def test_a_workload_of_another_repository_sees_a_404_like_a_missing_decision(client, ask, mint):
    decision = decided(ask, {"action": "deploy"}, environment="staging")
    other = mint(repository="octo-org/other", repository_id="2001")
    denied = attestation_of(client, decision["decision_id"], Authorization=f"Bearer {other}")
    missing = attestation_of(client, "dec_" + "x" * 22, Authorization=f"Bearer {mint()}")
    assert denied.status_code == missing.status_code == 404
    assert denied.get_json() == missing.get_json()


def test_a_refused_credential_is_401_and_audited(app, client, ask, mint):
    decision = decided(ask, {"action": "deploy"}, environment="staging")
    token = mint()
    assert attestation_of(client, decision["decision_id"], Authorization=f"Bearer {token}").status_code == 200
    replayed = attestation_of(client, decision["decision_id"], Authorization=f"Bearer {token}")
    assert replayed.status_code == 401 and error_code(replayed) == "replayed"
    store = app.extensions["agent_gate"].store
    assert [r.payload["code"] for r in store.iter_audit() if r.kind == "token-refused"] == ["replayed"]


@pytest.fixture
def site(tmp_path: Path):
    from tests.github.conftest import base_scenario

    s = Site(tmp_path, base_scenario())
    yield s
    s.close()


def test_without_a_login_or_a_credential_it_is_401(site):
    response = attestation_of(site.web, site.decision())
    assert response.status_code == 401 and error_code(response) == "login-required"


def test_a_reader_who_may_not_see_the_page_gets_a_404_like_a_missing_decision(site):
    decision_id = site.decision()
    assert site.log_in(f"/decisions/{decision_id}", as_user=MALLORY).status_code == 302
    denied = attestation_of(site.web, decision_id)
    missing = attestation_of(site.web, "dec_" + "x" * 22)
    assert denied.status_code == missing.status_code == 404
    assert denied.get_json() == missing.get_json()
    assert "octo-org" not in denied.get_data(as_text=True)


def test_a_reader_who_may_read_the_repository_gets_it(site):
    from tests.web.test_login import CAROL

    decision_id = site.decision()
    site.log_in(f"/decisions/{decision_id}", as_user=CAROL)
    response = attestation_of(site.web, decision_id)
    assert response.status_code == 200 and response.mimetype == MEDIA_TYPE


def test_a_job_of_the_same_repository_gets_it_with_its_oidc_token(site):
    decision_id = site.decision()
    token = site.issuer.mint(audience="agent-gate")
    response = attestation_of(site.web, decision_id, Authorization=f"Bearer {token}")
    assert response.status_code == 200 and response.mimetype == MEDIA_TYPE


# --- what is signed -----------------------------------------------------------------------------------


def test_the_envelope_verifies_with_a_published_key_and_names_it(client, ask):
    decision = decided(ask, {"action": "deploy"}, environment="staging")
    response = attestation_of(client, decision["decision_id"])
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.dsse.envelope.v1+json"
    assert response.headers["Cache-Control"] == "private, no-store"
    envelope = response.get_json(force=True)
    assert envelope["payloadType"] == PAYLOAD_TYPE
    [signature] = envelope["signatures"]
    published = {k.keyid for k in ssl_keys(client)}
    assert signature["keyid"] in published and signature["keyid"].startswith("ak_")
    accepted = Envelope.from_dict(copy.deepcopy(envelope)).verify(ssl_keys(client), 1)
    assert list(accepted) == [signature["keyid"]]


def test_the_statement_is_valid_for_in_totos_own_bindings(client, ask):
    decision = decided(ask, {"action": "deploy"}, environment="staging")
    statement = statement_of(attestation_of(client, decision["decision_id"]).get_json(force=True))
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == [
        {
            "name": "octo-org/octo-repo",
            "digest": {"gitCommit": SAMPLE_SHA},
            "annotations": {"repositoryId": 2000},
        }
    ]
    Statement.copy_from_pb(pb_json.ParseDict(statement, statement_pb2.Statement())).validate()


def test_an_allowed_decision_says_what_an_auditor_asks(client, ask, app):
    decision = decided(ask, {"action": "deploy"}, environment="staging")
    predicate = statement_of(attestation_of(client, decision["decision_id"]).get_json(force=True))[
        "predicate"
    ]
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(predicate)
    [entry] = [r for r in app.extensions["agent_gate"].store.iter_audit() if r.kind == "decision"]
    assert predicate["audit"] == {"seq": entry.seq, "hash": entry.hash, "kind": "decision"}
    assert predicate["decisionId"] == decision["decision_id"]
    assert (predicate["action"], predicate["verdict"], predicate["rule"]) == (
        "deploy",
        "allowed",
        "deploy-staging",
    )
    assert predicate["policyDigest"] == decision["policy_digest"]
    assert predicate["reasons"] == [
        {"code": r["code"], "ok": r["ok"], "checked": r["checked"], "message": r["message"]}
        for r in decision["reasons"]
    ], "every reason, and whether it could be checked at all"
    assert predicate["workload"]["repositoryId"] == 2000 and predicate["workload"]["origin"] == "oidc-token"
    assert predicate["workload"]["environment"] == "staging"
    assert predicate["auditMode"] == {"wouldDeny": False} and predicate["breakGlass"] is None
    assert predicate["gate"]["url"] == "http://gate.test"


def test_an_agents_denied_decision_carries_its_signals_and_its_approvals_codes(client, ask, evidence_source):
    from tests.web.test_pages import denied_agent_merge

    evidence_source.evidence = denied_agent_merge()
    decision = decided(ask, {"action": "merge", "pull_request": 12}, agent=True)
    assert decision["allowed"] is False
    predicate = statement_of(attestation_of(client, decision["decision_id"]).get_json(force=True))[
        "predicate"
    ]
    jsonschema.Draft202012Validator(SCHEMA).validate(predicate)
    assert predicate["verdict"] == "denied"
    assert predicate["agent"]["involved"] is True and predicate["agent"]["signals"]
    codes = {(a["login"], a["code"], a["counted"], a["afterCommitSeconds"]) for a in predicate["approvals"]}
    assert codes == {
        (a["login"], a["code"], a["counted"], a["after_commit_seconds"]) for a in decision["approvals"]
    }
    assert all(a["why"] for a in predicate["approvals"])


def test_audit_mode_is_said_in_the_verdict(client, ask):
    decision = decided(ask, {"action": "deploy"}, environment="canary")
    assert decision["allowed"] is True and decision["would_deny"] is True
    predicate = statement_of(attestation_of(client, decision["decision_id"]).get_json(force=True))[
        "predicate"
    ]
    jsonschema.Draft202012Validator(SCHEMA).validate(predicate)
    assert predicate["verdict"] == "allowed-audit-mode" and predicate["auditMode"] == {"wouldDeny": True}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        pytest.param(lambda p: p.pop("verdict"), "'verdict' is a required property", id="no-verdict"),
        pytest.param(lambda p: p.update(verdict="maybe"), "'maybe' is not one of", id="unknown-verdict"),
        pytest.param(lambda p: p["audit"].update(hash="x"), "does not match", id="bad-audit-hash"),
        pytest.param(lambda p: p.update(extra=1), "Additional properties", id="unknown-field"),
    ],
)
def test_the_schema_refuses_what_the_gate_never_signs(client, ask, change, where):
    decision = decided(ask, {"action": "deploy"}, environment="staging")
    predicate = statement_of(attestation_of(client, decision["decision_id"]).get_json(force=True))[
        "predicate"
    ]
    change(predicate)
    with pytest.raises(jsonschema.ValidationError, match=where):
        jsonschema.Draft202012Validator(SCHEMA).validate(predicate)


def test_the_attestation_key_is_published_beside_the_grant_keys_and_survives_their_rotation(app, client, ask):
    from app.credentials.keys import SigningKeys

    decision = decided(ask, {"action": "deploy", "grant": True}, environment="staging")
    envelope = attestation_of(client, decision["decision_id"]).get_json(force=True)
    kids = [k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]]
    assert any(k.startswith("gk_") for k in kids) and any(k.startswith("ak_") for k in kids)
    SigningKeys(app.extensions["agent_gate"].store).rotate()  # a grant key rotation
    again = attestation_of(client, decision["decision_id"]).get_json(force=True)
    assert again["signatures"][0]["keyid"] == envelope["signatures"][0]["keyid"]
    Envelope.from_dict(copy.deepcopy(envelope)).verify(ssl_keys(client), 1)


def test_a_live_grant_of_the_repository_fetches_it_and_a_revoked_one_does_not(client, ask):
    decision = decided(ask, {"action": "deploy", "grant": True}, environment="staging")
    grant = decision["grant"]["token"]
    assert attestation_of(client, decision["decision_id"], Authorization=f"Bearer {grant}").status_code == 200
    client.post("/v1/grants/revoke", json={}, headers={"Authorization": f"Bearer {grant}"})
    refused = attestation_of(client, decision["decision_id"], Authorization=f"Bearer {grant}")
    assert refused.status_code == 401 and error_code(refused) == "revoked"


def test_a_decision_allowed_by_break_glass_says_so_and_the_verifier_wants_it_accepted(
    client, ask, mint, policy_file
):
    from app.credentials.attestation_verify import AttestationRefused, Expected, verify
    from tests.governance.policies import write_policy
    from tests.governance.test_breakglass import ALICE, BODY, DENIED_DEPLOY
    from tests.governance.test_breakglass import POLICY as BREAK_GLASS_POLICY

    write_policy(policy_file, BREAK_GLASS_POLICY)

    def invoke(path: str, body: dict[str, Any], **claims: Any) -> Any:
        return client.post(path, json=body, headers={"Authorization": f"Bearer {mint(**claims)}"})

    record = invoke("/v1/break-glass", BODY).get_json()
    assert invoke(f"/v1/break-glass/{record['id']}/confirm", {}, **ALICE).status_code == 200
    decision = decided(ask, DENIED_DEPLOY[0], **DENIED_DEPLOY[1])
    assert decision["break_glass"] == record["id"]
    raw = attestation_of(client, decision["decision_id"]).get_data()
    predicate = statement_of(json.loads(raw))["predicate"]
    jsonschema.Draft202012Validator(SCHEMA).validate(predicate)
    assert predicate["verdict"] == "allowed-break-glass" and predicate["breakGlass"] == {"id": record["id"]}
    jwks = client.get("/.well-known/jwks.json").get_json()
    with pytest.raises(AttestationRefused, match=f"allowed only by break-glass {record['id']}"):
        verify(raw, jwks, Expected(commit=SAMPLE_SHA, action="deploy"))
    assert verify(raw, jwks, Expected(commit=SAMPLE_SHA, action="deploy", accept_break_glass=True))


def test_a_merge_check_from_the_webhook_is_attested_as_one(tmp_path):
    from tests.github.conftest import HEAD, base_scenario
    from tests.web.test_webhook import Hub

    hub = Hub(tmp_path, base_scenario())
    try:
        hub.deliver("pull_request", hub.payload("opened"))
        store = hub.app.extensions["agent_gate"].store
        [entry] = [r for r in store.iter_audit() if r.kind == "merge-check"]
        response = attestation_of(hub.web, entry.payload["decision_id"])
        assert response.status_code == 200, response.get_json()
        statement = statement_of(response.get_json(force=True))
        assert statement["subject"][0]["digest"] == {"gitCommit": HEAD}
        predicate = statement["predicate"]
        jsonschema.Draft202012Validator(SCHEMA).validate(predicate)
        assert predicate["workload"]["origin"] == "pull-request-check" and predicate["action"] == "merge"
        assert predicate["audit"] == {"seq": entry.seq, "hash": entry.hash, "kind": "merge-check"}
    finally:
        hub.close()
