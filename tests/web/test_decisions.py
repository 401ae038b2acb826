"""POST /v1/decisions and the service endpoints, end to end through the Flask app."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from app.errors import GitHubError, Unavailable
from tests.conftest import RecordingEvidence

# --- the done-when of the gate core ---------------------------------------------------------------


def test_an_agent_may_read(ask, evidence_source: RecordingEvidence):
    response = ask({"action": "read"}, agent=True)
    assert response.status_code == 200
    body = response.get_json()
    assert body["allowed"] is True
    assert body["permission"] == "read"
    assert body["rule"] == "read-anything"
    assert body["subject"]["agent"] is True
    assert body["subject"]["agent_signals"][0]["name"] == "actor"
    assert body["details_url"] == f"http://gate.test/decisions/{body['decision_id']}"
    assert evidence_source.calls == [], "a read decision asks GitHub for nothing"


def test_an_agent_may_not_execute_without_approval(ask):
    response = ask({"action": "deploy", "environment": "production"}, agent=True, environment="production")
    assert response.status_code == 403
    body = response.get_json()
    assert body["allowed"] is False
    assert body["permission"] == "execute"
    failed = [r for r in body["reasons"] if not r["ok"]]
    assert failed and "no approval evidence is available" in failed[0]["message"]
    assert "the GitHub App is not configured" in body["remedy"]


def test_a_human_on_a_rule_without_approvals_may_execute(ask):
    response = ask({"action": "deploy"}, environment="staging")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["rule"] == "deploy-staging"


def test_denial_names_the_closest_rule_and_the_failed_condition(ask):
    response = ask(
        {"action": "deploy", "environment": "staging"}, ref="refs/heads/dev", environment="staging"
    )
    body = response.get_json()
    assert response.status_code == 403
    assert body["rule"] == "deploy-staging"
    assert any(r["message"] == "ref: got refs/heads/dev, expected refs/heads/main" for r in body["reasons"])


# --- tokens ---------------------------------------------------------------------------------------


def test_replayed_token_is_refused(ask, mint):
    token = mint()
    assert ask({"action": "read"}, token=token).status_code == 200
    again = ask({"action": "read"}, token=token)
    assert again.status_code == 401
    assert again.get_json()["errors"][0]["code"] == "replayed"


def test_replay_with_padding_appended_is_still_a_replay(ask, mint):
    token = mint()
    assert ask({"action": "read"}, token=token).status_code == 200
    assert ask({"action": "read"}, token=token + "=").get_json()["errors"][0]["code"] in {
        "replayed",
        "malformed",
    }


def test_tampered_token_is_refused(ask, mint):
    header, payload, signature = mint().split(".")
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["actor"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = ask({"action": "read"}, token=f"{header}.{forged}.{signature}")
    assert response.status_code == 401
    assert response.get_json()["errors"][0]["code"] == "bad-signature"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing-token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing-token"),
        ({"Authorization": "Bearer not-a-jwt"}, "malformed"),
    ],
    ids=["no-header", "basic-auth", "garbage"],
)
def test_missing_or_malformed_token(client, headers, code):
    response = client.post("/v1/decisions", json={"action": "read"}, headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert body["errors"][0]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_oversized_token_gets_413(client):
    response = client.post(
        "/v1/decisions", json={"action": "read"}, headers={"Authorization": "Bearer " + "a" * 20000}
    )
    assert response.status_code == 413
    assert response.get_json()["errors"][0]["code"] == "token-too-large"


def test_refused_token_is_audited_by_hash_never_by_value(app, ask, mint):
    token = mint()
    ask({"action": "read"}, token=token)
    ask({"action": "read"}, token=token)  # replay
    store = app.extensions["agent_gate"].store
    records = list(store.iter_audit())
    assert [r.kind for r in records] == ["decision", "token-refused"]
    refused = records[1].payload
    assert refused["code"] == "replayed"
    assert refused["claims"]["repository"] == "octo-org/octo-repo"
    assert token not in json.dumps([r.payload for r in records])
    assert len(refused["token_sha256"]) == 64


def test_one_token_sent_twice_at_once_is_answered_once(app, mint, monkeypatch):
    """Both requests pass verification before either is recorded; the decision's transaction spends
    the token, so the one recorded second is refused as a replay and leaves no decision behind."""
    import app.web.decisions as decisions

    both_decided = threading.Barrier(2, timeout=10)
    original = decisions.decide_request

    def decide_together(*args, **kwargs):
        decision = original(*args, **kwargs)
        both_decided.wait()
        return decision

    monkeypatch.setattr(decisions, "decide_request", decide_together)
    token = mint()
    answers: list[tuple[int, str | None]] = []

    def send() -> None:
        r = app.test_client().post(
            "/v1/decisions", json={"action": "read"}, headers={"Authorization": f"Bearer {token}"}
        )
        body = r.get_json()
        answers.append((r.status_code, body["errors"][0]["code"] if "errors" in body else None))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(answers) == [(200, None), (401, "replayed")]
    records = list(app.extensions["agent_gate"].store.iter_audit())
    assert sorted(r.kind for r in records) == ["decision", "token-refused"]
    refused = next(r.payload for r in records if r.kind == "token-refused")
    assert refused["code"] == "replayed" and refused["claims"]["repository"] == "octo-org/octo-repo"


def test_a_replayed_token_buys_no_github_call(ask, mint, evidence_source):
    token = mint(environment="production")
    ask({"action": "deploy"}, token=token)
    asked = len(evidence_source.calls)
    assert asked == 1, "the first use gathers evidence"
    again = ask({"action": "deploy"}, token=token)
    assert again.status_code == 401 and again.get_json()["errors"][0]["code"] == "replayed"
    assert len(evidence_source.calls) == asked, "refused before any evidence is gathered"


def test_a_token_is_spent_by_a_decision_not_made(ask, mint, evidence_source):
    evidence_source.error = GitHubError("GitHub did not answer in 10 s; retry later")
    token = mint(environment="production")
    assert ask({"action": "deploy"}, token=token).status_code == 503
    evidence_source.error = None
    again = ask({"action": "deploy"}, token=token)
    assert again.status_code == 401 and again.get_json()["errors"][0]["code"] == "replayed", (
        "a retry needs a fresh token: the first use is on record"
    )


def test_a_token_whose_decision_was_not_recorded_is_not_spent(app, ask, mint, monkeypatch):
    """The replay record is part of the decision's transaction: no audit record, no spent token."""
    store = app.extensions["agent_gate"].store
    token = mint()
    real = store.record_decision

    def broken(*args, **kwargs):
        raise Unavailable("the audit log cannot be written", code="audit-unavailable")

    monkeypatch.setattr(store, "record_decision", broken)
    assert ask({"action": "read"}, token=token).status_code == 503
    monkeypatch.setattr(store, "record_decision", real)
    assert ask({"action": "read"}, token=token).status_code == 200


