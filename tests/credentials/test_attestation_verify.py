"""The offline verifier's edges: key sets it cannot trust or read, keys it skips, envelopes that are
signed by the gate's key but are not the gate's statement. (Whole-gate cases: tests/cli/test_attest.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from app.credentials.attestation import PAYLOAD_TYPE, PREDICATE_TYPE, SCHEME, STATEMENT_TYPE, sign
from app.credentials.attestation_verify import AttestationRefused, Expected, load_jwks, verify
from app.credentials.keys import AttestationKeys
from app.store.sqlite import SQLiteStore

SHA = "a" * 40
URL = "https://gate.example.com/.well-known/jwks.json"


@pytest.fixture
def keys(tmp_path: Path):
    store = SQLiteStore(tmp_path / "gate.db")
    yield AttestationKeys(store)
    store.close()


def statement(**predicate: Any) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "octo-org/octo-repo", "digest": {"gitCommit": SHA}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"decisionId": "dec_x", "action": "deploy", "verdict": "allowed", **predicate},
    }


def raw(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


def refused(code: str, envelope: bytes, jwks: dict[str, Any], **expected: Any) -> str:
    with pytest.raises(AttestationRefused) as info:
        verify(envelope, jwks, Expected(**{"commit": SHA, "action": "deploy", **expected}))
    assert info.value.code == code, info.value.message
    return info.value.message


# --- the key set ---------------------------------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize(
    ("answer", "code", "says"),
    [
        pytest.param({"status": 404, "body": "nope"}, "jwks-unavailable", "answered HTTP 404", id="http-404"),
        pytest.param({"status": 200, "body": "<html>"}, "jwks-invalid", "is not JSON", id="not-json"),
        pytest.param({"status": 200, "json": {"issuer": "x"}}, "jwks-invalid", "no 'keys' list", id="not-a-jwks"),
        pytest.param({"body": requests.ConnectionError("refused")}, "jwks-unavailable", "ConnectionError", id="unreachable"),
    ],
)  # fmt: skip
def test_a_key_set_url_that_gives_no_key_set_is_refused(answer, code, says):
    responses.add(responses.GET, URL, **answer)
    with pytest.raises(AttestationRefused, match=says) as info:
        load_jwks(URL)
    assert info.value.code == code


@responses.activate
def test_a_key_set_url_is_fetched_over_https():
    responses.add(responses.GET, URL, json={"keys": []})
    assert load_jwks(URL) == {"keys": []}


def test_plain_http_is_refused_unless_on_loopback():
    with pytest.raises(AttestationRefused, match="over https") as info:
        load_jwks("http://10.1.2.3/.well-known/jwks.json")
    assert info.value.code == "jwks-insecure"


def test_keys_of_other_types_and_uses_are_skipped(keys):
    envelope = raw(sign(statement(), keys))
    [good] = keys.jwks()["keys"]
    others = [
        {**good, "use": "jwt-svid"},  # a SPIFFE bundle's authority: it signs SVIDs, not attestations
        {**good, "crv": "P-384"},
        {"kty": "RSA", "kid": good["kid"], "n": "AQAB", "e": "AQAB"},
        {**good, "x": "not-base64!"},
        "not an object",
    ]
    message = refused("unknown-key", envelope, {"keys": others})
    assert "no ES256 signing key" in message
    assert (
        verify(envelope, {"keys": [*others, good]}, Expected(commit=SHA, action="deploy")).keyid
        == good["kid"]
    )


# --- signed, but not the gate's statement ----------------------------------------------------------------


def _signed(payload: bytes, keys: AttestationKeys) -> bytes:
    kid, private = keys.current()
    signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid=kid, scheme=SCHEME))
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    return raw(envelope.to_dict())


def test_a_signed_payload_that_is_no_statement_is_refused(keys):
    refused("malformed", _signed(b"not json", keys), keys.jwks())
    refused("malformed", _signed(b'{"subject": "x", "predicate": {}}', keys), keys.jwks())


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"_type": "https://in-toto.io/Statement/v0.1"}, id="older-statement"),
        pytest.param({"predicateType": "https://slsa.dev/provenance/v1"}, id="another-predicate"),
    ],
)
def test_another_kind_of_statement_is_refused(keys, change):
    envelope = raw(sign({**statement(), **change}, keys))
    refused("wrong-predicate-type", envelope, keys.jwks())


def test_an_envelope_with_a_signature_that_is_not_base64_is_malformed(keys):
    envelope = sign(statement(), keys)
    envelope["signatures"][0]["sig"] = "%%%"
    refused("malformed", raw(envelope), keys.jwks())
