"""The SPIFFE profile of grants: grants are JWT-SVIDs, and the gate serves its trust domain's bundle.

The verifier below is written from the specifications, not from the gate's code: JWT-SVID
(spiffe/spiffe standards/JWT-SVID.md: sections 2 JOSE header, 3 claims, 4 validation, 5.1
serialization, 6.2 consuming a bundle, appendix A), SPIFFE-ID (the ID's form and length) and the
SPIFFE Trust Domain and Bundle (section 4: the bundle's members, 4.2.2 ``use``). It verifies the
ES256 signature with ``cryptography`` itself (RFC 7515 section 7, RFC 7518 section 3.4).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app import create_app
from app.credentials.keys import SigningKeys
from app.credentials.spiffe import spiffe_id
from app.errors import ConfigError
from app.settings import Settings
from tests.conftest import close_gate

TRUST_DOMAIN = "agents.example.org"
AUDIENCE = "deploy:staging"  # the grant's audience: the rule's target

# JWT-SVID 2.1: the algorithms of RFC 7518 3.3, 3.4 and 3.5.
SVID_ALGORITHMS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
SVID_HEADERS = {"alg", "kid", "typ"}  # JWT-SVID 2: any other header MUST NOT be included
LEEWAY = 30  # appendix A: "a small amount of leeway is acceptable"


class Refused(Exception):
    pass


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _ec_key(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey | None:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        return None  # Trust Domain and Bundle 4.2.1: an unknown key type is ignored (ES256 only here)
    x, y = (int.from_bytes(_b64url(jwk[c]), "big") for c in ("x", "y"))
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def check_spiffe_id(value: str, trust_domain: str) -> None:
    """SPIFFE-ID 2: the spiffe scheme, a trust domain (host only: no userinfo, no port), no query or
    fragment; a path of non-empty segments; at most 2048 bytes (2.3). Of our trust domain."""
    parts = urlsplit(value)
    if parts.scheme != "spiffe" or len(value) > 2048 or parts.query or parts.fragment or "?" in value:
        raise Refused(f"sub {value!r} is not a SPIFFE ID")
    if "@" in parts.netloc or ":" in parts.netloc or parts.netloc != trust_domain:
        raise Refused(f"sub {value!r} is not in trust domain {trust_domain}")
    segments = parts.path.split("/")[1:]
    if not segments or any(s in {"", ".", ".."} for s in segments):
        raise Refused(f"sub {value!r} has an empty or relative path segment")


def verify_jwt_svid(
    token: str, bundle: dict[str, Any], *, trust_domain: str, audience: str, now: float
) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:  # 5.1: JWS Compact Serialization
        raise Refused("not a JWS compact serialization")
    header = json.loads(_b64url(parts[0]))
    if set(header) - SVID_HEADERS:
        raise Refused(f"header members {sorted(set(header) - SVID_HEADERS)} are not allowed")
    if header.get("alg") not in SVID_ALGORITHMS:  # 2.1 and section 4: checked before anything else
        raise Refused(f"alg {header.get('alg')!r} is not allowed")
    if "typ" in header and header["typ"] not in ("JWT", "JOSE"):  # 2.3
        raise Refused(f"typ {header['typ']!r} is not allowed")
    # 6.2: only the bundle's JWT-SVID keys; none means the trust domain does not support JWT-SVID.
    authorities = {k["kid"]: k for k in bundle.get("keys", []) if k.get("use") == "jwt-svid" and "kid" in k}
    if not authorities:
        raise Refused("the bundle has no jwt-svid key: its trust domain does not support JWT-SVID")
    candidates = [authorities[header["kid"]]] if header.get("kid") in authorities else []
    if "kid" not in header:  # 2.2: kid is optional
        candidates = list(authorities.values())
    if header["alg"] != "ES256":
        raise Refused("this verifier only knows ES256 keys")
    signature = _b64url(parts[2])
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    for jwk in candidates:
        key = _ec_key(jwk)
        if key is None or len(signature) != 64:
            continue
        try:
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        raise Refused("no key of the bundle verifies the signature")
    claims: dict[str, Any] = json.loads(_b64url(parts[1]))
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not audiences:  # 3.2
        raise Refused("no aud claim")
    if audience not in audiences:
        raise Refused(f"aud {audiences} does not name {audience}")
    if not isinstance(claims.get("exp"), int | float):  # 3.3
        raise Refused("no exp claim")
    if claims["exp"] + LEEWAY < now:
        raise Refused("expired")
    if not isinstance(claims.get("sub"), str):  # 3.1
        raise Refused("no sub claim")
    check_spiffe_id(claims["sub"], trust_domain)
    return claims


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"spiffe_trust_domain": TRUST_DOMAIN})


def grant_of(ask: Any, **claims: Any) -> str:
    response = ask({"action": "deploy", "grant": True}, environment="staging", **claims)
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["grant"]["token"]
    return token


def bundle_of(client: Any) -> dict[str, Any]:
    response = client.get("/.well-known/spiffe-bundle.json")
    assert response.status_code == 200, response.get_json()
    found: dict[str, Any] = response.get_json()
    return found


# --- refusals first -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Agents.Example.org", id="uppercase"),
        pytest.param("spiffe://agents.example.org", id="with-scheme"),
        pytest.param("agents.example.org:8443", id="with-port"),
        pytest.param("agents.example.org/ns", id="with-path"),
        pytest.param("user@agents.example.org", id="with-userinfo"),
        pytest.param("a" * 256, id="too-long"),
    ],
)
def test_a_trust_domain_the_spec_forbids_is_refused_at_start(value):
    with pytest.raises(ConfigError, match="GATE_SPIFFE_TRUST_DOMAIN"):
        Settings.from_env({"GATE_DEV_MODE": "true", "GATE_SPIFFE_TRUST_DOMAIN": value})


def test_the_trust_domain_is_read_from_the_environment():
    settings = Settings.from_env({"GATE_DEV_MODE": "true", "GATE_SPIFFE_TRUST_DOMAIN": TRUST_DOMAIN})
    assert settings.spiffe_trust_domain == TRUST_DOMAIN
    assert Settings.from_env({"GATE_DEV_MODE": "true"}).spiffe_trust_domain is None, "off unless set"


def test_without_the_profile_there_is_no_bundle_and_grants_are_no_svids(
    tmp_path: Path, policy_file: Path, mint
):
    settings = Settings(
        dev_mode=True, issuers=(), data_dir=tmp_path / "data", policy_path=policy_file.parent,
        public_url="http://gate.test", policy_check_interval=0,
    )  # fmt: skip
    app = create_app(settings)
    try:
        client = app.test_client()
        response = client.get("/.well-known/spiffe-bundle.json")
        assert response.status_code == 404
        assert response.get_json()["errors"][0]["code"] == "spiffe-not-configured"
        token = mint(environment="staging")
        answer = client.post(
            "/v1/decisions",
            json={"action": "deploy", "grant": True},
            headers={"Authorization": f"Bearer {token}"},
        ).get_json()
        claims = json.loads(_b64url(answer["grant"]["token"].split(".")[1]))
        assert claims["sub"] == "repo:2000:run:9000:attempt:1"
    finally:
        close_gate(app)


def test_the_verifier_refuses_a_grant_for_another_audience(client, ask):
    with pytest.raises(Refused, match="does not name deploy:production"):
        verify_jwt_svid(
            grant_of(ask),
            bundle_of(client),
            trust_domain=TRUST_DOMAIN,
            audience="deploy:production",
            now=time.time(),
        )


def test_the_verifier_refuses_an_expired_grant(client, ask):
    token = grant_of(ask)
    exp = json.loads(_b64url(token.split(".")[1]))["exp"]
    with pytest.raises(Refused, match="expired"):
        verify_jwt_svid(
            token, bundle_of(client), trust_domain=TRUST_DOMAIN, audience=AUDIENCE, now=exp + LEEWAY + 1
        )


def test_the_verifier_refuses_a_grant_whose_subject_was_changed(client, ask):
    header, payload, signature = grant_of(ask).split(".")
    claims = json.loads(_b64url(payload))
    claims["sub"] = claims["sub"].replace("/repo/2000/", "/repo/2001/")
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Refused, match="no key of the bundle verifies"):
        verify_jwt_svid(
            f"{header}.{forged}.{signature}",
            bundle_of(client),
            trust_domain=TRUST_DOMAIN,
            audience=AUDIENCE,
            now=time.time(),
        )


def test_the_verifier_refuses_another_trust_domain(client, ask):
    with pytest.raises(Refused, match=r"not in trust domain other\.example\.org"):
        verify_jwt_svid(
            grant_of(ask),
            bundle_of(client),
            trust_domain="other.example.org",
            audience=AUDIENCE,
            now=time.time(),
        )


def test_the_jwks_is_no_spiffe_bundle_its_keys_have_another_use(client, ask):
    jwks = client.get("/.well-known/jwks.json").get_json()
    with pytest.raises(Refused, match="does not support JWT-SVID"):
        verify_jwt_svid(grant_of(ask), jwks, trust_domain=TRUST_DOMAIN, audience=AUDIENCE, now=time.time())


@pytest.mark.parametrize(
    "segments",
    [
        pytest.param({"action": "de/ploy"}, id="slash-in-a-segment"),
        pytest.param({"action": ".."}, id="dot-dot"),
        pytest.param({"action": ""}, id="empty-segment"),
    ],
)
def test_an_id_the_spec_forbids_is_never_made(segments):
    args = {"repository_id": 2000, "run_id": 9000, "run_attempt": 1, "action": "deploy", **segments}
    with pytest.raises(ValueError, match="not a valid SPIFFE ID"):
        spiffe_id(TRUST_DOMAIN, **args)


# --- what passes --------------------------------------------------------------------------------------


def test_a_grant_is_a_jwt_svid_naming_the_repository_run_and_step(client, ask):
    claims = verify_jwt_svid(
        grant_of(ask), bundle_of(client), trust_domain=TRUST_DOMAIN, audience=AUDIENCE, now=time.time()
    )
    assert claims["sub"] == f"spiffe://{TRUST_DOMAIN}/repo/2000/run/9000/attempt/1/action/deploy"
    assert claims["aud"] == AUDIENCE and claims["repository_id"] == 2000


def test_the_bundle_holds_the_grant_keys_as_jwt_svid_authorities(app, client, ask):
    grant_of(ask)
    bundle = bundle_of(client)
    assert set(bundle) == {"spiffe_sequence", "spiffe_refresh_hint", "keys"}
    assert isinstance(bundle["spiffe_sequence"], int) and bundle["spiffe_refresh_hint"] == 300
    grant_kids = set(app.extensions["agent_gate"].grants.keys.published())
    assert {k["kid"] for k in bundle["keys"]} == grant_kids
    for key in bundle["keys"]:
        assert key["use"] == "jwt-svid" and key["kty"] == "EC" and "alg" not in key
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert {k["use"] for k in jwks["keys"]} == {"sig"}, "the JWKS itself is unchanged"


def test_attestation_keys_are_not_in_the_bundle(client, ask):
    decision = ask({"action": "deploy"}, environment="staging").get_json()
    assert client.get(f"/v1/decisions/{decision['decision_id']}/attestation").status_code == 200
    jwks_kids = {k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]}
    bundle_kids = {k["kid"] for k in bundle_of(client)["keys"]}
    assert any(k.startswith("ak_") for k in jwks_kids) and not any(k.startswith("ak_") for k in bundle_kids)


def test_the_sequence_grows_when_the_keys_change(app, client, ask):
    grant_of(ask)
    first = bundle_of(client)
    assert bundle_of(client)["spiffe_sequence"] == first["spiffe_sequence"], "no change, same revision"
    store = app.extensions["agent_gate"].store
    keys = SigningKeys(store, clock=lambda: first["spiffe_sequence"] + 10)
    keys.rotate()
    second = bundle_of(client)
    assert second["spiffe_sequence"] > first["spiffe_sequence"]
    assert len(second["keys"]) == 2, "the old key stays while its grant lives"


def test_a_delegated_grant_keeps_the_workloads_spiffe_id_and_names_its_step(client, ask):
    parent = grant_of(ask)
    response = client.post(
        "/v1/grants/delegate", json={"step": "tester"}, headers={"Authorization": f"Bearer {parent}"}
    )
    assert response.status_code == 201, response.get_json()
    child = verify_jwt_svid(
        response.get_json()["grant"]["token"],
        bundle_of(client),
        trust_domain=TRUST_DOMAIN,
        audience=AUDIENCE,
        now=time.time(),
    )
    workload = f"spiffe://{TRUST_DOMAIN}/repo/2000/run/9000/attempt/1/action/deploy"
    assert (child["sub"], child["act"]["sub"]) == (f"{workload}/step/tester", workload)


def test_the_gate_itself_still_verifies_and_introspects_its_svids(client, ask):
    token = grant_of(ask)
    response = client.post(
        "/v1/grants/introspect", json={"token": token}, headers={"Authorization": f"Bearer {token}"}
    )
    answer = response.get_json()
    assert answer["active"] is True and answer["sub"].startswith(f"spiffe://{TRUST_DOMAIN}/repo/2000/")