# --- request bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "message"),
    [
        ({"json": {"action": "read", "extra": 1}}, 400, "invalid-field", "extra: unknown field"),
        ({"json": {"action": "Deploy Now"}}, 400, "invalid-field", "action: String should match pattern"),
        ({"json": {}}, 400, "invalid-field", "action: Field required"),
        ({"json": {"action": "merge", "pull_request": 0}}, 400, "invalid-field", "pull_request"),
        ({"json": {"action": "merge", "sha": "xyz"}}, 400, "invalid-field", "sha"),
        ({"json": ["read"]}, 400, "invalid-field", "Input should be an object"),
        (
            {"data": "action=read", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported-media-type",
            "expected Content-Type: application/json",
        ),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid-field", "Invalid JSON"),
        ({"data": "x" * (65 * 1024), "content_type": "application/json"}, 413, "payload-too-large", "limit"),
    ],
    ids=[
        "unknown-field",
        "bad-action-name",
        "missing-action",
        "pr-zero",
        "bad-sha",
        "not-an-object",
        "form-body",
        "broken-json",
        "too-large",
    ],
)
def test_bad_bodies_get_one_error_shape(client, mint, kwargs, status, code, message):
    response = client.post("/v1/decisions", headers={"Authorization": f"Bearer {mint()}"}, **kwargs)
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"message", "errors"}
    assert body["errors"][0]["code"] == code
    assert message in body["message"]


def test_a_token_without_an_environment_claim_cannot_deploy_to_a_named_environment(ask):
    # The job never declared an environment, so GitHub's environment protections never ran for it.
    response = ask({"action": "deploy", "environment": "staging"})
    body = response.get_json()
    assert response.status_code == 403, body
    assert [r["code"] for r in body["reasons"] if not r["ok"]] == ["environment"]
    assert body["subject"]["environment"] == "staging"


def test_environment_in_body_must_agree_with_the_token(ask):
    response = ask({"action": "deploy", "environment": "production"}, environment="staging")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "environment-mismatch"


def test_unknown_route_and_method_use_the_error_shape(client):
    assert client.get("/nope").get_json()["errors"][0]["code"] == "not-found"
    assert client.get("/v1/decisions").get_json()["errors"][0]["code"] == "method-not-allowed"


# --- failing closed -------------------------------------------------------------------------------


def test_github_unavailable_while_gathering_evidence_is_503_and_audited_nothing_allowed(ask, evidence_source):
    evidence_source.error = GitHubError("GitHub did not answer in 10 s; retry later", retry_after=30)
    response = ask({"action": "deploy", "environment": "production"}, agent=True, environment="production")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["errors"][0]["code"] == "github-unavailable"


