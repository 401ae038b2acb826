"""``agent-gate attest verify``: exit 0 only for an allowed decision of the action on the commit.

The envelopes come from a real gate's ``GET /v1/decisions/{id}/attestation``; the key set from its
``/.well-known/jwks.json`` (saved to a file, or fetched over real HTTP), or from its database.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from app import create_app
from app.cli import main
from app.credentials.attestation import sign
from app.credentials.keys import AttestationKeys
from app.settings import Settings
from app.tokens.devissuer import SAMPLE_SHA
from tests.builders import whole
from tests.conftest import close_gate
from tests.credentials.test_attestation import POLICY

OTHER_SHA = "0" * 40


@pytest.fixture
def settings(tmp_path: Path, data_dir: Path) -> Settings:
    """The test gate, keeping its store where the CLI looks by default (GATE_DATA_DIR)."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "octo-org.yml").write_text(whole(POLICY))
    return Settings(
        dev_mode=True,
        issuers=(),
        data_dir=data_dir,
        policy_path=tmp_path / "policies",
        public_url="http://gate.test",
        policy_check_interval=0,
    )


class Gate:
    def __init__(self, app: Any, tmp_path: Path) -> None:
        self.app = app
        self.client = app.test_client()
        self.tmp_path = tmp_path
        from app.tokens.devissuer import DevIssuer

        self.issuer = DevIssuer(app.extensions["agent_gate"].settings.data_dir)

    def decide(self, body: dict[str, Any], **claims: Any) -> str:
        token = self.issuer.mint(audience="agent-gate", **claims)
        response = self.client.post("/v1/decisions", json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 403), response.get_json()
        return str(response.get_json()["decision_id"])

    def envelope(self, body: dict[str, Any], **claims: Any) -> Path:
        decision_id = self.decide(body, **claims)
        response = self.client.get(f"/v1/decisions/{decision_id}/attestation")
        assert response.status_code == 200, response.get_json()
        return self.save(response.get_json(force=True), decision_id)

    def save(self, envelope: dict[str, Any], name: str) -> Path:
        path = self.tmp_path / f"{name}.intoto.json"
        path.write_text(json.dumps(envelope))
        return path

    def jwks_file(self) -> Path:
        path = self.tmp_path / "jwks.json"
        path.write_text(json.dumps(self.client.get("/.well-known/jwks.json").get_json()))
        return path


@pytest.fixture
def gate(settings: Settings, tmp_path: Path) -> Iterator[Gate]:
    app = create_app(settings)
    yield Gate(app, tmp_path)
    close_gate(app)


def run(*argv: str) -> int:
    return main(["attest", "verify", *argv])


def refused(capsys: Any, code: str) -> str:
    err = capsys.readouterr().err
    assert f"refused ({code})" in err, err
    return err


# --- refusals first -----------------------------------------------------------------------------------


def test_a_key_set_of_another_gate_is_refused(gate, capsys, tmp_path, settings):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    other_settings = settings.model_copy(update={"data_dir": tmp_path / "other"})
    other = create_app(other_settings)
    try:
        AttestationKeys(other.extensions["agent_gate"].store).current()
        jwks = tmp_path / "other-jwks.json"
        jwks.write_text(json.dumps(other.test_client().get("/.well-known/jwks.json").get_json()))
    finally:
        close_gate(other)
    assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", str(jwks)) == 1
    assert "a key the key set does not hold" in refused(capsys, "unknown-key")


def test_another_key_under_the_same_kid_is_refused(gate, capsys, tmp_path):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    kid = json.loads(envelope.read_text())["signatures"][0]["keyid"]
    impostor = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    jwks = tmp_path / "impostor.json"
    jwks.write_text(json.dumps({"keys": [{**impostor, "kid": kid, "use": "sig"}]}))
    assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", str(jwks)) == 1
    refused(capsys, "bad-signature")


def test_a_changed_payload_is_refused(gate, capsys):
    envelope = gate.envelope({"action": "deploy", "environment": "production"})  # denied: no approval
    data = json.loads(envelope.read_text())
    statement = json.loads(base64.b64decode(data["payload"]))
    assert statement["predicate"]["verdict"] == "denied"
    statement["predicate"]["verdict"] = "allowed"
    data["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = gate.save(data, "forged")
    assert run(str(forged), "--commit", SAMPLE_SHA, "--jwks", str(gate.jwks_file())) == 1
    assert "changed after the gate signed it" in refused(capsys, "bad-signature")


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        pytest.param(["--commit", OTHER_SHA], "wrong-commit", f"not {OTHER_SHA}", id="another-commit"),
        pytest.param(
            ["--commit", SAMPLE_SHA, "--action", "merge"], "wrong-action", "not 'merge'", id="another-action"
        ),
        pytest.param(
            ["--commit", SAMPLE_SHA, "--repository", "octo-org/other"],
            "wrong-repository",
            "not octo-org/other",
            id="another-repository",
        ),
        pytest.param(["--commit", "abc"], "bad-commit", "expected a full commit sha", id="not-a-sha"),
    ],
)
def test_an_attestation_of_something_else_is_refused(gate, capsys, args, code, says):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    assert run(str(envelope), *args, "--jwks", str(gate.jwks_file())) == 1
    assert says in refused(capsys, code)


