"""Reading a bearer token WITHOUT verifying it: only to choose the issuer and the key, and to show
what a refused token claimed (bounded, never a secret) in a message or an audit record.

Nothing read here is trusted: :mod:`app.tokens.verify` verifies the token with PyJWT before any
claim decides anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from app.errors import TokenError
from app.tokens.identity import display_claims

SHOWN_TEXT = 200  # characters of an unverified string value shown in a message or an audit record
_MAX_AUDITED_TOKEN = 65536  # longer bearer strings are not even parsed for the audit record


def unverified_display_claims(token: str) -> dict[str, Any]:
    """The displayable claims of a token read WITHOUT verification, for auditing a refusal.

    Never raises: anything that is not a JWT gives ``{}``. Values are bounded in size.
    """
    if not isinstance(token, str) or len(token) > _MAX_AUDITED_TOKEN:
        return {}
    try:
        return display(unverified_parts(token)[1])
    except TokenError:
        return {}


# base64url's alphabet, with at most two '=' of padding (some issuers pad; RFC 7515 does not).
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url(segment: str) -> bytes:
    """A segment's bytes, strictly: base64url's alphabet only, padding only where it belongs, and
    canonical (the one encoding of its bytes). Python's decoder silently drops other characters, so
    ``signature!!!!`` would decode like ``signature`` (PyJWT's GHSA-hxm8-2xgr-2p9m); this refuses it.
    A regular expression and one re-encoding: C speed, where a character loop costs ~100 µs a token.

    Raises ValueError.
    """
    if not _BASE64URL.fullmatch(segment):
        raise ValueError("not base64url: a character outside A-Z a-z 0-9 - _")
    stripped = segment.rstrip("=")
    if len(stripped) % 4 == 1 or (stripped != segment and len(segment) % 4):
        raise ValueError("not base64url: wrong length or padding")
    decoded = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != stripped:
        raise ValueError("not base64url: not the canonical encoding of its bytes")
    return decoded


def b64json(segment: str) -> dict[str, Any]:
    """One base64url JSON object segment, decoded strictly (:func:`b64url`) but not verified."""
    try:
        value = json.loads(b64url(segment))
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as exc:
        raise TokenError(
            "the token is not a JWT: a segment is not base64url-encoded JSON; send the job's OIDC token unchanged",
            code="malformed",
        ) from exc
    if not isinstance(value, dict):
        raise TokenError("the token is not a JWT: a segment is not a JSON object", code="malformed")
    return value


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload, unverified: only to choose the issuer and the key."""
    if not token.isascii():
        raise TokenError("the bearer token is not a JWT: it holds non-ASCII characters", code="malformed")
    parts = token.split(".")
    # An empty signature is let through to the algorithm check, so that alg "none" is named as such.
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise TokenError(
            "the bearer token is not a JWT: expected three dot-separated segments (header, payload, "
            f"signature), got {len(parts)}. Send the job's OIDC token",
            code="malformed",
        )
    return b64json(parts[0]), b64json(parts[1])


def display(claims: Mapping[str, Any]) -> dict[str, Any]:
    """display_claims, with unverified values bounded: long strings cut, nested values summarised."""
    shown: dict[str, Any] = {}
    for name, value in display_claims(dict(claims)).items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown[name] = [_bounded(v) for v in value[:5]]
        else:
            shown[name] = _bounded(value)
    return shown


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= SHOWN_TEXT else value[:SHOWN_TEXT] + "..."
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # NaN/Infinity are not JSON
    if isinstance(value, int) or value is None:
        return value
    return f"<{type(value).__name__}>"


def show(value: Any) -> str:
    """A value from an unverified token, quoted and bounded, for a message."""
    text = repr(value)
    return text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT] + "..."
