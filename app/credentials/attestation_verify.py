"""Offline verification of a decision attestation (``agent-gate attest verify``).

A deploy step asks one question: did this gate allow this action on this commit? The answer is yes
only when every check below holds, in this order, each refusal naming what failed:

1. the file is a DSSE envelope of an in-toto statement (``payloadType``);
2. it is signed by a key of the gate's key set (the envelope's ``keyid`` is a ``kid`` there, an
   ES256 key), and the signature verifies over DSSE's pre-authentication encoding;
3. the statement is an in-toto Statement v1 with the gate's decision predicate;
4. its subject is the commit (and the repository, when one is named);
5. the decision is of the action asked for;
6. the verdict is ``allowed``: a denial, an allow only in audit mode, or (unless accepted) an allow
   by break-glass is refused.
"""

from __future__ import annotations

import binascii
import copy
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import FormatError, VerificationError
from securesystemslib.signer import Key, SSlibKey

from app.credentials.attestation import PAYLOAD_TYPE, PREDICATE_TYPE, SCHEME, STATEMENT_TYPE
from app.errors import GateError

_COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
MAX_BYTES = 1 << 20  # an envelope or key set larger than this is not the gate's


class AttestationRefused(GateError):
    """The attestation does not show what was asked; ``code`` says which check failed."""

    status: ClassVar[int] = 422
    default_code: ClassVar[str] = "attestation-refused"


@dataclass(frozen=True)
class Expected:
    """What the attestation must show."""

    commit: str
    action: str
    repository: str | None = None
    accept_break_glass: bool = False


@dataclass(frozen=True)
class Verified:
    keyid: str
    repository: str
    commit: str
    predicate: dict[str, Any]


def load_jwks(source: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """A JWK Set from an https URL (or http on loopback, for a local gate) or a file."""
    if re.match(r"^https?://", source):
        parts = urlsplit(source)
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            raise AttestationRefused(
                f"--jwks {source}: fetch the key set over https (plain http is accepted on loopback only)",
                code="jwks-insecure",
            )
        try:
            response = requests.get(source, timeout=timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise AttestationRefused(
                f"--jwks {source}: cannot be fetched ({exc.__class__.__name__})", code="jwks-unavailable"
            ) from exc
        if response.status_code != 200:
            raise AttestationRefused(
                f"--jwks {source}: answered HTTP {response.status_code}, expected 200",
                code="jwks-unavailable",
            )
        text = response.content[:MAX_BYTES].decode("utf-8", "replace")
    else:
        try:
            text = Path(source).read_bytes()[:MAX_BYTES].decode("utf-8", "replace")
        except OSError as exc:
            raise AttestationRefused(
                f"--jwks {source}: cannot be read ({exc.strerror})", code="jwks-unavailable"
            ) from exc
    try:
        jwks = json.loads(text)
    except ValueError as exc:
        raise AttestationRefused(f"--jwks {source}: is not JSON", code="jwks-invalid") from exc
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise AttestationRefused(f"--jwks {source}: is not a JWK Set (no 'keys' list)", code="jwks-invalid")
    return jwks


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _keys(jwks: dict[str, Any]) -> dict[str, Key]:
    """The key set's ES256 signing keys by kid; other keys (other types, ``use`` not ``sig``) are skipped."""
    keys: dict[str, Key] = {}
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or jwk.get("use", "sig") != "sig":
            continue
        try:
            public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if isinstance(public, ec.EllipticCurvePublicKey):
            keys[jwk["kid"]] = SSlibKey.from_crypto(public, keyid=jwk["kid"], scheme=SCHEME)
    return keys


def _envelope(raw: bytes) -> Envelope:
    try:
        data = json.loads(raw[:MAX_BYTES])
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("signatures"), list)
            or not data["signatures"]
        ):
            raise ValueError("no signatures")
        if data.get("payloadType") != PAYLOAD_TYPE:
            raise AttestationRefused(
                f"the envelope's payloadType is {data.get('payloadType')!r}, expected {PAYLOAD_TYPE!r}",
                code="wrong-payload-type",
            )
        return Envelope.from_dict(copy.deepcopy(data))  # from_dict rewrites the signatures it reads
    except (ValueError, KeyError, TypeError, AttributeError, FormatError, binascii.Error) as exc:
        raise AttestationRefused(
            "the file is not a DSSE envelope (JSON with payload, payloadType and signatures)",
            code="malformed",
        ) from exc