def test_decisions_that_need_no_evidence_work_while_github_is_down(ask, evidence_source):
    evidence_source.error = GitHubError("down")
    assert ask({"action": "read"}, agent=True).status_code == 200
    assert ask({"action": "open-pull-request"}, agent=True).status_code == 200


def test_failed_audit_write_denies(app, ask, monkeypatch):
    store = app.extensions["agent_gate"].store

    def broken(*args, **kwargs):
        raise Unavailable(
            "the audit log cannot be written; the decision was not made", code="audit-unavailable"
        )

    monkeypatch.setattr(store, "append_audit", broken)
    monkeypatch.setattr(store, "record_decision", broken)  # the decision's record and page, together
    response = ask({"action": "read"}, agent=True)
    assert response.status_code == 503
    assert response.get_json()["errors"][0]["code"] == "audit-unavailable"


def test_unexpected_error_is_a_500_without_a_stack_trace(ask, evidence_source, caplog):
    evidence_source.error = RuntimeError("secret internal detail")
    app_logger = logging.getLogger("agent_gate")
    with caplog.at_level(logging.ERROR, logger=app_logger.name):
        response = ask({"action": "deploy", "environment": "production"}, environment="production")
    assert response.status_code == 500
    body = response.get_json()
    assert set(body) == {"message", "errors"}
    assert "Traceback" not in response.get_data(as_text=True)
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "the request was not allowed" in body["message"]


# --- audit ----------------------------------------------------------------------------------------


def test_every_decision_is_audited_before_the_answer(app, ask):
    response = ask({"action": "deploy", "environment": "production"}, agent=True, environment="production")
    decision = response.get_json()
    store = app.extensions["agent_gate"].store
    [record] = list(store.iter_audit())
    assert record.kind == "decision"
    payload = record.payload
    assert payload["decision_id"] == decision["decision_id"]
    assert payload["subject"]["repository_id"] == 2000 and payload["subject"]["actor_id"] == 198982749
    assert payload["policy_digest"] == decision["policy_digest"]
    assert payload["allowed"] is False and payload["reasons"] == decision["reasons"]
    assert len(payload["token_sha256"]) == 64
    assert store.verify_audit().ok


# --- service endpoints ----------------------------------------------------------------------------


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_each_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    checks = response.get_json()["checks"]
    assert checks["policy"]["ok"] and checks["policy"]["owners"] == 1
    assert "1000" not in response.get_data(as_text=True), "no policy owner is shown"
    assert checks["store"] == {"ok": True}
    assert checks["keys"] == {"ok": True}


def test_readyz_is_503_when_the_store_cannot_be_written(app, client, monkeypatch):
    store = app.extensions["agent_gate"].store

    def broken():
        raise Unavailable("the store cannot be written: disk full", code="store-unavailable")

    monkeypatch.setattr(store, "check_writable", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["store"] == {
        "ok": False,
        "message": "the store cannot be written: disk full",
    }


def test_openapi_describes_the_decision_endpoint(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    operation = doc["paths"]["/v1/decisions"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "413", "415", "503"}
    schemas = doc["components"]["schemas"]
    assert schemas["DecisionRequest"]["additionalProperties"] is False
    assert {"decision_id", "allowed", "reasons", "remedy", "policy_digest"} <= set(
        schemas["Decision"]["properties"]
    )


def test_housekeeping_purges_expired_replay_records_at_most_every_interval(app, ask):
    gate = app.extensions["agent_gate"]
    store = gate.store
    store.claim_jti("https://old.example", "gone", 1000)
    gate.housekeeping.interval = 3600
    ask({"action": "read"})
    gate.housekeeping.join(10)  # it runs off the request path
    assert store.claim_jti("https://old.example", "gone", 1000) is True, "purged on the first decision"
    ask({"action": "read"})
    gate.housekeeping.join(10)
    assert store.claim_jti("https://old.example", "gone", 1000) is False, (
        "not purged again before the interval"
    )


def test_a_failing_check_run_never_changes_the_decision(app, ask, evidence_source):
    from tests.builders import ALICE, evidence, pull_request, review

    def broken(decision):
        raise RuntimeError("GitHub is down")

    gate = app.extensions["agent_gate"]
    gate.hooks.append(broken)
    evidence_source.evidence = evidence(pr=pull_request(), reviews=[review(ALICE)])
    response = ask({"action": "merge", "pull_request": 12}, event_name="workflow_dispatch")
    assert response.status_code == 403
    kinds = [r.kind for r in gate.store.iter_audit()]
    assert kinds == ["decision", "side-effect-failed"]