def test_a_denied_decision_is_refused(gate, capsys):
    envelope = gate.envelope({"action": "deploy", "environment": "production"})
    assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", str(gate.jwks_file())) == 1
    assert "was denied: " in refused(capsys, "denied")


def test_an_allow_in_audit_mode_is_refused(gate, capsys):
    envelope = gate.envelope({"action": "deploy"}, environment="canary")
    assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", str(gate.jwks_file())) == 1
    assert "enforced, it is denied" in refused(capsys, "audit-mode")


def test_an_allow_by_break_glass_is_refused_unless_accepted(gate, capsys):
    envelope = json.loads(gate.envelope({"action": "deploy"}, environment="staging").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"].update(verdict="allowed-break-glass", breakGlass={"id": "bg_1"})
    # Signed by the gate's own key: what the gate answers for a decision allowed by break-glass.
    signed = gate.save(sign(statement, gate.app.extensions["agent_gate"].attestations.keys), "bg")
    jwks = str(gate.jwks_file())
    assert run(str(signed), "--commit", SAMPLE_SHA, "--jwks", jwks) == 1
    assert "--accept-break-glass" in refused(capsys, "break-glass")
    assert run(str(signed), "--commit", SAMPLE_SHA, "--jwks", jwks, "--accept-break-glass") == 0


@pytest.mark.parametrize(
    ("content", "code"),
    [
        pytest.param("not json", "malformed", id="not-json"),
        pytest.param(
            '{"payload": "", "payloadType": "application/vnd.in-toto+json", "signatures": []}',
            "malformed",
            id="unsigned",
        ),
        pytest.param(
            '{"payload": "e30=", "payloadType": "text/plain", "signatures": [{"keyid": "k", "sig": "AA=="}]}',
            "wrong-payload-type",
            id="not-in-toto",
        ),
    ],
)
def test_what_is_not_a_gate_envelope_is_refused(gate, capsys, tmp_path, content, code):
    path = tmp_path / "envelope.json"
    path.write_text(content)
    assert run(str(path), "--commit", SAMPLE_SHA, "--jwks", str(gate.jwks_file())) == 1
    refused(capsys, code)


@pytest.mark.parametrize(
    ("jwks", "code"),
    [
        pytest.param(
            "http://gate.example.com/.well-known/jwks.json", "jwks-insecure", id="plain-http-elsewhere"
        ),
        pytest.param("missing.json", "jwks-unavailable", id="no-such-file"),
    ],
)
def test_a_key_set_that_cannot_be_trusted_or_had_is_refused(gate, capsys, jwks, code):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", jwks) == 1
    assert code in capsys.readouterr().err


def test_an_unreadable_envelope_is_refused(capsys, tmp_path):
    assert run(str(tmp_path / "none.json"), "--commit", SAMPLE_SHA) == 1
    assert "cannot read" in capsys.readouterr().err


# --- what passes --------------------------------------------------------------------------------------


def test_an_allowed_decision_of_the_action_on_the_commit_passes(gate, capsys):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    assert run(str(envelope), "--commit", SAMPLE_SHA.upper(), "--repository", "octo-org/octo-repo",
               "--jwks", str(gate.jwks_file())) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("ok: decision dec_") and f"allowed deploy on octo-org/octo-repo@{SAMPLE_SHA}" in out


def test_the_key_set_by_default_is_the_local_gates(gate, capsys, monkeypatch):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(envelope.read_bytes())))
    assert run("-", "--commit", SAMPLE_SHA) == 0, capsys.readouterr().err


def test_the_key_set_over_http_from_the_gate_itself(gate, capsys):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    server = make_server("127.0.0.1", 0, gate.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
        assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", url) == 0, capsys.readouterr().err
    finally:
        server.shutdown()


def test_an_old_attestation_still_verifies_after_its_key_is_rotated(gate, capsys):
    envelope = gate.envelope({"action": "deploy"}, environment="staging")
    assert main(["keys", "rotate", "--attestation"]) == 0
    assert "new attestation-signing key ak_" in capsys.readouterr().out
    newer = gate.envelope({"action": "deploy"}, environment="staging")
    assert (
        json.loads(newer.read_text())["signatures"][0]["keyid"]
        != json.loads(envelope.read_text())["signatures"][0]["keyid"]
    )
    jwks = str(gate.jwks_file())
    assert run(str(envelope), "--commit", SAMPLE_SHA, "--jwks", jwks) == 0
    assert run(str(newer), "--commit", SAMPLE_SHA, "--jwks", jwks) == 0