def verify(raw: bytes, jwks: dict[str, Any], expected: Expected) -> Verified:
    """Verify ``raw`` (the envelope's JSON) against ``jwks``; raises AttestationRefused."""
    commit = expected.commit.lower()
    if not _COMMIT.fullmatch(commit):
        raise AttestationRefused(
            f"--commit: got {expected.commit!r}, expected a full commit sha", code="bad-commit"
        )
    envelope = _envelope(raw)
    keys = _keys(jwks)
    named = sorted(envelope.signatures)
    known = [keys[kid] for kid in named if kid in keys]
    if not known:
        raise AttestationRefused(
            f"the envelope is signed by {', '.join(named)}, a key the key set does not hold "
            f"(it holds {', '.join(sorted(keys)) or 'no ES256 signing key'}); is --jwks this gate's?",
            code="unknown-key",
        )
    try:
        accepted = envelope.verify(known, 1)
    except (VerificationError, ValueError) as exc:
        raise AttestationRefused(
            "the signature does not verify: the attestation was changed after the gate signed it",
            code="bad-signature",
        ) from exc
    try:
        stmt = json.loads(envelope.payload)
        subjects, pred = stmt["subject"], stmt["predicate"]
        assert isinstance(subjects, list) and isinstance(pred, dict)
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise AttestationRefused("the signed payload is not an in-toto statement", code="malformed") from exc
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        raise AttestationRefused(
            f"the statement is {stmt.get('_type')!r} with predicate {stmt.get('predicateType')!r}; expected "
            f"{STATEMENT_TYPE} with {PREDICATE_TYPE}",
            code="wrong-predicate-type",
        )
    subject = next(
        (s for s in subjects if isinstance(s, dict) and (s.get("digest") or {}).get("gitCommit") == commit),
        None,
    )
    if subject is None:
        shas = [str((s.get("digest") or {}).get("gitCommit")) for s in subjects if isinstance(s, dict)]
        raise AttestationRefused(
            f"the attestation is about commit {', '.join(shas)}, not {commit}", code="wrong-commit"
        )
    name = str(subject.get("name", ""))
    if expected.repository is not None and name.lower() != expected.repository.lower():
        raise AttestationRefused(
            f"the attestation is about repository {name}, not {expected.repository}", code="wrong-repository"
        )
    if pred.get("action") != expected.action:
        raise AttestationRefused(
            f"the decision is about action {pred.get('action')!r}, not {expected.action!r}",
            code="wrong-action",
        )
    _allowed(pred, expected)
    return Verified(keyid=next(iter(accepted)), repository=name, commit=commit, predicate=pred)


def _allowed(pred: dict[str, Any], expected: Expected) -> None:
    verdict = pred.get("verdict")
    where = f"decision {pred.get('decisionId')}"
    if verdict == "allowed":
        return
    if verdict == "allowed-break-glass" and expected.accept_break_glass:
        return
    if verdict == "allowed-break-glass":
        raise AttestationRefused(
            f"{where} was allowed only by break-glass {(pred.get('breakGlass') or {}).get('id')}; pass "
            "--accept-break-glass to accept an emergency override",
            code="break-glass",
        )
    if verdict == "allowed-audit-mode":
        raise AttestationRefused(
            f"{where} was allowed only because its rule is in audit mode: enforced, it is denied",
            code="audit-mode",
        )
    failed = next(
        (r.get("message") for r in pred.get("reasons", []) if isinstance(r, dict) and not r.get("ok")), None
    )
    raise AttestationRefused(f"{where} was denied{': ' + str(failed) if failed else ''}", code="denied")
